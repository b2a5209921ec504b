/**
 * The Hyper-V driver: the exact PowerShell it runs for a VM spec, checked
 * against Microsoft's Hyper-V cmdlet reference
 * (learn.microsoft.com/powershell/module/hyper-v/, Windows Server 2022 docset):
 *  New-VM [-Name] <String> [-MemoryStartupBytes] <Int64> -NoVHD -Path <String> [-Generation] <Int16>
 *  Set-VM -Name -Notes -AutomaticCheckpointsEnabled <Boolean> -CheckpointType Disabled
 *         -AutomaticStartAction Nothing -AutomaticStopAction ShutDown
 *  Set-VMProcessor -VMName -Count <Int64>
 *  Set-VMMemory -VMName -DynamicMemoryEnabled <Boolean> -MinimumBytes -StartupBytes -MaximumBytes
 *  Add-VMHardDiskDrive -VMName -ControllerType SCSI -ControllerNumber -ControllerLocation -Path
 *  New-VHD -Path -ParentPath -Differencing
 *  Set-VMFirmware -VMName -EnableSecureBoot On|Off -FirstBootDevice <VMComponentObject> (generation 2 only)
 *  Connect-VMNetworkAdapter -VMName -SwitchName; Set-VMNetworkAdapter -StaticMacAddress
 *  Set-VMComPort -VMName -Number 1|2 -Path \\.\pipe\NAME
 *  Start-VM -Name; Stop-VM -Name [-TurnOff] [-Force] [-AsJob]; Get-VM -Name (State);
 *  Get-VMNetworkAdapter (IPAddresses); Get-NetNeighbor -LinkLayerAddress.
 * Hyper-V Administrators is the well-known SID S-1-5-32-578. Scripts go to
 * `powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command -`
 * on stdin, wrapped in `& { ... }` plus a blank line (PowerShell issue #3223:
 * stdin is read statement by statement, as typed).
 *
 * Behaviour is checked against a fake `powershell.exe` (a Node script first
 * on PATH) that records every script and answers canned results from a
 * state file, including "Hyper-V is off", "not an administrator", a crash
 * and a hung shutdown.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, afterEach, test } from 'node:test';
import { HOST_RELAY_ADDRESS, stopVm, type RunningVm, type VmSpec } from '../../app/engine/drivers/driver.js';
import { HypervDriver } from '../../app/engine/drivers/hyperv.js';
import {
  buildAddressScript,
  buildCreateScript,
  buildStateScript,
  buildStopScript,
  buildCompactScript,
  comPipePath,
  HYPERV_NOTE,
  hypervMac,
  psQuote,
  wrapScript,
} from '../../app/engine/drivers/hyperv-scripts.js';
import { hypervError, parsePsResult, POWERSHELL_ARGS, spawnPowerShell } from '../../app/engine/drivers/powershell.js';
import { isBerthError } from '../../app/contract/errors.js';
import { installFake } from '../helpers/fake-hypervisors.js';
import { shortTempDir, withEnv } from '../helpers/temp.js';

const spec: VmSpec = {
  name: 'default',
  arch: 'x86_64',
  accel: 'tcg',
  cpus: 2,
  memoryMiB: 4096,
  kernel: '',
  initrd: '',
  cmdline: '',
  disks: [
    { path: 'C:\\Users\\me\\.berth\\default\\data.vhdx', serial: 'berth-data', readonly: false, format: 'raw' },
    { path: 'C:\\Users\\me\\.berth\\default\\config.vhd', serial: 'berth-cfg', readonly: true, format: 'raw' },
  ],
  sshHostPort: 0,
  serialLog: 'C:\\Users\\me\\.berth\\default\\serial.log',
  pidFile: 'C:\\Users\\me\\.berth\\default\\vm.pid',
  controlSocket: 'C:\\Users\\me\\.berth\\default\\control',
  macAddress: '52:54:00:0a:0b:0c',
  efi: { image: 'C:\\Users\\me\\AppData\\Local\\berth\\cache\\abc\\efi.vhdx', variableStore: 'unused' },
};

/** The script body between the preamble's `try {` and its `} catch {`, unindented. */
function body(script: string): string[] {
  const lines = script.split('\n');
  return lines.slice(lines.indexOf('try {') + 1, lines.lastIndexOf('} catch {')).map((l) => l.replace(/^ {2}/, ''));
}

