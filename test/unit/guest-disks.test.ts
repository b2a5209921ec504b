/**
 * How the guest finds its disks (vm-images/rootfs/etc/berth/disks.sh, which
 * rc.sysinit sources): by the virtio serial under QEMU and vfkit, by SCSI
 * LUN under Hyper-V, whose synthetic SCSI disks carry no serial we can set.
 * The script runs for real, with dash (/bin/sh) and busybox sh (the guest's
 * shell), against fake sysfs trees laid out as the kernel lays them out:
 * /sys/block/<dev> -> ../devices/.../<H:C:T:L>/block/<dev>, whose `device`
 * link names the SCSI address, and /sys/class/scsi_host/host<H>/proc_name
 * ("storvsc" for Hyper-V's controllers).
 *
 * The LUN table exists twice, in the guest's shell and in the engine's
 * HYPERV_DISK_LUNS, which the Hyper-V create script attaches by: the last
 * tests check that the two agree.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, gatedSuite, test } from '../helpers/prereq-gate.js';
import type { VmSpec } from '../../app/engine/drivers/driver.js';
import { HypervDriver } from '../../app/engine/drivers/hyperv.js';
import { buildCreateScript, HYPERV_DISK_LUNS, hypervDiskLun } from '../../app/engine/drivers/hyperv-scripts.js';
import { buildVmSpec } from '../../app/engine/drivers/vm-spec.js';
import { isBerthError } from '../../app/contract/errors.js';
import { instancePaths } from '../../app/base/paths.js';
import { ROOT } from '../helpers/run.js';
import { anyShell, guestShells } from '../helpers/guest-shells.js';
import { shortTempDir } from '../helpers/temp.js';

const DISKS_SH = path.join(ROOT, 'vm-images/rootfs/etc/berth/disks.sh');
const RC_SYSINIT = path.join(ROOT, 'vm-images/rootfs/etc/berth/rc.sysinit');

const t = shortTempDir('gdk');
after(() => t.cleanup());

const SHELLS = guestShells();

let n = 0;
/** A fresh fake sysfs root. */
function sysfs(): string {
  const root = path.join(t.dir, `sys${++n}`);
  fs.mkdirSync(path.join(root, 'block'), { recursive: true });
  fs.mkdirSync(path.join(root, 'class/scsi_host'), { recursive: true });
  return root;
}

function link(target: string, at: string): void {
  fs.mkdirSync(path.dirname(at), { recursive: true });
  fs.symlinkSync(path.relative(path.dirname(at), target), at);
}

/**
 * A virtio-blk disk as under QEMU or vfkit: /sys/block/<dev>/serial, which
 * the kernel writes with no trailing newline (virtio_blk.c serial_show
 * returns strlen of the id), unlike most sysfs attributes.
 */
function virtioDisk(root: string, dev: string, serial: string, newline = false): void {
  const dir = path.join(root, `devices/pci0000:00/0000:00:0${n}.0/virtio${dev.charCodeAt(2)}/block`, dev);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'serial'), newline ? `${serial}\n` : serial);
  link(dir, path.join(root, 'block', dev));
}

/** The VMBus device of Hyper-V SCSI controller <guid>, as storvsc's host <h>. */
function scsiHost(root: string, h: number, procName = 'storvsc', guid = `f8b3781a-1e82-4818-a1c3-63d806ec15b${h}`): string {
  const hostDir = path.join(root, 'devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0004:00/VMBUS:00', guid, `host${h}`);
  const sh = path.join(hostDir, 'scsi_host', `host${h}`);
  fs.mkdirSync(sh, { recursive: true });
  fs.writeFileSync(path.join(sh, 'proc_name'), `${procName}\n`);
  link(sh, path.join(root, 'class/scsi_host', `host${h}`));
  return hostDir;
}

