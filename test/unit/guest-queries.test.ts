/**
 * The named guest queries (app/engine/guest/queries.ts), run for real in
 * the shells the guest has (dash, busybox sh) with hostile paths: quotes,
 * $(...), backticks, spaces, tabs, newlines, backslashes, globs, and in
 * bash, the guest's login shell, which runs the outer command. What would
 * change the guest (mount, umount, fusermount3, mkdir) is a shell function
 * that records its arguments (busybox runs its own applets before PATH);
 * the mount tables are files the test writes in place of /proc/mounts and
 * /proc/self/mountinfo.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import {
  bindMount,
  detachMount,
  fuseUnmount,
  isMounted,
  listDir,
  mountsEscape,
  mountVirtiofs,
  poweroff,
  prepareFuseMountPoint,
  removeTrees,
  setClock,
  systemLog,
  unbindMount,
  unmountVirtiofs,
  writeFile,
  type GuestExec,
} from '../../app/engine/guest/queries.js';
import { guestShells, type Shell } from '../helpers/guest-shells.js';
import { test } from '../helpers/prereq-gate.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('gq');
after(() => t.cleanup());
const PWNED = path.join(t.dir, 'pwned');
const HOSTILE = [
  "/tmp/it's here",
  '/a b/c\td',
  `/x/$(touch ${PWNED})`,
  `/x/\`touch ${PWNED}\``,
  '/back\\slash',
  '/new\nline',
  '/ü € 💥',
  '/-rf',
  '/star/*',
  '/"; rm -rf / #',
];

// Stubs that record each call as NAME\x1fARG\x1f...\x1e in $STUB_LOG (no single quote in them).
const STUBS =
  '_stub() { printf "%s" "$1" >> "$STUB_LOG"; shift; for a; do printf "\\037%s" "$a" >> "$STUB_LOG"; done; printf "\\036" >> "$STUB_LOG"; }\n' +
  ['mount', 'umount', 'fusermount3', 'mkdir'].map((n) => `${n}() { _stub ${n} "$@"; }\n`).join('');

const SHELLS: Shell[] = [...guestShells(), ...(fs.existsSync('/bin/bash') ? [{ name: 'bash', argv: ['/bin/bash'] }] : [])];

interface Local extends GuestExec {
  /** The stubs called, each as [name, ...args]. */
  calls(): string[][];
}

/**
 * A session whose commands run here in `shell` (and a nested `sh -c` in the
 * same shell), with the stubs and the mount tables in place.
 */
function local(shell: Shell, tables?: { mounts?: string; mountinfo?: string }, rewrite: (cmd: string) => string = (c) => c): Local {
  const log = path.join(t.dir, `log-${Math.random().toString(36).slice(2)}`);
  const mounts = path.join(t.dir, `mounts-${path.basename(log)}`);
  const info = path.join(t.dir, `mountinfo-${path.basename(log)}`);
  fs.writeFileSync(mounts, tables?.mounts ?? '');
  fs.writeFileSync(info, tables?.mountinfo ?? '');
  fs.writeFileSync(log, '');
  return {
    exec: async (command, opts) => {
      let cmd = rewrite(command);
      if (tables) cmd = cmd.replaceAll('/proc/mounts', mounts).replaceAll('/proc/self/mountinfo', info);
      if (cmd.startsWith("sh -c '")) cmd = `${shell.argv.join(' ')} -c '${STUBS}${cmd.slice("sh -c '".length)}`;
      const r = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), '-c', STUBS + cmd], {
        encoding: 'utf8',
        input: opts?.stdin,
        cwd: t.dir,
        env: { ...process.env, STUB_LOG: log },
      });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    calls: () =>
      fs
        .readFileSync(log, 'utf8')
        .split('\x1e')
        .filter(Boolean)
        .map((c) => c.split('\x1f')),
  };
}

/** A session that only records what it is asked. */
function recorder(): GuestExec & { commands: string[] } {
  const commands: string[] = [];
  return { commands, exec: async (c) => (commands.push(c), { code: 0, stdout: '', stderr: '' }) };
}

test('/proc/mounts escaping: space, tab, newline and backslash in octal', () => {
  assert.equal(mountsEscape('/a b/c\td\\e\nf'), '/a\\040b/c\\011d\\134e\\012f');
});

