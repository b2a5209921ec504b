/**
 * The engine with each real driver, against fake hypervisors on PATH
 * (test/helpers/fake-hypervisors.ts: vfkit, powershell.exe running the
 * Hyper-V scripts, qemu-system-aarch64) and a fake guest (an ssh2 server
 * with a fake dockerd behind it, as in engine.test.ts). The driver comes
 * from the real factory with simulated host facts (a Mac with and without
 * vfkit, Windows 11 Pro), so selection, the VM spec, the driver's own start
 * and state queries, the guest's address and the docker socket all run for
 * real. Each driver goes start -> running -> stop, then through a crash, a
 * shutdown the guest ignores (forced off after the stop timeout), and
 * a start the hypervisor refuses.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { HOST_RELAY_ADDRESS, type GuestArch, type RunningVm, type VmSpec } from '../../app/engine/drivers/driver.js';
import type { VmStatus } from '../../app/contract/contract.js';
import { driverFactory, type DriverFactory, type DriverOptions } from '../../app/engine/drivers/driver-select.js';
import { realHostFacts, type HostFacts } from '../../app/engine/drivers/host-detect.js';
import { HYPERV_IMAGE_FILES } from '../../app/engine/drivers/vm-spec.js';
import { Engine } from '../../app/engine/engine.js';
import { freeLoopbackPort } from '../../app/base/process-util.js';
import { isBerthError } from '../../app/contract/errors.js';
import { ImageStore } from '../../app/engine/image/image-store.js';
import { instancePaths, type InstancePaths } from '../../app/base/paths.js';
import { pidAlive } from '../../app/base/process-util.js';
import { defaultTuning } from '../../app/base/tuning.js';
import { SettingsStore } from '../../app/engine/settings/store.js';
import type { StateChange } from '../../app/contract/vm-states.js';
import { installFake } from '../helpers/fake-hypervisors.js';
import { startFakeDockerd, startFakeGuest, type FakeGuest } from '../helpers/fake-guest.js';
import { dockerPing } from '../helpers/docker-ping.js';
import { fakeImageDir, shortTempDir, withEnv } from '../helpers/temp.js';
import { captureLogger } from '../helpers/log-capture.js';

const t = shortTempDir('edrv');
const dockerdSock = path.join(t.dir, 'dockerd.sock');
const imgDir = path.join(t.dir, 'img');
/** The same fake image, built "for" arm64: the engine refuses an image of the other architecture. */
const armImgDir = path.join(t.dir, 'img-arm64');
const leases = path.join(t.dir, 'dhcpd_leases');
const psState = path.join(t.dir, 'ps-state.json');
const nodeDir = path.dirname(process.execPath);
const bins = {
  mac: installFake(path.join(t.dir, 'bin-mac'), ['vfkit', 'qemu-system-aarch64']),
  macNoVfkit: installFake(path.join(t.dir, 'bin-macq'), ['qemu-system-aarch64']),
  win: installFake(path.join(t.dir, 'bin-win'), ['powershell.exe']),
};
const STOP_TIMEOUT_MS = 1500;
/** The overrides the engines run with (what BERTH_* would set). */
const TUNING = defaultTuning({
  bootTimeoutMs: 15_000,
  stopTimeoutMs: STOP_TIMEOUT_MS,
  // The engine restarts a crashed VM after this delay; the crash tests look before.
  recoveryDelayMs: 600_000,
});
const restoreEnv = withEnv({
  BERTH_HOME: path.join(t.dir, 'home'),
  DOCKER_CONFIG: path.join(t.dir, 'docker'),
  FAKE_VFKIT_MODE: undefined,
  FAKE_QEMU_MODE: undefined,
  FAKE_VFKIT_LEASES: leases,
  FAKE_VFKIT_IP: '127.0.0.1',
  FAKE_VFKIT_RECORD: path.join(t.dir, 'vfkit.jsonl'),
  FAKE_QEMU_RECORD: path.join(t.dir, 'qemu.jsonl'),
  FAKE_PS_STATE: psState,
  FAKE_PS_RECORD: path.join(t.dir, 'ps.jsonl'),
  PATH: process.env.PATH,
});