/** A SCSI disk at address h:c:t:l on a host made by scsiHost. */
function scsiDisk(hostDir: string, root: string, dev: string, hctl: string, partitions = 0): void {
  const [h, c, tg] = hctl.split(':');
  const sdev = path.join(hostDir, `target${h}:${c}:${tg}`, hctl);
  const blk = path.join(sdev, 'block', dev);
  fs.mkdirSync(blk, { recursive: true });
  fs.writeFileSync(path.join(sdev, 'vendor'), 'Msft    \n');
  fs.writeFileSync(path.join(sdev, 'model'), 'Virtual Disk    \n');
  fs.symlinkSync(`../../../${hctl}`, path.join(blk, 'device'));
  for (let p = 1; p <= partitions; p++) fs.mkdirSync(path.join(blk, `${dev}${p}`));
  link(blk, path.join(root, 'block', dev));
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function sh(shell: { argv: string[] }, root: string, script: string, ...args: string[]): Run {
  const r = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), '-c', `. "$0"; ${script}`, DISKS_SH, ...args], {
    env: { PATH: process.env.PATH, BERTH_SYSFS: root },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}
const find = (shell: { argv: string[] }, root: string, name: string) => sh(shell, root, 'berth_find_disk "$1"', name);

for (const shell of SHELLS) {
  gatedSuite(`disks.sh under ${shell.name}`, shell.problem, {}, () => {
    test('QEMU and vfkit: each disk by its virtio serial, in any probe order', () => {
      const root = sysfs();
      virtioDisk(root, 'vda', 'berth-cfg');
      virtioDisk(root, 'vdb', 'berth-root');
      virtioDisk(root, 'vdc', 'berth-data');
      assert.deepEqual(find(shell, root, 'berth-data'), { status: 0, stdout: '/dev/vdc', stderr: '' });
      assert.deepEqual(find(shell, root, 'berth-cfg'), { status: 0, stdout: '/dev/vda', stderr: '' });
      assert.equal(find(shell, root, 'berth-nope').status, 1);
      // A serial with a newline (not what virtio_blk writes, but harmless) is found too.
      const nl = sysfs();
      virtioDisk(nl, 'vda', 'berth-data', true);
      assert.equal(find(shell, nl, 'berth-data').stdout, '/dev/vda');
    });

    test('the serial file as the kernel writes it, read from real sysfs where it exists', (ctx) => {
      const real = fs.existsSync('/sys/block') ? fs.readdirSync('/sys/block').find((d) => fs.existsSync(`/sys/block/${d}/serial`)) : undefined;
      if (!real) {
        ctx.skip('no block device with a serial on this machine');
        process.stdout.write('# real-sysfs serial check not run: no /sys/block/*/serial here\n');
        return;
      }
      const serial = fs.readFileSync(`/sys/block/${real}/serial`, 'utf8');
      if (!serial.trim()) {
        ctx.skip(`${real} has an empty serial`);
        return;
      }
      const r = sh(shell, '/sys', 'berth_disk_by_serial "$1"', serial.trim());
      assert.deepEqual([r.status, r.stdout], [0, `/dev/${real}`], `serial ${JSON.stringify(serial)}`);
    });

    test('no disk with the name and no Hyper-V controller: no wait at all', () => {
      const root = sysfs();
      virtioDisk(root, 'vda', 'berth-root');
      const t0 = Date.now();
      const r = sh(shell, root, 'berth_wait_disk "$1"', 'berth-data');
      assert.equal(r.status, 1);
      assert.equal(r.stdout, '');
      assert.ok(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
    });

    test('Hyper-V: no serial, so data and config disks by LUN on the storvsc controller, whatever their sdX names', () => {
      const root = sysfs();
      const host = scsiHost(root, 0);
      // The SCSI scan is asynchronous: names follow the order disks answered, not the LUN.
      scsiDisk(host, root, 'sda', '0:0:0:2');
      scsiDisk(host, root, 'sdb', '0:0:0:0', 2);
      scsiDisk(host, root, 'sdc', '0:0:0:1');
      const data = find(shell, root, 'berth-data');
      assert.deepEqual([data.status, data.stdout], [0, '/dev/sdc']);
      assert.match(data.stderr, /berth-data is \/dev\/sdc \(Hyper-V SCSI LUN 1\)/, 'the serial log says how it was found');
      assert.equal(find(shell, root, 'berth-cfg').stdout, '/dev/sda');
      assert.equal(find(shell, root, 'berth-efi').stdout, '/dev/sdb');
      assert.equal(find(shell, root, 'berth-root').status, 1, 'the root image is a partition of the EFI disk, found by the initramfs');
    });

    test("Hyper-V: the controller's host number can be anything", () => {
      const root = sysfs();
      const host = scsiHost(root, 3);
      scsiDisk(host, root, 'sda', '3:0:0:0');
      scsiDisk(host, root, 'sdb', '3:0:0:1');
      scsiDisk(host, root, 'sdc', '3:0:0:2');
      assert.equal(find(shell, root, 'berth-data').stdout, '/dev/sdb');
      assert.equal(find(shell, root, 'berth-cfg').stdout, '/dev/sdc');
    });

    test('only storvsc disks at channel 0, target 0 count: a USB stick at LUN 1 is never the data disk', () => {
      const root = sysfs();
      const hv = scsiHost(root, 0);
      scsiDisk(hv, root, 'sda', '0:0:0:0', 2);
      scsiDisk(hv, root, 'sdb', '0:0:1:1'); // another target
      scsiDisk(hv, root, 'sdc', '0:1:0:1'); // another channel
      scsiDisk(hv, root, 'sdd', '0:0:0:12'); // LUN 12, not 1 or 2
      const usb = scsiHost(root, 4, 'usb-storage', '1-1:1.0');
      scsiDisk(usb, root, 'sde', '4:0:0:1');
      assert.equal(find(shell, root, 'berth-data').status, 1);
      assert.equal(find(shell, root, 'berth-cfg').status, 1);
    });

    test('two Hyper-V disks at the same LUN: no guess, and no waiting for one to go away', () => {
      const root = sysfs();
      scsiDisk(scsiHost(root, 0), root, 'sda', '0:0:0:1');
      scsiDisk(scsiHost(root, 1), root, 'sdb', '1:0:0:1');
      const t0 = Date.now();
      const r = sh(shell, root, 'berth_wait_disk "$1"', 'berth-data');
      assert.equal(r.status, 1);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /two Hyper-V disks at LUN 1 \(sda and sdb\); not guessing which is berth-data/);
      assert.ok(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
    });

    test('a serial, where there is one, wins over a LUN', () => {
      const root = sysfs();
      scsiDisk(scsiHost(root, 0), root, 'sda', '0:0:0:1');
      virtioDisk(root, 'vda', 'berth-data');
      assert.equal(find(shell, root, 'berth-data').stdout, '/dev/vda');
    });

    test('Hyper-V: a disk the background scan finds late is waited for; a missing one gives up', async () => {
      const root = sysfs();
      const host = scsiHost(root, 0);
      scsiDisk(host, root, 'sda', '0:0:0:0', 2);
      const child = spawn(shell.argv[0]!, [...shell.argv.slice(1), '-c', '. "$0"; berth_wait_disk "$1"', DISKS_SH, 'berth-cfg'], {
        env: { PATH: process.env.PATH, BERTH_SYSFS: root },
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      const done = new Promise<number | null>((resolve) => child.on('close', resolve));
      await new Promise((r) => setTimeout(r, 400));
      scsiDisk(host, root, 'sdb', '0:0:0:2');
      assert.equal(await done, 0);
      assert.equal(out.trim(), '/dev/sdb');

      const t0 = Date.now();
      const r = sh(shell, root, 'berth_wait_disk "$1" 5', 'berth-data');
      assert.equal(r.status, 1);
      const ms = Date.now() - t0;
      assert.ok(ms >= 400 && ms < 5000, `gave up after ${ms} ms (5 tries, 0.1 s apart)`);
    });
  });
}

const { shell, problem: noShell } = anyShell();
gatedSuite('the LUN table: guest and engine agree', noShell, {}, () => {
  test('berth_disk_lun in disks.sh answers HYPERV_DISK_LUNS for every name, and nothing else', () => {
    const text = fs.readFileSync(DISKS_SH, 'utf8');
    const body = /berth_disk_lun\(\) \{\n\tcase "\$1" in\n([\s\S]*?)\tesac/.exec(text)?.[1];
    assert.ok(body, 'the table in disks.sh');
    const inShell = Object.fromEntries([...body.matchAll(/^\t(berth-[a-z]+)\) echo (\d+) ;;$/gm)].map((m) => [m[1], Number(m[2])]));
    assert.deepEqual(inShell, HYPERV_DISK_LUNS);
    const root = sysfs();
    for (const [name, lun] of Object.entries(HYPERV_DISK_LUNS)) {
      assert.deepEqual(sh(shell, root, 'berth_disk_lun "$1"', name), { status: 0, stdout: String(lun), stderr: '' }, name);
    }
    assert.equal(sh(shell, root, 'berth_disk_lun "$1"', 'berth-root').status, 1);
    assert.equal(new Set(Object.values(HYPERV_DISK_LUNS)).size, Object.keys(HYPERV_DISK_LUNS).length, 'one disk per LUN');
  });

  test("the Hyper-V create script attaches every disk of the engine's spec at its name's LUN", () => {
    const win = instancePaths('default', 'C:\\Users\\me\\.berth', 'win32');
    const img = { dir: 'C:\\cache\\img', kernel: 'C:\\cache\\img\\vmlinuz', initrd: 'C:\\cache\\img\\initrd.img', rootfs: 'C:\\cache\\img\\rootfs.squashfs' };
    const driver = new HypervDriver({ run: async () => ({ code: 0, stdout: '', stderr: '' }) });
    const spec = buildVmSpec(
      'hyperv',
      driver.guestTraits('x86_64'),
      { paths: win, image: img, arch: 'x86_64', accel: 'hyperv', cpus: 2, memoryMiB: 2048, diskGiB: 64, sshHostPort: 0 },
      () => true,
    );
    assert.deepEqual(
      spec.disks.map((d) => d.serial),
      ['berth-data', 'berth-cfg'],
    );
    const script = buildCreateScript(spec, { switchName: 'Default Switch' });
    const attached = [
      ...script.matchAll(/Add-VMHardDiskDrive -VMName \$name -ControllerType SCSI -ControllerNumber 0 -ControllerLocation (\d+) -Path (\S+)/g),
    ].map((m) => [Number(m[1]), m[2]]);
    assert.deepEqual(attached, [
      [HYPERV_DISK_LUNS['berth-efi'], '$child'], // a differencing child of efi.vhdx
      [HYPERV_DISK_LUNS['berth-data'], `'${win.dataVhdx}'`],
      [HYPERV_DISK_LUNS['berth-cfg'], '$child'], // a differencing child of config.vhd
    ]);
    assert.match(script, new RegExp(`\\$bootDisk = Get-VMHardDiskDrive .* -ControllerLocation ${HYPERV_DISK_LUNS['berth-efi']}\\n`));
  });

  test('a disk the guest has no LUN for is refused before any script runs', () => {
    assert.equal(hypervDiskLun('berth-data'), 1);
    assert.throws(
      () => hypervDiskLun('berth-root'),
      (e) => isBerthError(e, 'VM_SPEC_UNSUPPORTED') && /berth-efi, berth-data, berth-cfg/.test(e.message),
    );
    const spec = {
      name: 'x',
      disks: [{ path: 'C:\\x\\other.vhdx', serial: 'other', readonly: false, format: 'raw' }],
      efi: { image: 'C:\\x\\efi.vhdx', variableStore: '' },
    };
    assert.throws(
      () => buildCreateScript({ ...(spec as unknown as VmSpec), cpus: 1, memoryMiB: 1024, pidFile: 'C:\\x\\p' }, { switchName: 's' }),
      (e) => isBerthError(e, 'VM_SPEC_UNSUPPORTED'),
    );
  });

  test('rc.sysinit finds both disks through disks.sh, waiting for them on Hyper-V', () => {
    const rc = fs.readFileSync(RC_SYSINIT, 'utf8');
    assert.match(rc, /^\. \/etc\/berth\/disks\.sh$/m);
    assert.match(rc, /^cfg=\$\(berth_wait_disk berth-cfg\)/m);
    assert.match(rc, /^data=\$\(berth_wait_disk berth-data\)/m);
    assert.doesNotMatch(rc, /find_disk\(\)/, 'no second copy of the finder');
  });
});

test('Hyper-V: the KVP daemon is in the image and starts only where Hyper-V offers its channel', () => {
  const packages = fs.readFileSync(path.join(ROOT, 'vm-images/packages.txt'), 'utf8');
  assert.match(packages, /^hyperv-daemons$/m, 'hv_kvp_daemon: the guest addresses Get-VMNetworkAdapter reports');
  const rc = fs.readFileSync(RC_SYSINIT, 'utf8');
  assert.match(rc, /^\[ -e \/dev\/vmbus\/hv_kvp \] && hv_kvp_daemon$/m);
  assert.ok(rc.indexOf('hv_kvp_daemon') > rc.indexOf('xargs modprobe -aq'), 'after coldplug loaded hv_utils');
});