for (const shell of SHELLS) {
  test(`${shell.name}: isMounted matches the exact path, type and source, whatever the path`, { needs: shell.problem }, async () => {
    const mounts = HOSTILE.map((p) => `berth-tag ${mountsEscape(p)} virtiofs rw,relatime 0 0\nsshfs ${mountsEscape(`${p}/sub`)} fuse.sshfs rw 0 0\n`).join('');
    const s = local(shell, { mounts });
    for (const p of HOSTILE) {
      assert.equal(await isMounted(s, p), true, p);
      assert.equal(await isMounted(s, p, { type: 'virtiofs', source: 'berth-tag' }), true, p);
      assert.equal(await isMounted(s, p, { type: 'virtiofs', source: 'berth-other' }), false, p);
      assert.equal(await isMounted(s, p, { type: 'fuse' }), false, p);
      assert.equal(await isMounted(s, `${p}/sub`, { type: 'fuse' }), true, p);
      assert.equal(await isMounted(s, `${p}/sub`, { type: 'virtiofs' }), false, p);
      assert.equal(await isMounted(s, `${p}/other`), false, p);
    }
    assert.equal(await isMounted(s, '/tmp/it'), false);
    assert.ok(!fs.existsSync(PWNED), 'nothing in a path ran');
  });

  test(`${shell.name}: isMounted reads this machine's real mount table`, { needs: shell.problem }, async () => {
    const s = local(shell);
    assert.equal(await isMounted(s, '/proc'), true);
    for (const p of HOSTILE) assert.equal(await isMounted(s, p), false, p);
    assert.ok(!fs.existsSync(PWNED), 'nothing in a path ran');
  });

  test(
    `${shell.name}: mountVirtiofs keeps the device already there, else clears the path and mounts it (ro when asked)`,
    { needs: shell.problem },
    async () => {
      for (const p of HOSTILE.filter((x) => !x.includes('\n'))) {
        const there = local(shell, { mounts: `berth-tag ${mountsEscape(p)} virtiofs rw 0 0\n` });
        assert.equal((await mountVirtiofs(there, 'berth-tag', p, false)).code, 0);
        assert.deepEqual(there.calls(), [], 'a reattach mounts nothing');

        const empty = local(shell, { mounts: `other-tag ${mountsEscape(p)} virtiofs rw 0 0\n` });
        assert.equal((await mountVirtiofs(empty, 'berth-tag', p, false)).code, 0);
        assert.equal((await mountVirtiofs(empty, 'berth-tag', p, true)).code, 0);
        const clear = [
          ['fusermount3', '-u', '-z', p],
          ['mkdir', '-p', p],
        ];
        assert.deepEqual(empty.calls(), [
          ...clear,
          ['mount', '-t', 'virtiofs', 'berth-tag', p],
          ...clear,
          ['mount', '-t', 'virtiofs', '-o', 'ro', 'berth-tag', p],
        ]);
      }
      await assert.rejects(mountVirtiofs(local(shell, {}), 'berth-tag', '/new\nline', false), /bad mount point/);
      assert.ok(!fs.existsSync(PWNED), 'nothing in a path ran');
    },
  );

  test(`${shell.name}: unmountVirtiofs detaches only that device at exactly that path`, { needs: shell.problem }, async () => {
    for (const p of HOSTILE) {
      const s = local(shell, { mounts: `berth-tag ${mountsEscape(p)} virtiofs rw 0 0\n` });
      await unmountVirtiofs(s, 'berth-other', p);
      await unmountVirtiofs(s, 'berth-tag', `${p}/sub`);
      assert.deepEqual(s.calls(), []);
      await unmountVirtiofs(s, 'berth-tag', p);
      assert.deepEqual(s.calls(), [['umount', '-l', p]]);
    }
    assert.ok(!fs.existsSync(PWNED), 'nothing in a path ran');
  });

  test(`${shell.name}: bindMount and unbindMount go by the top mount's folder`, { needs: shell.problem }, async () => {
    const dir = path.join(t.dir, `it's a "dir" $(x)`);
    fs.mkdirSync(dir, { recursive: true });
    const line = (root: string, at: string) => `36 25 0:32 ${mountsEscape(root)} ${mountsEscape(at)} rw,relatime shared:1 - ext4 /dev/vdb rw\n`;
    const mark = '/sync/0123456789abcdef/tree';
    // Ours at the bottom, something else on top: not ours any more.
    const covered = local(shell, { mountinfo: line(`/data${mark}`, dir) + line('/other', dir) });
    assert.equal((await bindMount(covered, '/var/lib/berth/copy', dir, mark)).code, 0);
    assert.deepEqual(covered.calls(), [['mount', '--bind', '/var/lib/berth/copy', dir]]);
    await unbindMount(covered, dir, mark);
    assert.equal(covered.calls().length, 1, 'not ours on top: left alone');

    const ours = local(shell, { mountinfo: line('/other', dir) + line(`/data${mark}`, dir) });
    assert.equal((await bindMount(ours, '/var/lib/berth/copy', dir, mark)).code, 0);
    assert.deepEqual(ours.calls(), [], 'already mounted');
    await unbindMount(ours, dir, mark);
    assert.deepEqual(ours.calls(), [['umount', '-l', dir]]);

    for (const p of HOSTILE.map((h) => path.join(t.dir, 'missing', h))) {
      const none = local(shell, { mountinfo: line(`/data${mark}`, `${p}/sub`) });
      assert.equal((await bindMount(none, '/copy', p, mark)).code, 3, `${p}: no such folder`);
      await unbindMount(none, p, mark);
      assert.deepEqual(none.calls(), []);
    }
    await assert.rejects(bindMount(ours, '/copy', dir, ''), /needs a mark/);
    assert.ok(!fs.existsSync(PWNED), 'nothing in a path ran');
  });

  test(`${shell.name}: the unmount and mount-point queries carry hostile paths as one argument`, { needs: shell.problem }, async () => {
    for (const p of HOSTILE) {
      const s = local(shell);
      await detachMount(s, p);
      await fuseUnmount(s, p);
      assert.equal((await prepareFuseMountPoint(s, p)).code, 0);
      assert.deepEqual(s.calls(), [
        ['umount', '-l', p],
        ['fusermount3', '-u', '-z', p],
        ['fusermount3', '-u', '-z', p],
        ['mkdir', '-p', p],
      ]);
    }
    assert.ok(!fs.existsSync(PWNED), 'nothing in a path ran');
  });

  test(`${shell.name}: listDir, writeFile and removeTrees on names that are not plain`, { needs: shell.problem }, async () => {
    const root = path.join(t.dir, `files ${shell.name} it's`);
    // Not a newline (ls -1 gives lines); busybox's own ls shows ? for what is not ASCII.
    const names = HOSTILE.map((p) => path.basename(p).replace(/\n/g, '_')).filter((n) => shell.name !== 'busybox sh' || /^[ -~]+$/.test(n));
    const s = local(shell);
    assert.deepEqual(await listDir(s, root), [], 'a missing folder lists nothing');
    fs.mkdirSync(root);
    for (const n of names) assert.equal((await writeFile(s, path.join(root, n), `${n}\n$(touch ${PWNED}) '"`)).code, 0, n);
    for (const n of names) assert.equal(fs.readFileSync(path.join(root, n), 'utf8'), `${n}\n$(touch ${PWNED}) '"`);
    assert.deepEqual((await listDir(s, root)).sort(), [...names].sort());
    await removeTrees(
      s,
      names.slice(1).map((n) => path.join(root, n)),
    );
    assert.deepEqual(fs.readdirSync(root), [names[0]]);
    await removeTrees(s, [root]);
    assert.ok(!fs.existsSync(root));
    assert.ok(!fs.existsSync(PWNED), 'nothing in a name ran');
  });

  test(`${shell.name}: systemLog keeps the last lines, only those that match when asked`, { needs: shell.problem }, async () => {
    const s = local(shell, undefined, (c) => c.replace('/bin/busybox logread', `printf '%s\\n' 'a dockerd' b 'c dockerd' "it's d"`));
    assert.equal(await systemLog(s, 2), "c dockerd\nit's d\n");
    assert.equal(await systemLog(s, 1, { match: 'dockerd' }), 'c dockerd\n');
    assert.equal(await systemLog(s, 5, { match: "it's" }), "it's d\n");
  });
}

test('setClock, poweroff and systemLog ask what they always asked', async () => {
  const s = recorder();
  await setClock(s, new Date(1_700_000_000_123));
  await poweroff(s);
  await systemLog(s, 20, { match: 'dockerd' });
  await systemLog(s, 2000);
  assert.deepEqual(s.commands, [
    "date -u -s '@1700000000.123' >/dev/null",
    '/bin/busybox poweroff',
    "/bin/busybox logread | grep -e 'dockerd' | tail -n 20",
    '/bin/busybox logread | tail -n 2000',
  ]);
});