let dockerd: net.Server;
before(async () => {
  fakeImageDir(imgDir);
  fakeImageDir(armImgDir, 'aarch64');
  // Hyper-V boots the image's VHDX build (not checksummed by the fake manifest).
  // efi.vhdx is in the fake manifest (checksummed) since every build makes it.
  for (const f of Object.values(HYPERV_IMAGE_FILES)) if (!fs.existsSync(path.join(imgDir, f))) fs.writeFileSync(path.join(imgDir, f), 'fake vhdx\n');
  dockerd = await startFakeDockerd(dockerdSock);
});
after(() => {
  dockerd.close();
  restoreEnv();
  t.cleanup();
});

/** The host as the factory sees it: this machine's tools, another OS. */
function simulated(platform: NodeJS.Platform, release: string, arch: string): HostFacts {
  return { ...realHostFacts(), platform, release, arch };
}
const mac = () => simulated('darwin', '23.5.0', 'arm64');
const windows = () => simulated('win32', '10.0.22631', 'x64');

const lines = (file: string) =>
  fs.existsSync(file)
    ? fs
        .readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as unknown)
    : [];

function setHypervState(name: string, state: string): void {
  const st = JSON.parse(fs.readFileSync(psState, 'utf8')) as { vms: Record<string, { state: string }> };
  st.vms[`berth-${name}`]!.state = state;
  fs.writeFileSync(psState, JSON.stringify(st));
}

interface Rig {
  engine: Engine;
  paths: InstancePaths;
  states: string[];
  logs: string[];
  /** Make the guest ignore `poweroff` (a hung shutdown). */
  hang: boolean;
  guests: FakeGuest[];
  vms: { spec: VmSpec; vm: RunningVm }[];
}

const rigs: Rig[] = [];
let n = 0;

/**
 * An engine whose driver comes from the real factory for `facts`. When the
 * driver has started the VM, a fake guest answers where the driver says the
 * guest is; its `poweroff` makes the "hypervisor" see the guest power off.
 */
async function rig(o: {
  facts: HostFacts;
  arch: GuestArch;
  bin: string;
  driver?: (guestPort: number) => DriverOptions;
  powerOff: (spec: VmSpec, vm: RunningVm) => void;
  settings?: Record<string, unknown>;
}): Promise<Rig> {
  process.env.PATH = `${o.bin}${path.delimiter}${nodeDir}${path.delimiter}/usr/bin${path.delimiter}/bin`;
  const paths = instancePaths(`d${++n}`);
  fs.mkdirSync(paths.dir, { recursive: true });
  if (o.settings) fs.writeFileSync(paths.settings, JSON.stringify(o.settings));
  const guestPort = await freeLoopbackPort();
  const factory = driverFactory({ facts: o.facts, ...(o.driver?.(guestPort) ?? {}) });
  const { log, lines: logs } = captureLogger();
  const r: Rig = { engine: undefined as unknown as Engine, paths, states: [], logs, hang: false, guests: [], vms: [] };
  const drivers: DriverFactory = {
    ...factory,
    select: async (requested, arch) => {
      const sel = await factory.select(requested, arch);
      const start = sel.driver.start.bind(sel.driver);
      sel.driver.start = async (spec) => {
        const vm = await start(spec);
        r.vms.push({ spec, vm });
        r.guests.push(
          await startFakeGuest({
            port: sel.driver.name === 'qemu' ? spec.sshHostPort : guestPort,
            hostPrivateKey: fs.readFileSync(paths.hostKey, 'utf8'),
            clientPublicKey: fs.readFileSync(`${paths.clientKey}.pub`, 'utf8'),
            sockets: { '/var/run/docker.sock': dockerdSock },
            exec: (cmd) => {
              if (cmd.includes('poweroff') && !r.hang) setTimeout(() => o.powerOff(spec, vm), 50);
              return { code: 0 };
            },
          }),
        );
        return vm;
      };
      return sel;
    },
  };
  r.engine = new Engine({
    paths,
    log,
    drivers,
    images: new ImageStore(path.join(t.dir, 'cache'), o.arch, { imageDir: o.arch === 'aarch64' ? armImgDir : imgDir }),
    settings: new SettingsStore(paths.settings),
    accelCacheFile: path.join(t.dir, 'accel.json'),
    tuning: TUNING,
  });
  r.engine.on('state', (c: StateChange) => r.states.push(c.state));
  rigs.push(r);
  return r;
}

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.engine.stop({ force: true }).catch(() => undefined);
    for (const g of r.guests) await g.close();
    for (const { vm } of r.vms) {
      if (vm.pid > 0 && vm.pid !== 4242 && pidAlive(vm.pid)) process.kill(vm.pid, 'SIGKILL');
      vm.detach();
    }
  }
  for (const k of ['FAKE_VFKIT_MODE', 'FAKE_QEMU_MODE']) delete process.env[k];
  for (const f of [leases, process.env.FAKE_VFKIT_RECORD!, process.env.FAKE_QEMU_RECORD!, process.env.FAKE_PS_RECORD!]) fs.rmSync(f, { force: true });
});

