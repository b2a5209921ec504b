/**
 * The guest's boot stamps (vm-images/rootfs/etc/berth/stamp.sh), run for
 * real with dash and busybox sh: each step once with the guest's clock, the
 * daemons' log lines passed through untouched while they stamp, and a boot
 * that never fails because of a stamp. Then the guest scripts that use it,
 * and the step names they write against the engine's list.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe } from 'node:test';
import { after, gatedSuite, test } from '../helpers/prereq-gate.js';
import { BOOT_STEPS } from '../../app/contract/boot-timeline.js';
import { parseGuestStamps } from '../../app/engine/guest/boot-timeline.js';
import { guestShells } from '../helpers/guest-shells.js';
import { ROOT } from '../helpers/run.js';
import { shortTempDir } from '../helpers/temp.js';

const BERTH = path.join(ROOT, 'vm-images/rootfs/etc/berth');
const STAMP_SH = path.join(BERTH, 'stamp.sh');
const read = (f: string) => fs.readFileSync(path.join(ROOT, 'vm-images', f), 'utf8');

const t = shortTempDir('gst');
after(() => t.cleanup());
const SHELLS = guestShells();

let n = 0;
/** A run of `script` after sourcing stamp.sh, with a fake clock and its own timeline file. */
function stamp(shell: { argv: string[] }, script: string, o: { uptime?: string | null; input?: string; dir?: boolean } = {}) {
  const dir = path.join(t.dir, `r${++n}`);
  fs.mkdirSync(dir);
  const tlDir = o.dir === false ? path.join(dir, 'missing') : dir;
  const uptime = path.join(dir, 'uptime');
  if (o.uptime !== null) fs.writeFileSync(uptime, o.uptime ?? '12.34 40.02\n');
  const timeline = path.join(tlDir, 'boot-timeline');
  const r = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), '-c', `. "$0"; ${script}`, STAMP_SH], {
    env: { PATH: process.env.PATH, BERTH_TIMELINE: timeline, BERTH_UPTIME: uptime },
    input: o.input ?? '',
    encoding: 'utf8',
    timeout: 10_000,
  });
  const file = fs.existsSync(timeline) ? fs.readFileSync(timeline, 'utf8') : undefined;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, file, setClock: (v: string) => fs.writeFileSync(uptime, v) };
}

for (const shell of SHELLS) {
  gatedSuite(`stamp.sh under ${shell.name}`, shell.problem, {}, () => {
    test('a step is stamped once, with the clock in seconds, in a line the engine parses', () => {
      const r = stamp(shell, 'berth_stamp init; berth_stamp root-mounted; berth_stamp init');
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.equal(r.file, 'init 12.34\nroot-mounted 12.34\n');
      const parsed = parseGuestStamps(`${r.file}\n@uptime 13.00 1.00\n`);
      assert.deepEqual(parsed?.steps, [
        { step: 'init', sec: 12.34 },
        { step: 'root-mounted', sec: 12.34 },
      ]);
    });

    test('no clock, no folder for the file: nothing is written, nothing fails', () => {
      const noClock = stamp(shell, 'berth_stamp init; echo next', { uptime: null });
      assert.equal(noClock.status, 0);
      assert.equal(noClock.stdout, 'next\n');
      assert.equal(noClock.stderr, '');
      assert.equal(noClock.file, undefined);
      const noDir = stamp(shell, 'berth_stamp init; echo next', { dir: false });
      assert.equal(noDir.status, 0);
      assert.equal(noDir.stdout, 'next\n');
      assert.equal(noDir.stderr, '');
      const emptyClock = stamp(shell, 'berth_stamp init; echo next', { uptime: '' });
      assert.equal(emptyClock.status, 0);
      assert.equal(emptyClock.file, undefined);
    });

    test('berth_stamp_on passes every line through and stamps each step at its first match', () => {
      const lines = [
        'time="x" level=info msg="Starting up"',
        'time="x" level=info msg="containerd successfully booted in 0.081s" module=containerd',
        'a line with  two spaces, a \\backslash and a * star',
        'time="x" level=info msg="API listen on /var/run/docker.sock"',
        'time="x" level=info msg="API listen on /var/run/docker.sock"',
        'after the last step',
      ];
      const input = lines.join('\n') + '\nno newline at the end';
      const r = stamp(shell, `berth_stamp_on containerd-ready '*containerd successfully booted*' docker-api-listening '*API listen on /var/run/docker.sock*'`, {
        input,
      });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, input);
      assert.equal(r.file, 'containerd-ready 12.34\ndocker-api-listening 12.34\n');
    });

    test('berth_stamp_on with a step never matched copies everything and stamps nothing', () => {
      const input = 'one\ntwo\n\nthree\n';
      const r = stamp(shell, `berth_stamp_on sshd-listening 'Server listening on *'`, { input });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, input);
      assert.equal(r.file, undefined);
    });

    test("the daemons' real log lines stamp their steps", () => {
      const input = [
        'Server listening on 0.0.0.0 port 22.',
        'Server listening on :: port 22.',
        'time="2025-01-01T00:00:03.1Z" level=info msg="containerd successfully booted in 0.312345s"',
        'time="2025-01-01T00:00:09.9Z" level=info msg="API listen on /var/run/docker.sock"',
      ].join('\n');
      const sshd = /berth_stamp_on (.*) \|/.exec(read('rootfs/etc/berth/run-sshd'))![1]!;
      const containerd = /berth_stamp_on (.*) \|/.exec(read('rootfs/etc/berth/run-containerd'))![1]!;
      const dockerd = /berth_stamp_on (.*) \|/.exec(read('rootfs/etc/berth/run-dockerd'))![1]!;
      const r = stamp(shell, `berth_stamp_on ${sshd} | berth_stamp_on ${containerd} | berth_stamp_on ${dockerd}`, { input });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, input);
      assert.deepEqual(
        r.file
          ?.trim()
          .split('\n')
          .map((l) => l.split(' ')[0])
          .sort(),
        ['containerd-ready', 'docker-api-listening', 'sshd-listening'],
      );
    });
  });
}