test('PowerShell quoting: single quotes doubled, anything non-ASCII as base64 UTF-8', () => {
  assert.equal(psQuote('C:\\Users\\me'), "'C:\\Users\\me'");
  assert.equal(psQuote("O'Neil"), "'O''Neil'");
  assert.equal(psQuote("'; Remove-Item -Recurse C:\\ ; '"), "'''; Remove-Item -Recurse C:\\ ; '''");
  assert.equal(psQuote('$env:PATH `n "x"'), '\'$env:PATH `n "x"\'', 'no expansion inside single quotes');
  assert.equal(psQuote(''), "''");
  // U+2019 is a single quote to PowerShell; é is not ASCII: both go as base64.
  for (const v of ['O\u2019Neil', 'C:\\Users\\Zoë', 'line\nbreak', '\u201b']) {
    const q = psQuote(v);
    const m = /^\(\[System\.Text\.Encoding\]::UTF8\.GetString\(\[System\.Convert\]::FromBase64String\('([A-Za-z0-9+/=]+)'\)\)\)$/.exec(q);
    assert.ok(m, q);
    assert.equal(Buffer.from(m[1]!, 'base64').toString('utf8'), v);
  }
});

test('every script is pure ASCII, one `& { }` statement, ending in a blank line', () => {
  const weird: VmSpec = { ...spec, name: 'x', disks: [{ ...spec.disks[0]!, path: "C:\\Users\\Zoë O'Neil\\data.vhdx" }] };
  for (const s of [
    buildCreateScript(weird, { switchName: 'Default Switch' }),
    buildStateScript(weird),
    buildStopScript(weird, false),
    buildAddressScript(weird),
  ]) {
    assert.match(s, /^[\x00-\x7f]*$/);
    const lines = s.split('\n');
    assert.match(lines[0]!, /^# berth:[a-z]+$/);
    assert.equal(lines[1], '& {');
    assert.ok(s.endsWith('}\n\n'), 'a blank line ends the statement for -Command -');
    assert.ok(lines.includes("$ErrorActionPreference = 'Stop'"));
  }
});

test('the exact create script for a spec', () => {
  const lines = body(buildCreateScript(spec, { switchName: 'Default Switch' }));
  const after = lines.slice(lines.indexOf("$name = 'berth-default'"));
  assert.deepEqual(after, [
    "$name = 'berth-default'",
    "$dir = 'C:\\Users\\me\\.berth\\default\\hyperv'",
    '$old = Get-VM -Name $name -ErrorAction SilentlyContinue',
    'if ($old) {',
    `  if ($old.Notes -ne '${HYPERV_NOTE}') { Stop-Berth 'name-taken' ('a Hyper-V VM named ' + $name + ' exists and was not created by Berth') }`,
    "  if ($old.State.ToString() -ne 'Off') { Stop-Berth 'busy' ('the Hyper-V VM ' + $name + ' is already ' + $old.State.ToString()) }",
    '}',
    'if ($old) { Remove-VM -Name $name -Force }',
    'New-Item -ItemType Directory -Force -Path $dir | Out-Null',
    'New-VM -Name $name -Generation 2 -MemoryStartupBytes 4294967296 -NoVHD -Path $dir | Out-Null',
    `Set-VM -Name $name -Notes '${HYPERV_NOTE}' -AutomaticCheckpointsEnabled $false -CheckpointType Disabled -AutomaticStartAction Nothing -AutomaticStopAction ShutDown`,
    'Set-VMProcessor -VMName $name -Count 2',
    'Set-VMMemory -VMName $name -DynamicMemoryEnabled $true -MinimumBytes 536870912 -StartupBytes 4294967296 -MaximumBytes 4294967296',
    "$child = 'C:\\Users\\me\\.berth\\default\\hyperv\\berth-efi.vhdx'",
    'if (Test-Path -LiteralPath $child) { Remove-Item -LiteralPath $child -Force }',
    "New-VHD -Path $child -ParentPath 'C:\\Users\\me\\AppData\\Local\\berth\\cache\\abc\\efi.vhdx' -Differencing | Out-Null",
    'Add-VMHardDiskDrive -VMName $name -ControllerType SCSI -ControllerNumber 0 -ControllerLocation 0 -Path $child',
    "Add-VMHardDiskDrive -VMName $name -ControllerType SCSI -ControllerNumber 0 -ControllerLocation 1 -Path 'C:\\Users\\me\\.berth\\default\\data.vhdx'",
    "$child = 'C:\\Users\\me\\.berth\\default\\hyperv\\berth-cfg.vhd'",
    'if (Test-Path -LiteralPath $child) { Remove-Item -LiteralPath $child -Force }',
    "New-VHD -Path $child -ParentPath 'C:\\Users\\me\\.berth\\default\\config.vhd' -Differencing | Out-Null",
    'Add-VMHardDiskDrive -VMName $name -ControllerType SCSI -ControllerNumber 0 -ControllerLocation 2 -Path $child',
    '$bootDisk = Get-VMHardDiskDrive -VMName $name -ControllerType SCSI -ControllerNumber 0 -ControllerLocation 0',
    'Set-VMFirmware -VMName $name -EnableSecureBoot Off -FirstBootDevice $bootDisk',
    'Connect-VMNetworkAdapter -VMName $name -SwitchName $switchName',
    "Set-VMNetworkAdapter -VMName $name -StaticMacAddress '5254000A0B0C'",
    "Set-VMComPort -VMName $name -Number 1 -Path '\\\\.\\pipe\\berth-default-com1'",
    'Start-VM -Name $name',
    '$vm = Get-VM -Name $name',
    'Send-BerthResult @{ ok = $true; exists = $true; state = $vm.State.ToString(); id = $vm.Id.ToString(); notes = $vm.Notes }',
  ]);
});

test('create checks Hyper-V first: module, vmms, Hyper-V Administrators, the switch', () => {
  const lines = body(buildCreateScript(spec, { switchName: "Bob's NAT" }));
  const pre = lines.slice(0, lines.indexOf("$name = 'berth-default'")).join('\n');
  assert.match(pre, /Get-Module -ListAvailable -Name Hyper-V/);
  assert.match(pre, /Get-Service -Name vmms/);
  assert.match(pre, /SecurityIdentifier\('S-1-5-32-578'\)/);
  assert.match(pre, /WindowsBuiltInRole\]::Administrator/);
  assert.match(pre, /\$switchName = 'Bob''s NAT'/);
  assert.match(pre, /Get-VMSwitch -Name \$switchName/);
});

