/**
 * Rosetta in the guest (vm-images/rootfs/etc/berth/rosetta.sh, which
 * rc.sysinit runs when config.env says BERTH_ROSETTA=<tag>), run for real
 * with dash and busybox sh against a fake tree: stand-ins for `mount` and
 * `modprobe` (BERTH_MOUNT, BERTH_MODPROBE) record their arguments and play the kernel (the
 * virtiofs share shows a `rosetta` binary, binfmt_misc a `register` file).
 *
 * What is checked: the share is mounted read-only by its tag, binfmt_misc is
 * loaded and mounted when it is not there yet, and the exact line written to
 * its register file: name rosetta, magic and mask for x86_64 ELF files,
 * flags CF, as in Apple's "Running Intel Binaries in Linux VMs with Rosetta"
 * (update-binfmts --credentials yes --preserve no --fix-binary yes) and
 * vfkit's doc/usage.md. The magic and mask are decoded as binfmt_misc does
 * and matched the way binfmt_misc does against ELF headers: x86_64
 * executables and PIEs match; arm64, 32-bit x86, big-endian, relocatable
 * objects and core files do not.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, gatedSuite, test } from '../helpers/prereq-gate.js';
import { ROOT } from '../helpers/run.js';
import { guestShells } from '../helpers/guest-shells.js';
import { shortTempDir } from '../helpers/temp.js';

const ROSETTA_SH = path.join(ROOT, 'vm-images/rootfs/etc/berth/rosetta.sh');
const RC_SYSINIT = path.join(ROOT, 'vm-images/rootfs/etc/berth/rc.sysinit');
const t = shortTempDir('gro');
after(() => t.cleanup());

const SHELLS = guestShells();

/** Stand-ins for mount and modprobe: record argv; mounts make what the kernel would show. */
const bin = path.join(t.dir, 'bin');
fs.mkdirSync(bin);
fs.writeFileSync(
  path.join(bin, 'mount'),
  `#!/bin/sh
echo "mount $*" >>"$FAKE_LOG"
[ "$2" = "$FAKE_MOUNT_FAIL" ] && { echo "mount: $2: failed" >&2; exit 32; }
case "$2" in
virtiofs) [ -n "$FAKE_NO_BINARY" ] || { : >"$6/rosetta"; chmod 755 "$6/rosetta"; } ;;
binfmt_misc) : >"$4/register" ;;
esac
`,
  { mode: 0o755 },
);
fs.writeFileSync(path.join(bin, 'modprobe'), '#!/bin/sh\necho "modprobe $*" >>"$FAKE_LOG"\n', { mode: 0o755 });

let n = 0;
interface Run {
  status: number | null;
  stderr: string;
  log: string[];
  register?: string;
  binfmt: string;
  dir: string;
}
function runRosetta(shell: { argv: string[] }, o: { tag?: string; fail?: string; noBinary?: boolean; mounted?: boolean; registered?: boolean } = {}): Run {
  const root = path.join(t.dir, `r${++n}`);
  const binfmt = path.join(root, 'proc/sys/fs/binfmt_misc');
  const dir = path.join(root, 'run/berth/rosetta');
  fs.mkdirSync(binfmt, { recursive: true });
  if (o.mounted) fs.writeFileSync(path.join(binfmt, 'register'), '');
  if (o.registered) fs.writeFileSync(path.join(binfmt, 'rosetta'), 'enabled\n');
  const log = path.join(root, 'log');
  const r = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), '-c', '. "$0"; berth_rosetta "$1"', ROSETTA_SH, o.tag ?? 'rosetta'], {
    env: {
      PATH: process.env.PATH,
      BERTH_MOUNT: path.join(bin, 'mount'),
      BERTH_MODPROBE: path.join(bin, 'modprobe'),
      BERTH_BINFMT: binfmt,
      BERTH_ROSETTA_DIR: dir,
      FAKE_LOG: log,
      FAKE_MOUNT_FAIL: o.fail ?? '',
      FAKE_NO_BINARY: o.noBinary ? '1' : '',
    },
    encoding: 'utf8',
  });
  const reg = path.join(binfmt, 'register');
  return {
    status: r.status,
    stderr: r.stderr.trim(),
    log: fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [],
    register: fs.existsSync(reg) ? fs.readFileSync(reg, 'utf8') : undefined,
    binfmt,
    dir,
  };
}

const MAGIC = String.raw`\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00`;
const MASK = String.raw`\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`;