const ping = dockerPing;

/**
 * host.docker.internal where the network does not reach the host's
 * loopback: the guest's own address for it in config.env, the relay
 * started in the guest before the socket opened, and status has its word.
 */
function relayed(r: Rig, s: VmStatus): void {
  assert.match(
    fs.readFileSync(path.join(r.paths.configDir, 'config.env'), 'utf8'),
    new RegExp(`^BERTH_HOST_LOOPBACK=${HOST_RELAY_ADDRESS.replace(/\./g, '\\.')}$`, 'm'),
  );
  const relay = r.guests[0]!.commands.find((c) => c.includes('SO_ORIGINAL_DST'));
  assert.ok(relay?.includes(`'${HOST_RELAY_ADDRESS}'`), 'the relay ran in the guest, for that address');
  assert.ok(s.hostLoopback, 'status says how the host is reached');
}

const until = async (check: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
};

// ------------------------------------------------------------------ vfkit

const signalGuestOff = (_spec: VmSpec, vm: RunningVm) => {
  try {
    process.kill(vm.pid, 'SIGUSR1');
  } catch {
    /* gone */
  }
};
const vfkitRig = (settings?: Record<string, unknown>, facts: HostFacts = mac()) =>
  rig({
    facts,
    arch: 'aarch64',
    bin: bins.mac,
    driver: (port) => ({ vfkit: { leasesFile: leases, pollMs: 100, startTimeoutMs: 5000, sshPort: port } }),
    powerOff: signalGuestOff,
    settings,
  });
/** This Mac has Rosetta (host-detect looks for its runtime). */
const withRosetta = (f: HostFacts, installed = true): HostFacts => ({
  ...f,
  access: (p) => (p === '/Library/Apple/usr/libexec/oah/libRosettaRuntime' ? (installed ? 'exists' : 'missing') : f.access(p)),
});
const devices = (argv: string[]) => argv.flatMap((a, i) => (argv[i - 1] === '--device' ? [a] : []));