test("memory is rounded up to Hyper-V's 2 MiB granularity", () => {
  const s = buildCreateScript({ ...spec, memoryMiB: 3001 }, { switchName: 'Default Switch' });
  assert.match(s, /-MemoryStartupBytes 3147825152 /);
  assert.match(s, /-MinimumBytes 536870912 -StartupBytes 3147825152 -MaximumBytes 3147825152/);
  const small = buildCreateScript({ ...spec, memoryMiB: 256 }, { switchName: 'Default Switch' });
  assert.match(small, /-MinimumBytes 268435456 -StartupBytes 268435456/);
});

test('Hyper-V needs an EFI VHDX image and VHD(X) disks', () => {
  assert.throws(
    () => buildCreateScript({ ...spec, efi: undefined }, { switchName: 'x' }),
    (e) => isBerthError(e, 'IMAGE_MISSING'),
  );
  assert.throws(
    () => buildCreateScript({ ...spec, disks: [{ ...spec.disks[0]!, path: 'C:\\x\\data.img' }] }, { switchName: 'x' }),
    (e) => isBerthError(e, 'VM_SPEC_UNSUPPORTED') && /VHDX/.test(e.message),
  );
  assert.throws(
    () => buildCreateScript({ ...spec, disks: [{ ...spec.disks[0]!, path: 'data.vhdx' }] }, { switchName: 'x' }),
    (e) => isBerthError(e, 'VM_SPEC_UNSUPPORTED'),
  );
  assert.throws(
    () => hypervMac('zz:00'),
    (e) => isBerthError(e, 'VM_SPEC_UNSUPPORTED'),
  );
});