describe('the guest scripts that stamp', () => {
  const init = read('initramfs/init');
  const sysinit = read('rootfs/etc/berth/rc.sysinit');
  const build = read('build.sh');

  test('the initramfs stamps from /init on, in a /run it hands to the real root', () => {
    assert.match(build, /cp "\$here\/rootfs\/etc\/berth\/stamp\.sh" "\$ird\/stamp\.sh"/, 'stamp.sh is in the initramfs');
    assert.match(build, /mkdir -p "\$ird"\/\{[^}]*\brun\b/, 'the initramfs has a /run');
    const order = [
      'mount -t tmpfs -o mode=0755,nosuid,nodev run /run',
      '. /stamp.sh',
      'berth_stamp init',
      'berth_stamp root-mounted',
      'mount --move /run /newroot/run',
      'exec switch_root',
    ];
    const at = order.map((l) => init.indexOf(l));
    assert.ok(
      at.every((i) => i >= 0),
      `all of ${JSON.stringify(order)} in init`,
    );
    assert.deepEqual(
      [...at].sort((a, b) => a - b),
      at,
      'in this order',
    );
    assert.ok(init.indexOf('berth_stamp root-mounted') > init.indexOf('mount -t overlay'), 'after the overlay is up');
  });

  test('rc.sysinit keeps the /run the initramfs made, and stamps its steps in order', () => {
    assert.match(sysinit, /^\$bb grep -q '\^run \/run ' \/proc\/mounts \|\| \$bb mount -t tmpfs -o mode=0755,nosuid,nodev run \/run$/m);
    const order = ['. /etc/berth/stamp.sh', 'berth_stamp sysinit', 'berth_stamp network-up', 'berth_stamp data-disk-ready', 'berth_stamp sysinit-done'];
    const at = order.map((l) => sysinit.indexOf(l));
    assert.ok(at.every((i) => i >= 0));
    assert.deepEqual(
      [...at].sort((a, b) => a - b),
      at,
    );
    assert.ok(sysinit.indexOf('berth_stamp network-up') > sysinit.indexOf('udhcpc -i'), 'after the network is configured');
    assert.ok(sysinit.indexOf('berth_stamp data-disk-ready') > sysinit.indexOf('mount --bind "/mnt/data/$d"'), 'after the data disk is bound');
  });

  test('run-dockerd stamps its launch before exec, and every guest step name is one the engine knows', () => {
    const dockerd = read('rootfs/etc/berth/run-dockerd');
    assert.ok(dockerd.indexOf('berth_stamp dockerd-launched') < dockerd.indexOf('exec /usr/sbin/dockerd'));
    const all = [init, sysinit, read('rootfs/etc/berth/run-sshd'), read('rootfs/etc/berth/run-containerd'), dockerd].join('\n');
    const names = [...all.matchAll(/berth_stamp (\S+)/g), ...all.matchAll(/ ([a-z][a-z-]+) '\*?[A-Za-z]/g)].map((m) => m[1]!).filter((x) => x !== '"$_bs_s"');
    assert.ok(names.length >= 10, names.join(' '));
    for (const name of names) assert.ok(name in BOOT_STEPS, `${name} is in BOOT_STEPS`);
  });
});