test('vfkit (auto on macOS 14): start -> running at the DHCP address -> clean stop', async () => {
  const r = await vfkitRig();
  const s = await r.engine.start();
  assert.equal(s.state, 'running');
  assert.equal(s.driver, 'vfkit');
  assert.match(s.driverReason ?? '', /^auto: vfkit 0\.6\.1 on macOS 14/);
  assert.equal(s.accel, 'hvf');
  assert.equal(s.sshHost, '127.0.0.1', 'the address bootpd leased to our MAC');
  assert.equal(await ping(r.paths.dockerSocket), 'OK');
  const argv = lines(process.env.FAKE_VFKIT_RECORD!)[0] as string[];
  assert.ok(argv.includes('--restful-uri') && argv.includes(`unix://${r.paths.vfkitSocket}`));
  assert.ok(
    argv.some((a) => a.startsWith('linux,') && a.includes('cmdline="console=hvc0 ')),
    'the virtio console',
  );
  assert.equal(fs.readFileSync(r.paths.vfkitPid, 'utf8').trim(), String(s.vmPid));
  assert.match(fs.readFileSync(path.join(r.paths.configDir, 'config.env'), 'utf8'), /BERTH_NET=.?dhcp/);
  // vfkit's NAT reaches the Mac's other addresses, not its loopback: the engine relays it.
  relayed(r, s);

  const t0 = Date.now();
  const stopped = await r.engine.stop();
  assert.equal(stopped.state, 'stopped');
  assert.ok(Date.now() - t0 < STOP_TIMEOUT_MS, 'the guest powered off by itself');
  assert.deepEqual(r.states, ['starting', 'running', 'stopping', 'stopped']);
  assert.ok(!lines(process.env.FAKE_VFKIT_RECORD!).some((x) => JSON.stringify(x).includes('HardStop')));
  assert.ok(!pidAlive(r.vms[0]!.vm.pid));
  assert.ok(!fs.existsSync(r.paths.dockerSocket));
  assert.equal(r.engine.status().driver, 'auto', 'stopped: the setting again');
});

test("vfkit with rosetta=true on a Mac with Rosetta: the share on vfkit's command line, the tag in config.env, status says on", async () => {
  const r = await vfkitRig({ rosetta: true }, withRosetta(mac()));
  const s = await r.engine.start();
  assert.equal(s.state, 'running');
  assert.deepEqual(s.rosetta, { active: true });
  const argv = lines(process.env.FAKE_VFKIT_RECORD!)[0] as string[];
  assert.ok(devices(argv).includes('rosetta,mountTag=rosetta'), devices(argv).join('\n'));
  assert.ok(!devices(argv).some((d) => d.includes('install')), 'never asks macOS to install it from a background engine');
  assert.match(fs.readFileSync(path.join(r.paths.configDir, 'config.env'), 'utf8'), /^BERTH_ROSETTA=rosetta$/m);
  assert.ok(r.logs.some((l) => l.includes('x86_64 binaries run through Rosetta')));
});

test('vfkit with rosetta=true but no Rosetta on the Mac: the VM starts without it, and status says how to get it', async () => {
  const r = await vfkitRig({ rosetta: true }, withRosetta(mac(), false));
  const s = await r.engine.start();
  assert.equal(s.state, 'running');
  assert.equal(s.rosetta?.active, false);
  assert.match(s.rosetta?.note ?? '', /not installed on this Mac: run `softwareupdate --install-rosetta --agree-to-license`/);
  const argv = lines(process.env.FAKE_VFKIT_RECORD!)[0] as string[];
  assert.ok(!devices(argv).some((d) => d.startsWith('rosetta')));
  assert.doesNotMatch(fs.readFileSync(path.join(r.paths.configDir, 'config.env'), 'utf8'), /BERTH_ROSETTA/);
});

test('rosetta off (the default): no share, no tag, nothing in status', async () => {
  const r = await vfkitRig(undefined, withRosetta(mac()));
  const s = await r.engine.start();
  assert.equal(s.rosetta, undefined);
  assert.ok(!devices(lines(process.env.FAKE_VFKIT_RECORD!)[0] as string[]).some((d) => d.startsWith('rosetta')));
  assert.doesNotMatch(fs.readFileSync(path.join(r.paths.configDir, 'config.env'), 'utf8'), /BERTH_ROSETTA/);
});