test('a data disk with a size is made by Hyper-V: dynamic VHDX when missing, grown when smaller', () => {
  const sized: VmSpec = { ...spec, disks: [{ ...spec.disks[0]!, sizeBytes: 64 * 1024 ** 3 }, spec.disks[1]!] };
  const lines = body(buildCreateScript(sized, { switchName: 'Default Switch' }));
  const at = lines.lastIndexOf("$disk = 'C:\\Users\\me\\.berth\\default\\data.vhdx'");
  assert.ok(at > 0, lines.join('\n'));
  assert.deepEqual(lines.slice(at + 1, at + 4), [
    'if (-not (Test-Path -LiteralPath $disk)) { New-VHD -Path $disk -SizeBytes 68719476736 -Dynamic | Out-Null }',
    'elseif ((Get-VHD -Path $disk).Size -lt 68719476736) { Resize-VHD -Path $disk -SizeBytes 68719476736 }',
    "Add-VMHardDiskDrive -VMName $name -ControllerType SCSI -ControllerNumber 0 -ControllerLocation 1 -Path 'C:\\Users\\me\\.berth\\default\\data.vhdx'",
  ]);
  // Read-only disks are never created or resized.
  const ro = body(buildCreateScript({ ...spec, disks: [{ ...spec.disks[1]!, sizeBytes: 1 }] }, { switchName: 'x' })).join('\n');
  assert.doesNotMatch(ro, /New-VHD -Path \$disk/);
  assert.doesNotMatch(ro, /disk-shrink/);
});

test('a data disk larger than asked stops the script before the old VM is removed or a new one made', () => {
  const sized: VmSpec = { ...spec, disks: [{ ...spec.disks[0]!, sizeBytes: 32 * 1024 ** 3 }, spec.disks[1]!] };
  const lines = body(buildCreateScript(sized, { switchName: 'Default Switch' }));
  const at = lines.indexOf("$disk = 'C:\\Users\\me\\.berth\\default\\data.vhdx'");
  assert.deepEqual(lines.slice(at, at + 5), [
    "$disk = 'C:\\Users\\me\\.berth\\default\\data.vhdx'",
    'if (Test-Path -LiteralPath $disk) {',
    '  $have = (Get-VHD -Path $disk).Size',
    "  if ($have -gt 34359738368) { Stop-Berth 'disk-shrink' ('the data disk ' + $disk + ' is ' + [math]::Ceiling($have / 1GB) + ' GiB, and Hyper-V cannot shrink it to the 32 GiB in settings') }",
    '}',
  ]);
  const first = (re: RegExp) => lines.findIndex((l) => re.test(l));
  assert.ok(first(/\$old\.State/) < at, 'a busy VM is reported first');
  assert.ok(at < first(/Remove-VM/), 'checked before the old VM goes');
  assert.ok(first(/Remove-VM/) < first(/^New-VM /));
  assert.ok(first(/^New-VM /) < first(/New-VHD -Path \$disk/), 'the disk is made or grown after');
  const e = hypervError(
    { ok: false, kind: 'disk-shrink', message: 'the data disk C:\\d\\data.vhdx is 64 GiB, and Hyper-V cannot shrink it to the 32 GiB in settings' },
    'create and start the VM',
    'Default Switch',
  );
  assert.equal(e.code, 'DISK_SHRINK');
  assert.match(e.hint, /berth settings set diskGiB=64/);
  assert.match(e.hint, /Factory reset/);
  assert.match(e.hint, /only grows/);
});

