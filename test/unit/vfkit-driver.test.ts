/**
 * The vfkit driver, checked against vfkit's documented command line and REST
 * API (github.com/crc-org/vfkit, doc/usage.md, v0.6):
 *  --cpus N, --memory MiB,
 *  --bootloader linux,kernel=PATH,initrd=PATH,cmdline="..."  (the command line in double quotes)
 *  --bootloader efi,variable-store=PATH,create                 (macOS 13+)
 *  --device virtio-blk,path=PATH[,readonly][,deviceId=ID]     (deviceId: /dev/disk/by-id identifier)
 *  --device virtio-net,nat,mac=52:54:00:70:2b:71              (address from /var/db/dhcpd_leases)
 *  --device virtio-fs,sharedDir=PATH,mountTag=TAG
 *  --device rosetta,mountTag=TAG[,install]
 *  --device virtio-serial,logFilePath=PATH, --device virtio-rng,
 *  --device virtio-vsock,port=N,socketURL=PATH,connect|listen
 *  --restful-uri unix:///PATH; GET /vm/state -> {"state":"VirtualMachineStateRunning",...};
 *  POST /vm/state {"state":"Stop"|"HardStop"}.
 * vfkit's parser (pkg/cmdline, pkg/config) splits --device values on every
 * comma and --bootloader values on commas outside double quotes.
 *
 * Behaviour is checked against a fake `vfkit` (a Node script first on PATH)
 * that records its argv, serves the REST API on the unix socket, writes a
 * bootpd-style lease, and can crash or hang on shutdown.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, afterEach, test } from 'node:test';
import { defaultMacAddress, HOST_RELAY_ADDRESS, stopVm, type RunningVm, type VmSpec } from '../../app/engine/drivers/driver.js';
import { buildVfkitArgs, checkVfkitKernel, findVfkit, kernelKind, restfulUri, VfkitDriver, vfkitCmdline } from '../../app/engine/drivers/vfkit.js';
import { leaseIpFor, leaseMac, parseDhcpLeases } from '../../app/engine/drivers/dhcp-leases.js';
import { isBerthError } from '../../app/contract/errors.js';
import { pidAlive } from '../../app/base/process-util.js';
import { installFake } from '../helpers/fake-hypervisors.js';
import { fakeArm64Image, shortTempDir, withEnv } from '../helpers/temp.js';

const spec: VmSpec = {
  name: 'default',
  arch: 'aarch64',
  accel: 'hvf',
  cpus: 4,
  memoryMiB: 4096,
  kernel: '/img/Image',
  initrd: '/img/initrd.img',
  cmdline: 'console=ttyAMA0 quiet panic=-1',
  disks: [
    { path: '/img/rootfs.squashfs', serial: 'berth-root', readonly: true, format: 'raw' },
    { path: '/Users/me/.berth/default/data.img', serial: 'berth-data', readonly: false, format: 'raw' },
    { path: '/Users/me/.berth/default/config.tar', serial: 'berth-cfg', readonly: true, format: 'raw' },
  ],
  sshHostPort: 0,
  serialLog: '/Users/me/.berth/default/serial.log',
  pidFile: '/Users/me/.berth/default/vfkit.pid',
  controlSocket: '/Users/me/.berth/default/vfkit.sock',
  macAddress: '52:54:00:0a:0b:0c',
};

test('the exact command line for a Linux boot', () => {
  assert.deepEqual(buildVfkitArgs(spec), [
    '--cpus',
    '4',
    '--memory',
    '4096',
    '--bootloader',
    'linux,kernel=/img/Image,initrd=/img/initrd.img,cmdline="console=hvc0 quiet panic=-1"',
    '--device',
    'virtio-blk,path=/img/rootfs.squashfs,readonly,deviceId=berth-root',
    '--device',
    'virtio-blk,path=/Users/me/.berth/default/data.img,deviceId=berth-data',
    '--device',
    'virtio-blk,path=/Users/me/.berth/default/config.tar,readonly,deviceId=berth-cfg',
    '--device',
    'virtio-net,nat,mac=52:54:00:0a:0b:0c',
    '--device',
    'virtio-serial,logFilePath=/Users/me/.berth/default/serial.log',
    '--device',
    'virtio-rng',
    '--restful-uri',
    'unix:///Users/me/.berth/default/vfkit.sock',
  ]);
});

test('EFI boot: variable store created on first boot, boot disk first', () => {
  const a = buildVfkitArgs({ ...spec, efi: { image: '/img/efi.img', variableStore: '/Users/me/.berth/default/efi-vars' } });
  const i = a.indexOf('--bootloader');
  assert.equal(a[i + 1], 'efi,variable-store=/Users/me/.berth/default/efi-vars,create');
  assert.equal(a.filter((x) => x.startsWith('linux,')).length, 0);
  const devices = a.flatMap((x, k) => (a[k - 1] === '--device' ? [x] : []));
  assert.equal(devices[0], 'virtio-blk,path=/img/efi.img,deviceId=berth-efi');
});

test('virtiofs shares, Rosetta on arm64 only, vsock', () => {
  const withExtras: VmSpec = {
    ...spec,
    shares: [{ hostPath: '/Users/me', tag: 'home' }],
    rosetta: { tag: 'rosetta', install: true },
    vsock: [{ port: 1024, socketPath: '/Users/me/.berth/default/v.sock', direction: 'connect' }],
  };
  const devices = (s: VmSpec) => {
    const a = buildVfkitArgs(s);
    return a.flatMap((x, k) => (a[k - 1] === '--device' ? [x] : []));
  };
  const d = devices(withExtras);
  assert.ok(d.includes('virtio-fs,sharedDir=/Users/me,mountTag=home'));
  assert.ok(d.includes('rosetta,mountTag=rosetta,install'));
  assert.ok(d.includes('virtio-vsock,port=1024,socketURL=/Users/me/.berth/default/v.sock,connect'));
  assert.ok(!devices({ ...withExtras, arch: 'x86_64' }).some((x) => x.startsWith('rosetta')), 'Rosetta exists only on Apple silicon');
});

test('the kernel console is virtio-console (hvc0) under vfkit', () => {
  assert.equal(vfkitCmdline('console=ttyS0 quiet'), 'console=hvc0 quiet');
  assert.equal(vfkitCmdline('quiet'), 'quiet console=hvc0');
  assert.equal(vfkitCmdline('console=hvc0'), 'console=hvc0');
  assert.throws(
    () => vfkitCmdline('a="b c"'),
    (e) => isBerthError(e, 'VM_SPEC_UNSUPPORTED'),
  );
});

test('paths vfkit cannot carry are refused with a clear error', () => {
  for (const bad of ['/a,b/data.img', '/a"b/data.img', 'relative/data.img']) {
    assert.throws(
      () => buildVfkitArgs({ ...spec, disks: [{ path: bad, serial: 'x', readonly: false, format: 'raw' }] }),
      (e) => isBerthError(e, 'VM_SPEC_UNSUPPORTED') && e.hint.length > 0,
      bad,
    );
  }
  assert.throws(
    () => buildVfkitArgs({ ...spec, disks: [{ path: '/d.img', serial: 'a-serial-longer-than-20', readonly: false, format: 'raw' }] }),
    (e) => isBerthError(e, 'VM_SPEC_UNSUPPORTED'),
  );
  assert.throws(
    () => buildVfkitArgs({ ...spec, controlSocket: '/' + 'x'.repeat(110) }),
    (e) => isBerthError(e, 'SOCKET_PATH_TOO_LONG'),
  );
});

test('REST socket URI escapes what a URL parser would misread', () => {
  assert.equal(restfulUri('/Users/me/My Berth/vfkit.sock'), 'unix:///Users/me/My%20Berth/vfkit.sock');
  assert.equal(restfulUri('/a#b?c%d'), 'unix:///a%23b%3Fc%25d');
});

test('default MAC: stable per instance, locally administered unicast', () => {
  const m = defaultMacAddress('default');
  assert.equal(m, defaultMacAddress('default'));
  assert.notEqual(m, defaultMacAddress('other'));
  assert.match(m, /^52:54(:[0-9a-f]{2}){4}$/);
  const first = parseInt(m.slice(0, 2), 16);
  assert.equal(first & 0b11, 0b10);
});

test('DHCP leases: bootpd drops leading zeros; the newest lease wins', () => {
  const text = `{
\tname=berth
\tip_address=192.168.64.7
\thw_address=1,52:54:0:a:b:c
\tidentifier=1,52:54:0:a:b:c
\tlease=0x65000000
}
{
\tname=other
\tip_address=192.168.64.3
\thw_address=1,5a:94:ef:e4:c:ee
\tidentifier=1,5a:94:ef:e4:c:ee
\tlease=0x65000010
}
{
\tname=berth
\tip_address=192.168.64.9
\thw_address=1,52:54:0:a:b:c
\tidentifier=1,52:54:0:a:b:c
\tlease=0x65000020
}
`;
  assert.equal(parseDhcpLeases(text).length, 3);
  assert.equal(leaseMac('52:54:00:0A:0B:0C'), '52:54:0:a:b:c');
  assert.equal(leaseIpFor(text, '52:54:00:0a:0b:0c'), '192.168.64.9');
  assert.equal(leaseIpFor(text, '5a:94:ef:e4:0c:ee'), '192.168.64.3');
  assert.equal(leaseIpFor(text, '52:54:00:99:99:99'), undefined);
  assert.equal(leaseIpFor('', '52:54:00:0a:0b:0c'), undefined);
});

// ---------------------------------------------------------------- fake vfkit

const t = shortTempDir('vfk');
const bin = path.join(t.dir, 'bin');
installFake(bin, ['vfkit']);
const record = path.join(t.dir, 'argv.jsonl');
const leases = path.join(t.dir, 'dhcpd_leases');
const restoreEnv = withEnv({
  PATH: `${bin}${path.delimiter}${process.env.PATH}`,
  FAKE_VFKIT_RECORD: record,
  FAKE_VFKIT_LEASES: leases,
  FAKE_VFKIT_MODE: undefined,
});
const vms: RunningVm[] = [];
after(() => {
  restoreEnv();
  t.cleanup();
});
afterEach(async () => {
  for (const vm of vms.splice(0)) {
    if (pidAlive(vm.pid)) process.kill(vm.pid, 'SIGKILL');
    vm.detach();
  }
  delete process.env.FAKE_VFKIT_MODE;
});

let n = 0;
function liveSpec(): VmSpec {
  const dir = path.join(t.dir, `i${++n}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'Image'), fakeArm64Image());
  return {
    ...spec,
    name: `vm${n}`,
    macAddress: undefined,
    kernel: path.join(dir, 'Image'),
    initrd: path.join(dir, 'initrd'),
    disks: [{ path: path.join(dir, 'data.img'), serial: 'berth-data', readonly: false, format: 'raw' }],
    serialLog: path.join(dir, 'serial.log'),
    pidFile: path.join(dir, 'vfkit.pid'),
    controlSocket: path.join(dir, 'vfkit.sock'),
  };
}
const driver = new VfkitDriver({ leasesFile: leases, pollMs: 100, startTimeoutMs: 5000 });
const recorded = () =>
  fs
    .readFileSync(record, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as unknown);

test('start runs vfkit with the built command line and waits for the running state', async () => {
  fs.rmSync(record, { force: true });
  const s = liveSpec();
  const vm = await driver.start(s);
  vms.push(vm);
  assert.deepEqual(recorded()[0], buildVfkitArgs(s));
  assert.equal(Number(fs.readFileSync(s.pidFile, 'utf8')), vm.pid);
  assert.ok(vm.alive());
  assert.equal(await vm.state!(), 'VirtualMachineStateRunning');
  assert.match(fs.readFileSync(s.serialLog, 'utf8'), /Linux version/);
  assert.deepEqual(driver.guestTraits('aarch64'), {
    console: 'hvc0',
    network: 'dhcp',
    hostLoopback: { address: HOST_RELAY_ADDRESS, via: 'relay' },
    disks: 'virtio-serial',
  });
});

test('the guest address comes from the DHCP lease for its MAC', async () => {
  const s = liveSpec();
  const vm = await driver.start(s);
  vms.push(vm);
  assert.deepEqual(await vm.sshEndpoint!(5000), { host: '192.168.64.42', port: 22 });
});

test('graceful stop: REST Stop, vfkit exits, files cleaned, exit event', async () => {
  fs.rmSync(record, { force: true });
  const s = liveSpec();
  const vm = await driver.start(s);
  vms.push(vm);
  const exited = new Promise<string>((r) => vm.once('exit', (e) => r(e.reason)));
  assert.equal(await stopVm(vm, 3000), 'graceful');
  assert.ok(recorded().some((r) => JSON.stringify(r) === '{"post":"Stop"}'));
  assert.ok(!vm.alive());
  assert.ok(await exited);
  assert.ok(!fs.existsSync(s.pidFile));
  assert.match(fs.readFileSync(s.serialLog, 'utf8'), /Power down/);
});

test('hung shutdown: the guest ignores Stop, so the VM is forced off with HardStop', async () => {
  process.env.FAKE_VFKIT_MODE = 'hang-stop';
  fs.rmSync(record, { force: true });
  const vm = await driver.start(liveSpec());
  vms.push(vm);
  assert.equal(await stopVm(vm, 500), 'forced');
  const posts = recorded().filter((r) => typeof r === 'object' && r !== null && 'post' in r);
  assert.deepEqual(posts, [{ post: 'Stop' }, { post: 'HardStop' }]);
  assert.ok(!pidAlive(vm.pid));
});

test('a vfkit that ignores the API and SIGTERM is killed', async () => {
  process.env.FAKE_VFKIT_MODE = 'hang-all';
  const vm = await driver.start(liveSpec());
  vms.push(vm);
  const t0 = Date.now();
  await vm.kill(300);
  assert.ok(!pidAlive(vm.pid), 'SIGKILL ends it');
  assert.ok(Date.now() - t0 < 15_000);
});

test('vfkit failing to start is reported with its own error and the command line', async () => {
  process.env.FAKE_VFKIT_MODE = 'crash-start';
  const s = liveSpec();
  await assert.rejects(driver.start(s), (e) => {
    assert.ok(isBerthError(e, 'VFKIT_FAILED'));
    assert.match(e.message, /exit status 1/);
    assert.match(e.message, /Virtualization is not available/);
    assert.match(e.details ?? '', /--restful-uri/);
    return true;
  });
  assert.ok(!fs.existsSync(s.pidFile));
});

test('a crash after start is an exit event', async () => {
  process.env.FAKE_VFKIT_MODE = 'crash-later';
  const s = liveSpec();
  const vm = await driver.start(s);
  vms.push(vm);
  // The driver's timers do not hold the event loop open (the engine's servers do).
  const hold = setInterval(() => undefined, 1000);
  const reason = await new Promise<string>((r) => vm.once('exit', (e) => r(e.reason))).finally(() => clearInterval(hold));
  assert.match(reason, /vfkit exited|gone/);
  assert.ok(!vm.alive());
  assert.match(fs.readFileSync(s.serialLog, 'utf8'), /Kernel panic/);
  await assert.rejects(vm.sshEndpoint!(300), (e) => isBerthError(e, 'VM_EXITED'));
});

test('attach finds a running vfkit by its pid file; a stale pid file is dropped', async () => {
  const s = liveSpec();
  const vm = await driver.start(s);
  vms.push(vm);
  vm.detach();
  const again = await new VfkitDriver({ leasesFile: leases, pollMs: 100 }).attach(s);
  assert.ok(again);
  vms.push(again);
  assert.equal(again.pid, vm.pid);
  assert.equal(await again.state!(), 'VirtualMachineStateRunning');
  await again.kill(1000);
  assert.ok(!again.alive());

  const stale = liveSpec();
  fs.writeFileSync(stale.pidFile, '999999\n');
  assert.equal(await driver.attach(stale), null);
  assert.ok(!fs.existsSync(stale.pidFile));
});

test('kernel files told apart by their headers', () => {
  assert.equal(kernelKind(fakeArm64Image()), 'arm64-image');
  assert.equal(kernelKind(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0])), 'gzip');
  const zboot = Buffer.alloc(64);
  zboot.write('MZ', 0, 'latin1');
  zboot.write('zimg', 4, 'latin1');
  assert.equal(kernelKind(zboot), 'efi-zboot');
  const bz = Buffer.alloc(0x300);
  bz.write('HdrS', 0x202, 'latin1');
  assert.equal(kernelKind(bz), 'x86-bzimage');
  assert.equal(kernelKind(Buffer.from('hello')), 'unknown');
  assert.equal(kernelKind(Buffer.alloc(0)), 'unknown');
});

test('an arm64 kernel that is not the plain Image is refused before vfkit runs (it would hang the VM)', async () => {
  for (const [name, data, what] of [
    ['Image.gz', Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), /gzip-compressed/],
    ['zboot', Buffer.concat([Buffer.from('MZ\0\0zimg'), Buffer.alloc(56)]), /EFI zboot/],
    ['garbage', Buffer.from('not a kernel at all\n'.repeat(10)), /not a kernel image vfkit can boot/],
  ] as const) {
    fs.rmSync(record, { force: true });
    const s = liveSpec();
    fs.writeFileSync(s.kernel, data);
    await assert.rejects(driver.start(s), (e) => {
      assert.ok(isBerthError(e, 'VM_SPEC_UNSUPPORTED'), `${name}: ${String(e)}`);
      assert.match(e.message, what);
      assert.match(e.message, /uncompressed arm64 Image \(the VM would hang\)/);
      assert.match(e.hint, /BERTH_BOOT=efi/);
      return true;
    });
    assert.equal(fs.existsSync(record), false, `${name}: vfkit never ran`);
  }
  const missing = liveSpec();
  fs.rmSync(missing.kernel);
  await assert.rejects(driver.start(missing), (e) => isBerthError(e, 'IMAGE_MISSING'));
  // Only the arm64 Linux loader is picky: EFI boot and x86_64 guests are not checked.
  const gz = { ...liveSpec(), kernel: '/nonexistent/Image.gz' };
  assert.doesNotThrow(() => checkVfkitKernel({ ...gz, efi: { image: '/img/efi.img', variableStore: '/v' } }));
  assert.doesNotThrow(() => checkVfkitKernel({ ...gz, arch: 'x86_64' }));
});

test('missing vfkit is reported with an install hint', () => {
  const restore = withEnv({ PATH: '/nonexistent' });
  try {
    assert.throws(
      () => findVfkit(),
      (e) => isBerthError(e, 'VFKIT_MISSING') && /brew install vfkit/.test(e.hint),
    );
    assert.throws(
      () => findVfkit('/nope/vfkit'),
      (e) => isBerthError(e, 'VFKIT_MISSING'),
    );
  } finally {
    restore();
  }
});

test('BERTH_VFKIT selects the binary', async () => {
  const restore = withEnv({ PATH: '/nonexistent' });
  try {
    assert.equal(findVfkit(path.join(bin, 'vfkit')), path.join(bin, 'vfkit'));
  } finally {
    restore();
  }
});

test('vfkit always has virtio-fs (Virtualization.framework serves it), but no read-only device and no commas or quotes in paths', async () => {
  const s = await new VfkitDriver().virtiofs();
  assert.deepEqual(s, { ok: true, how: "Virtualization.framework's virtio-fs (vfkit)", needsSocket: false, readOnlyDevice: false, unsafePathChars: ',"' });
});