test('vfkit: a guest that ignores the shutdown is forced off (HardStop) after the timeout', async () => {
  const r = await vfkitRig();
  await r.engine.start();
  r.hang = true;
  const t0 = Date.now();
  assert.equal((await r.engine.stop()).state, 'stopped');
  assert.ok(Date.now() - t0 >= STOP_TIMEOUT_MS, 'waited for the guest first');
  assert.ok(lines(process.env.FAKE_VFKIT_RECORD!).some((x) => JSON.stringify(x) === '{"post":"HardStop"}'));
  assert.ok(r.logs.some((l) => l.includes('forcing it off')));
  assert.ok(!pidAlive(r.vms[0]!.vm.pid));
});

test('vfkit: a crash while running is an error with a hint', async () => {
  const r = await vfkitRig();
  await r.engine.start();
  process.kill(r.vms[0]!.vm.pid, 'SIGKILL');
  await until(() => r.engine.status().state === 'error');
  const e = r.engine.status().error!;
  assert.equal(e.code, 'VM_EXITED');
  assert.match(e.message, /vfkit exited|vfkit process is gone/);
  assert.match(e.hint, /berth start/);
  assert.ok(!fs.existsSync(r.paths.dockerSocket), 'the socket is released');
});

test('vfkit refusing to start: VFKIT_FAILED with its own words, and the error state', async () => {
  process.env.FAKE_VFKIT_MODE = 'crash-start';
  const r = await vfkitRig();
  await assert.rejects(
    r.engine.start(),
    (e) => isBerthError(e, 'VFKIT_FAILED') && /Virtualization is not available/.test(e.message) && /entitlement/.test(e.hint),
  );
  assert.deepEqual(r.states, ['starting', 'error']);
  const s = r.engine.status();
  assert.equal(s.error?.code, 'VFKIT_FAILED');
  assert.equal(s.driver, 'vfkit', 'status still says which driver failed');
});

// ------------------------------------------------------------ QEMU + hvf

const qemuMacRig = (settings?: Record<string, unknown>) => rig({ facts: mac(), arch: 'aarch64', bin: bins.macNoVfkit, powerOff: signalGuestOff, settings });

test('QEMU on a Mac with rosetta=true: started anyway, without Rosetta, and status says why', async () => {
  const r = await qemuMacRig({ rosetta: true });
  const s = await r.engine.start();
  assert.equal(s.state, 'running');
  assert.equal(s.driver, 'qemu');
  assert.equal(s.rosetta?.active, false);
  assert.match(s.rosetta?.note ?? '', /only the vfkit driver .* this VM runs on qemu/);
  assert.doesNotMatch(fs.readFileSync(path.join(r.paths.configDir, 'config.env'), 'utf8'), /BERTH_ROSETTA/);
  assert.ok(
    r.logs.some((l) => l.includes('"level":40') && l.includes('Rosetta is on in settings but not used')),
    'a warning in the engine log',
  );
});

test('QEMU on a Mac without vfkit: -accel hvf, loopback ssh forward, clean stop', async () => {
  const r = await qemuMacRig();
  const s = await r.engine.start();
  assert.equal(s.driver, 'qemu');
  assert.match(s.driverReason ?? '', /vfkit is not usable \(vfkit was not found on PATH\), so QEMU 9\.1\.0/);
  assert.equal(s.accel, 'hvf');
  assert.equal(s.accelReason, 'macOS Hypervisor.framework');
  assert.equal(s.sshHost, '127.0.0.1');
  const argv = lines(process.env.FAKE_QEMU_RECORD!)[0] as string[];
  const after = (f: string) => argv[argv.indexOf(f) + 1];
  assert.equal(after('-accel'), 'hvf');
  assert.equal(after('-machine'), 'virt');
  assert.equal(after('-cpu'), 'host');
  assert.match(after('-append')!, /console=ttyAMA0/);
  assert.equal(await ping(r.paths.dockerSocket), 'OK');
  assert.equal((await r.engine.stop()).state, 'stopped');
  assert.deepEqual(r.states, ['starting', 'running', 'stopping', 'stopped']);
  assert.ok(!lines(process.env.FAKE_QEMU_RECORD!).some((x) => JSON.stringify(x) === '{"qmp":"quit"}'), 'no forced quit');
});