test('stop: graceful through the shutdown service as a job, forced with -TurnOff', () => {
  const graceful = body(buildStopScript(spec, false)).join('\n');
  assert.match(graceful, /\$job = Stop-VM -Name 'berth-default' -Force -AsJob\n {2}Wait-Job -Job \$job -Timeout 3 \| Out-Null/);
  assert.doesNotMatch(graceful, /-TurnOff/);
  assert.match(body(buildStopScript(spec, true)).join('\n'), /Stop-VM -Name 'berth-default' -TurnOff -Force/);
});

test('state and address scripts', () => {
  const state = body(buildStateScript(spec)).join('\n');
  assert.match(state, /Get-VM -Name 'berth-default' -ErrorAction SilentlyContinue/);
  assert.match(state, /state = \$vm\.State\.ToString\(\)/, 'enums go out as names, not numbers');
  const addr = body(buildAddressScript(spec)).join('\n');
  assert.match(addr, /\(Get-VMNetworkAdapter -VM \$vm\)\.IPAddresses/);
  assert.match(addr, /Get-NetNeighbor -LinkLayerAddress '52-54-00-0A-0B-0C' -AddressFamily IPv4/);
});

test("results: the marker line wins; PowerShell's own errors are classified", () => {
  assert.deepEqual(parsePsResult({ code: 0, stdout: 'WARNING: x\r\nBERTH-RESULT:{"ok":true,"state":"Running"}\r\n', stderr: '' }), {
    ok: true,
    state: 'Running',
  });
  const missing = parsePsResult({
    code: 1,
    stdout: '',
    stderr: "Get-VM : The term 'Get-VM' is not recognized as the name of a cmdlet, function, script file, or operable program.",
  });
  assert.equal(missing.ok ? '' : missing.kind, 'disabled');
  const other = parsePsResult({ code: 1, stdout: '', stderr: 'something odd\nmore' });
  assert.equal(other.ok ? '' : other.message, 'something odd');
  const denied = hypervError(
    {
      ok: false,
      kind: 'error',
      category: 'PermissionDenied',
      message: "You do not have the required permission to complete this task. Contact the administrator of the authorization policy for the computer 'PC'.",
    },
    'query the VM',
    'Default Switch',
  );
  assert.equal(denied.code, 'HYPERV_NOT_ADMIN');
  assert.match(denied.hint, /Add-LocalGroupMember -SID S-1-5-32-578/);
  assert.equal(hypervError({ ok: false, kind: 'disabled', message: 'm' }, 'x', 's').code, 'HYPERV_DISABLED');
  const noModule = {
    ok: false as const,
    kind: 'error',
    category: 'ObjectNotFound',
    errorId: 'CommandNotFoundException',
    message: "The term 'Get-VM' is not recognized as the name of a cmdlet, function, script file, or operable program.",
  };
  assert.equal(hypervError(noModule, 'query the VM', 's').code, 'HYPERV_DISABLED', 'a state script without the Hyper-V module');
  assert.match(
    hypervError({ ok: false, kind: 'disabled', message: 'm' }, 'x', 's').hint,
    /Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V -All/,
  );
  assert.equal(hypervError({ ok: false, kind: 'no-switch', message: 'm' }, 'x', 's').code, 'HYPERV_SWITCH_MISSING');
  assert.equal(hypervError({ ok: false, kind: 'name-taken', message: 'm' }, 'x', 's').code, 'HYPERV_FAILED');
});

// ------------------------------------------------------------ fake PowerShell