for (const shell of SHELLS) {
  gatedSuite(`rosetta.sh under ${shell.name}`, shell.problem, {}, () => {
    test('mounts the share read-only, loads and mounts binfmt_misc, registers x86_64 ELF with flags CF', () => {
      const r = runRosetta(shell);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.log, [
        'modprobe -q virtiofs',
        `mount -t virtiofs -o ro rosetta ${r.dir}`,
        'modprobe -q binfmt_misc',
        `mount -t binfmt_misc binfmt_misc ${r.binfmt}`,
      ]);
      assert.equal(r.register, `:rosetta:M::${MAGIC}:${MASK}:${r.dir}/rosetta:CF\n`, 'backslash escapes kept for the kernel to decode');
    });

    test('binfmt_misc already mounted: only the share is mounted; already registered: nothing written', () => {
      const m = runRosetta(shell, { mounted: true });
      assert.equal(m.status, 0, m.stderr);
      assert.ok(!m.log.some((l) => l.includes('binfmt_misc')), m.log.join('\n'));
      assert.match(m.register ?? '', /^:rosetta:M::/);
      const again = runRosetta(shell, { mounted: true, registered: true });
      assert.equal(again.status, 0);
      assert.equal(again.register, '', 'the existing entry is kept');
    });

    test('failures say what went wrong and register nothing; the VM runs on', () => {
      const noShare = runRosetta(shell, { fail: 'virtiofs' });
      assert.equal(noShare.status, 1);
      assert.match(noShare.stderr, /cannot mount the Rosetta share "rosetta"/);
      assert.equal(noShare.register, undefined);
      const noBinary = runRosetta(shell, { noBinary: true });
      assert.equal(noBinary.status, 1);
      assert.match(noBinary.stderr, /has no rosetta binary/);
      const noBinfmt = runRosetta(shell, { fail: 'binfmt_misc' });
      assert.equal(noBinfmt.status, 1);
      assert.match(noBinfmt.stderr, /cannot mount binfmt_misc/);
      const noTag = runRosetta(shell, { tag: '' });
      assert.equal(noTag.status, 1);
      assert.deepEqual(noTag.log, [], 'nothing mounted without a tag');
    });
  });
}

/** binfmt_misc's own decoding of \xHH escapes. */
function unescape(s: string): Buffer {
  return Buffer.from(
    s.replace(/\\x([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
    'latin1',
  );
}

/** The first 20 bytes of an ELF header: e_ident, e_type, e_machine. */
function elf(cls: number, type: number, machine: number): Buffer {
  const b = Buffer.alloc(20);
  b.write('\x7fELF', 0, 'latin1');
  b[4] = cls; // 1: 32-bit, 2: 64-bit
  b[5] = 1; // little-endian
  b[6] = 1; // version 1
  b.writeUInt16LE(type, 16);
  b.writeUInt16LE(machine, 18);
  return b;
}

test('the magic and mask match x86_64 executables and PIEs, and nothing else', () => {
  const magic = unescape(MAGIC);
  const mask = unescape(MASK);
  assert.equal(magic.length, 20);
  assert.equal(mask.length, 20);
  // fs/binfmt_misc.c check_file(): a byte matches when ((byte ^ magic) & mask) == 0.
  const matches = (h: Buffer) => h.every((byte, i) => ((byte ^ magic[i]!) & mask[i]!) === 0);
  assert.ok(matches(elf(2, 2, 0x3e)), 'x86_64 ET_EXEC');
  assert.ok(matches(elf(2, 3, 0x3e)), 'x86_64 ET_DYN (PIE, ld.so)');
  const gnu = elf(2, 2, 0x3e);
  gnu[7] = 3; // EI_OSABI GNU/Linux, as some static binaries carry
  assert.ok(matches(gnu), 'any OS ABI byte (the mask ignores EI_OSABI)');
  assert.ok(!matches(elf(2, 2, 0xb7)), 'arm64 runs natively');
  assert.ok(!matches(elf(1, 2, 0x03)), '32-bit x86 is not for Rosetta');
  assert.ok(!matches(elf(2, 1, 0x3e)), 'relocatable object');
  assert.ok(!matches(elf(2, 4, 0x3e)), 'core file');
  const be = elf(2, 2, 0x3e);
  be[5] = 2;
  assert.ok(!matches(be), 'big-endian');
});

test('rc.sysinit runs it before dockerd, only when the engine asks', () => {
  const rc = fs.readFileSync(RC_SYSINIT, 'utf8');
  assert.match(rc, /^\. \/etc\/berth\/rosetta\.sh$/m);
  assert.match(rc, /^if \[ -n "\$BERTH_ROSETTA" \]; then\n\tif berth_rosetta "\$BERTH_ROSETTA"; then/m);
  assert.ok(rc.indexOf('berth_rosetta "$BERTH_ROSETTA"') > rc.indexOf('. /run/berth/cfg/config.env'), 'after config.env is read');
  const inittab = fs.readFileSync(path.join(ROOT, 'vm-images/rootfs/etc/inittab'), 'utf8');
  assert.match(inittab, /::sysinit:\/etc\/berth\/rc\.sysinit[\s\S]*::respawn:\/etc\/berth\/run-dockerd/, 'dockerd starts after sysinit');
});