test('QEMU: a hung shutdown ends with QMP quit after the timeout', async () => {
  const r = await qemuMacRig();
  await r.engine.start();
  r.hang = true;
  const t0 = Date.now();
  assert.equal((await r.engine.stop()).state, 'stopped');
  assert.ok(Date.now() - t0 >= STOP_TIMEOUT_MS);
  assert.ok(lines(process.env.FAKE_QEMU_RECORD!).some((x) => JSON.stringify(x) === '{"qmp":"quit"}'));
  assert.ok(!pidAlive(r.vms[0]!.vm.pid));
});

test('QEMU: killed while running is an error that says so', async () => {
  const r = await qemuMacRig();
  await r.engine.start();
  process.kill(r.vms[0]!.vm.pid, 'SIGKILL');
  await until(() => r.engine.status().state === 'error');
  const e = r.engine.status().error!;
  assert.equal(e.code, 'VM_EXITED');
  assert.match(e.message, /killed or crashed/);
});

test('QEMU: Hypervisor.framework refusing the VM is ACCEL_UNAVAILABLE with a way out', async () => {
  process.env.FAKE_QEMU_MODE = 'fail-start';
  const r = await qemuMacRig();
  await assert.rejects(r.engine.start(), (e) => isBerthError(e, 'ACCEL_UNAVAILABLE') && /accel=tcg/.test(e.hint));
  assert.equal(r.engine.status().state, 'error');
});

// ---------------------------------------------------------------- Hyper-V

function resetPs(mode = 'ok'): void {
  fs.writeFileSync(psState, JSON.stringify({ mode, vms: {}, ip: '127.0.0.1' }));
}
const hypervRig = (settings?: Record<string, unknown>) =>
  rig({
    facts: windows(),
    arch: 'x86_64',
    bin: bins.win,
    driver: (port) => ({ hyperv: { pollMs: 100, comPipe: (s) => path.join(t.dir, `${s.name}.com1`), sshPort: port } }),
    powerOff: (spec) => setHypervState(spec.name, 'Off'),
    settings,
  });