const t = shortTempDir('hyv');
const bin = path.join(t.dir, 'bin');
installFake(bin, ['powershell.exe']);
const stateFile = path.join(t.dir, 'state.json');
const record = path.join(t.dir, 'scripts.jsonl');
const restoreEnv = withEnv({
  PATH: `${bin}${path.delimiter}${process.env.PATH}`,
  FAKE_PS_STATE: stateFile,
  FAKE_PS_RECORD: record,
});
after(() => {
  restoreEnv();
  t.cleanup();
});
const vms: RunningVm[] = [];
afterEach(() => {
  for (const vm of vms.splice(0)) vm.detach();
});

function reset(mode = 'ok', vmsState: Record<string, unknown> = {}): void {
  fs.writeFileSync(stateFile, JSON.stringify({ mode, vms: vmsState }));
  fs.rmSync(record, { force: true });
}
const recorded = () =>
  fs
    .readFileSync(record, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { argv: string[]; script: string });
const setVmState = (name: string, state: string) => {
  const st = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { vms: Record<string, { state: string }> };
  st.vms[name]!.state = state;
  fs.writeFileSync(stateFile, JSON.stringify(st));
};

let n = 0;
function liveSpec(): VmSpec {
  const dir = path.join(t.dir, `i${++n}`);
  fs.mkdirSync(dir);
  return { ...spec, name: `vm${n}`, serialLog: path.join(dir, 'serial.log') };
}
const pipeFor = (s: VmSpec) => path.join(t.dir, `${s.name}.com1`);
const driver = new HypervDriver({ pollMs: 100, comPipe: pipeFor });