const psOps = () => lines(process.env.FAKE_PS_RECORD!).map((x) => /^# berth:(\w+)/.exec((x as { script: string }).script)?.[1]);

test("Hyper-V (auto on Windows 11): probe, create from VHDX, the adapter's address, clean stop", async () => {
  resetPs();
  const r = await hypervRig();
  const s = await r.engine.start();
  assert.equal(s.driver, 'hyperv');
  assert.match(s.driverReason ?? '', /^auto: Hyper-V on Microsoft Windows 11 Pro/);
  assert.equal(s.accel, 'hyperv');
  assert.equal(s.vmPid, 4242);
  assert.equal(await ping(r.paths.dockerSocket), 'OK');
  const create = (lines(process.env.FAKE_PS_RECORD!) as { script: string }[]).find((x) => x.script.startsWith('# berth:create'))!.script;
  assert.match(create, /New-VHD -Path \$disk -SizeBytes 68719476736 -Dynamic/, 'the data disk is made by Hyper-V');
  assert.ok(create.includes(r.paths.dataVhdx) && create.includes(r.paths.configVhd));
  assert.ok(create.includes(path.join(imgDir, 'efi.vhdx')));
  assert.equal(fs.readFileSync(r.paths.configVhd).subarray(-512, -504).toString('ascii'), 'conectix', 'the config disk as a fixed VHD');
  assert.ok(!fs.existsSync(r.paths.dataDisk), 'no raw data disk for Hyper-V');
  assert.deepEqual(psOps().slice(0, 3), ['probe', 'create', 'state']);
  // Hyper-V's switch reaches the host's other addresses, not its loopback: the engine relays it.
  relayed(r, s);

  assert.equal((await r.engine.stop()).state, 'stopped');
  assert.deepEqual(r.states, ['starting', 'running', 'stopping', 'stopped']);
  assert.ok(!psOps().includes('turnoff'));
});

test('Hyper-V: a guest that ignores the shutdown is turned off after the timeout', async () => {
  resetPs();
  const r = await hypervRig();
  await r.engine.start();
  r.hang = true;
  const t0 = Date.now();
  assert.equal((await r.engine.stop()).state, 'stopped');
  assert.ok(Date.now() - t0 >= STOP_TIMEOUT_MS);
  assert.ok(psOps().includes('turnoff'));
});

test('Hyper-V: a VM that turns off by itself is an error with a hint', async () => {
  resetPs();
  const r = await hypervRig();
  await r.engine.start();
  setHypervState(r.paths.name, 'Off');
  await until(() => r.engine.status().state === 'error');
  const e = r.engine.status().error!;
  assert.equal(e.code, 'VM_EXITED');
  assert.match(e.message, /Hyper-V VM is Off/);
});

test('Hyper-V: a smaller diskGiB is refused at start with DISK_SHRINK before the VM is made; the old size starts again', async () => {
  resetPs();
  const r = await hypervRig();
  await r.engine.start();
  assert.equal((await r.engine.stop()).state, 'stopped');
  // `berth settings set diskGiB=32`: no data.img on Hyper-V, so the
  // settings store cannot see the disk's size; only Hyper-V can.
  new SettingsStore(r.paths.settings, { dataDisk: r.paths.dataDisk }).update({ diskGiB: 32 });
  fs.rmSync(process.env.FAKE_PS_RECORD!, { force: true });
  await assert.rejects(r.engine.start(), (e) => {
    assert.ok(isBerthError(e, 'DISK_SHRINK'), String(e));
    assert.match(e.message, /data\.vhdx is 64 GiB, and Hyper-V cannot shrink it to the 32 GiB in settings/);
    assert.match(e.hint, /berth settings set diskGiB=64/);
    return true;
  });
  assert.equal(r.engine.status().state, 'error');
  assert.equal(r.engine.status().error?.code, 'DISK_SHRINK');
  assert.deepEqual(psOps(), ['probe', 'create'], 'the create script stopped itself; nothing ran after it');
  const st = JSON.parse(fs.readFileSync(psState, 'utf8')) as { vms: Record<string, { state: string }> };
  assert.equal(st.vms[`berth-${r.paths.name}`]!.state, 'Off', 'the VM was neither recreated nor started');
  new SettingsStore(r.paths.settings, { dataDisk: r.paths.dataDisk }).update({ diskGiB: 64 });
  for (const g of r.guests.splice(0)) await g.close(); // the first start's fake guest holds the port
  assert.equal((await r.engine.start()).state, 'running');
});

test('Hyper-V turned off: no driver can run, and the error says how to turn it on', async () => {
  resetPs('disabled');
  const r = await hypervRig();
  await assert.rejects(r.engine.start(), (e) => {
    assert.ok(isBerthError(e, 'HYPERV_DISABLED'));
    assert.match(e.message, /no VM driver can run on this host \(Windows 11 \(build 22631\)\)/);
    assert.match(e.hint, /Enable-WindowsOptionalFeature/);
    assert.match(e.hint, /berth doctor/);
    return true;
  });
  assert.deepEqual(r.states, ['starting', 'error']);
  assert.ok(!psOps().includes('create'), 'nothing was created');
});

test('a driver named in settings that this host cannot run: its reason, and the way back to auto', async () => {
  resetPs();
  const r = await hypervRig({ driver: 'vfkit' });
  await assert.rejects(
    r.engine.start(),
    (e) => isBerthError(e, 'UNSUPPORTED_OS') && /vfkit driver set in settings/.test(e.message) && /driver=auto/.test(e.hint),
  );
  assert.equal(r.engine.status().state, 'error');
  assert.equal(r.engine.status().driver, 'vfkit', 'the setting, since no driver runs');
});