test('start runs the create script through powershell.exe -Command - and reports running', async () => {
  reset();
  const s = liveSpec();
  const vm = await driver.start(s);
  vms.push(vm);
  const runs = recorded();
  assert.deepEqual(runs[0]!.argv, POWERSHELL_ARGS);
  assert.deepEqual(POWERSHELL_ARGS, ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-Command', '-']);
  assert.equal(runs[0]!.script, buildCreateScript(s, { switchName: 'Default Switch' }));
  assert.equal(vm.pid, 4242, 'the VM worker process id from Msvm_ComputerSystem');
  assert.ok(vm.alive());
  assert.equal(await vm.state!(), 'Running');
  assert.deepEqual(driver.guestTraits('x86_64'), {
    console: 'ttyS0',
    network: 'dhcp',
    hostLoopback: { address: HOST_RELAY_ADDRESS, via: 'relay' },
    disks: 'scsi-lun',
  });
});

test('the guest address comes from Get-VMNetworkAdapter, polled until the guest reports it', async () => {
  reset();
  const vm = await driver.start(liveSpec());
  vms.push(vm);
  assert.deepEqual(await vm.sshEndpoint!(10_000), { host: '172.29.112.5', port: 22 });
  assert.equal(recorded().filter((r) => r.script.startsWith('# berth:address')).length, 2);
});

test('graceful stop: Stop-VM shuts the guest down and the exit is seen', async () => {
  reset();
  const vm = await driver.start(liveSpec());
  vms.push(vm);
  const exited = new Promise<string>((r) => vm.once('exit', (e) => r(e.reason)));
  assert.equal(await stopVm(vm, 3000), 'graceful');
  assert.match(await exited, /Off/);
  const ops = recorded().map((r) => /^# berth:(\w+)/.exec(r.script)![1]);
  assert.ok(ops.includes('shutdown'));
  assert.ok(!ops.includes('turnoff'));
});

test('after a stop, the writable data disk is compacted (Optimize-VHD -Mode Full) with the VM off; read-only disks are not', async () => {
  reset();
  const s = liveSpec();
  const data = 'C:\\Users\\me\\.berth\\default\\data.vhdx';
  s.disks = [{ ...s.disks[0]!, path: data, sizeBytes: 64 * 2 ** 30 }, s.disks[1]!];
  const vm = await driver.start(s);
  vms.push(vm);
  assert.equal(await stopVm(vm, 3000), 'graceful');
  const ops = recorded().map((r) => /^# berth:(\w+)/.exec(r.script)![1]);
  assert.ok(ops.indexOf('compact') > ops.indexOf('shutdown'), ops.join(' '));
  assert.deepEqual(JSON.parse(fs.readFileSync(stateFile, 'utf8')).compacted, [data]);
  assert.deepEqual(body(buildCompactScript([data])), [
    '$sizes = @()',
    `$f = '${data}'`,
    'if (Test-Path -LiteralPath $f) {',
    '  $before = (Get-Item -LiteralPath $f).Length',
    '  Optimize-VHD -Path $f -Mode Full',
    '  $sizes += @{ path = $f; before = $before; after = (Get-Item -LiteralPath $f).Length }',
    '}',
    'Send-BerthResult @{ ok = $true; disks = $sizes }',
  ]);
});

test('hung shutdown: the guest ignores it, so the VM is turned off', async () => {
  reset('hang-stop');
  const vm = await driver.start(liveSpec());
  vms.push(vm);
  assert.equal(await stopVm(vm, 600), 'forced');
  assert.ok(!vm.alive());
  const ops = recorded().map((r) => /^# berth:(\w+)/.exec(r.script)![1]);
  assert.ok(ops.indexOf('shutdown') < ops.indexOf('turnoff'));
});

test('a VM that turns off by itself (crash, poweroff in the guest) is an exit event', async () => {
  reset();
  const s = liveSpec();
  const vm = await driver.start(s);
  vms.push(vm);
  const hold = setInterval(() => undefined, 1000);
  const exited = new Promise<string>((r) => vm.once('exit', (e) => r(e.reason))).finally(() => clearInterval(hold));
  setVmState(`berth-${s.name}`, 'Off');
  assert.match(await exited, /Hyper-V VM is Off/);
  assert.ok(!vm.alive());
});

test('the serial log is copied from the COM1 pipe', async () => {
  reset();
  const s = liveSpec();
  const server = net.createServer((c) => c.end('Linux version 6.1.0 (fake hyper-v)\r\n'));
  await new Promise<void>((r) => server.listen(pipeFor(s), r));
  try {
    const vm = await driver.start(s);
    vms.push(vm);
    let log = '';
    for (let i = 0; i < 50 && !log.includes('Linux version'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      log = fs.existsSync(s.serialLog) ? fs.readFileSync(s.serialLog, 'utf8') : '';
    }
    assert.match(log, /Linux version 6\.1\.0/);
  } finally {
    server.close();
  }
  assert.equal(comPipePath(s), `\\\\.\\pipe\\berth-${s.name}-com1`);
});

test('attach finds a running Berth VM, and ignores a stopped one', async () => {
  reset('ok', {
    'berth-up': { state: 'Running', notes: HYPERV_NOTE },
    'berth-down': { state: 'Off', notes: HYPERV_NOTE },
    'berth-alien': { state: 'Running', notes: 'someone else' },
  });
  const up = await driver.attach({ ...spec, name: 'up' });
  assert.ok(up);
  vms.push(up);
  assert.equal(up.pid, 4242);
  assert.equal(await driver.attach({ ...spec, name: 'down' }), null);
  assert.equal(await driver.attach({ ...spec, name: 'alien' }), null);
  assert.equal(await driver.attach({ ...spec, name: 'none' }), null);
});

test('a smaller diskGiB than the data disk has: DISK_SHRINK with a hint, and the old VM is left as it was', async () => {
  const data = spec.disks[0]!.path;
  reset('ok', { 'berth-small': { state: 'Off', notes: HYPERV_NOTE } });
  const st = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(stateFile, JSON.stringify({ ...st, disks: { [data]: 64 * 1024 ** 3 } }));
  const s: VmSpec = { ...liveSpec(), name: 'small', disks: [{ ...spec.disks[0]!, sizeBytes: 32 * 1024 ** 3 }, spec.disks[1]!] };
  await assert.rejects(driver.start(s), (e) => {
    assert.ok(isBerthError(e, 'DISK_SHRINK'), String(e));
    assert.equal(e.message, `the data disk ${data} is 64 GiB, and Hyper-V cannot shrink it to the 32 GiB in settings`);
    assert.match(e.hint, /`berth settings set diskGiB=64`/);
    assert.match(e.details ?? '', /# berth:create/, 'the script is in the details');
    return true;
  });
  const after = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { vms: Record<string, { state: string }>; disks: Record<string, number> };
  assert.equal(after.vms['berth-small']!.state, 'Off', 'not recreated, not started');
  assert.equal(after.disks[data], 64 * 1024 ** 3, 'the disk is untouched');
  // The same size, or more, starts.
  const vm = await driver.start({ ...s, disks: [{ ...spec.disks[0]!, sizeBytes: 80 * 1024 ** 3 }, spec.disks[1]!] });
  vms.push(vm);
  assert.equal((JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { disks: Record<string, number> }).disks[data], 80 * 1024 ** 3, 'grown');
});

test('starting over a running VM of the same name is refused', async () => {
  reset('ok', { 'berth-busy': { state: 'Running', notes: HYPERV_NOTE } });
  await assert.rejects(driver.start({ ...spec, name: 'busy' }), (e) => isBerthError(e, 'HYPERV_FAILED') && /already Running/.test(e.message));
});

test('Hyper-V turned off: HYPERV_DISABLED with a hint to enable it', async () => {
  reset('disabled');
  await assert.rejects(driver.start(liveSpec()), (e) => {
    assert.ok(isBerthError(e, 'HYPERV_DISABLED'));
    assert.match(e.hint, /Enable-WindowsOptionalFeature/);
    assert.match(e.details ?? '', /# berth:create/);
    return true;
  });
  reset('raw-missing');
  await assert.rejects(driver.start(liveSpec()), (e) => isBerthError(e, 'HYPERV_DISABLED'));
});

test('not in Hyper-V Administrators: HYPERV_NOT_ADMIN with the command to fix it', async () => {
  reset('not-admin');
  await assert.rejects(driver.start(liveSpec()), (e) => isBerthError(e, 'HYPERV_NOT_ADMIN') && /S-1-5-32-578/.test(e.hint) && /sign out/.test(e.hint));
  reset('denied', { 'berth-x': { state: 'Running', notes: HYPERV_NOTE } });
  const vm = await new HypervDriver({ pollMs: 100, comPipe: pipeFor }).attach({ ...spec, name: 'x' });
  assert.equal(vm, null, 'an attach that may not look is no attach');
  await assert.rejects(new HypervDriver({ pollMs: 100, comPipe: pipeFor }).probe(), (e) => isBerthError(e, 'HYPERV_NOT_ADMIN'));
});

test('no Default Switch: HYPERV_SWITCH_MISSING', async () => {
  reset('no-switch');
  await assert.rejects(driver.start(liveSpec()), (e) => isBerthError(e, 'HYPERV_SWITCH_MISSING') && /BERTH_HYPERV_SWITCH/.test(e.hint));
});

test('the PowerShell BERTH_POWERSHELL names (the powershell option) is the one run; a missing one is POWERSHELL_MISSING', async () => {
  const run = spawnPowerShell('/nonexistent/pwsh');
  await assert.rejects(run(wrapScript('state', 'x')), (e) => isBerthError(e, 'POWERSHELL_MISSING'));
  reset('ok', { 'berth-p': { state: 'Running', notes: HYPERV_NOTE } });
  const restore = withEnv({ PATH: '/usr/bin:/bin' });
  try {
    const vm = await new HypervDriver({ powershell: path.join(bin, 'powershell.exe'), pollMs: 100, comPipe: pipeFor }).attach({ ...spec, name: 'p' });
    assert.ok(vm);
    vms.push(vm);
  } finally {
    restore();
  }
});
