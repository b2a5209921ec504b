import path from 'node:path';
import { BerthError } from '../../contract/errors.js';
import { defaultMacAddress, type VmSpec } from './driver.js';

/**
 * The Hyper-V driver's PowerShell scripts, each built as text by a pure
 * function (unit-tested against the cmdlets' documented parameters): create,
 * state, stop, address and host probe, all answering one
 * `BERTH-RESULT:{json}` line (powershell.ts reads it).
 */

export const HYPERV_NOTE = 'Managed by Berth; removed and recreated at each start.';

/**
 * Where each disk sits on SCSI controller 0 (Add-VMHardDiskDrive
 * -ControllerLocation), by the name (DiskSpec serial) the guest looks for.
 * Hyper-V's synthetic SCSI disks have no serial we can set, so the guest
 * reads the place instead: Linux's storvsc driver shows a disk at
 * ControllerLocation N of a controller as SCSI address H:0:0:N (channel 0,
 * target 0, LUN = the location), the way Azure's udev rules name data disks
 * by LUN (Azure/azure-vm-utils udev/80-azure-disk.rules reads the 4th field
 * of /sys/class/block/<dev>/device; learn.microsoft.com, "Troubleshoot
 * Linux VM device name changes": the LUN a data disk was attached at). The
 * guest's copy of this table is berth_disk_lun in
 * vm-images/rootfs/etc/berth/disks.sh; a unit test keeps them equal.
 */
export const HYPERV_DISK_LUNS = { 'berth-efi': 0, 'berth-data': 1, 'berth-cfg': 2 } as const;
export type HypervDiskName = keyof typeof HYPERV_DISK_LUNS;

/** The LUN for a disk name, or a clear error for a disk the guest could not find. */
export function hypervDiskLun(serial: string): number {
  if (!Object.hasOwn(HYPERV_DISK_LUNS, serial)) {
    throw new BerthError(
      'VM_SPEC_UNSUPPORTED',
      `Hyper-V has no place for a disk named ${serial}: the guest finds its disks by SCSI LUN, and only ${Object.keys(HYPERV_DISK_LUNS).join(', ')} have one`,
      'This is a bug in Berth; please report it.',
    );
  }
  return HYPERV_DISK_LUNS[serial as HypervDiskName];
}
export const RESULT_MARK = 'BERTH-RESULT:';

/** The Hyper-V VM name for an instance. */
export function hypervVmName(spec: Pick<VmSpec, 'name'>): string {
  return `berth-${spec.name}`;
}

/** The named pipe Hyper-V connects COM1 to (the VM serves it while running). */
export function comPipePath(spec: Pick<VmSpec, 'name'>): string {
  return `\\\\.\\pipe\\berth-${spec.name}-com1`;
}

/** Where Hyper-V keeps this VM's configuration: next to the instance's files. */
export function hypervVmDir(spec: Pick<VmSpec, 'pidFile'>): string {
  return path.win32.join(path.win32.dirname(spec.pidFile), 'hyperv');
}

/**
 * A PowerShell string literal for any value. Printable ASCII goes in single
 * quotes, where nothing is special but the quote itself, doubled. PowerShell
 * also treats the typographic quotes U+2018..U+201B as single quotes, and
 * Windows PowerShell reads `-Command -` in the console code page, so any
 * other character is passed as UTF-8 bytes in base64 and decoded by the
 * script: the script text stays pure ASCII.
 */
export function psQuote(value: string): string {
  if (/^[\x20-\x7e]*$/.test(value)) return `'${value.replace(/'/g, "''")}'`;
  const b64 = Buffer.from(value, 'utf8').toString('base64');
  return `([System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String('${b64}')))`;
}

/** Hyper-V takes memory in bytes, in multiples of 2 MiB. */
function memoryBytes(mib: number): number {
  return Math.ceil(mib / 2) * 2 * 1024 * 1024;
}

/** "52:54:00:0a:0b:0c" -> "5254000A0B0C" (Set-VMNetworkAdapter -StaticMacAddress). */
export function hypervMac(mac: string): string {
  const hex = mac.replace(/[:-]/g, '').toUpperCase();
  if (!/^[0-9A-F]{12}$/.test(hex)) {
    throw new BerthError('VM_SPEC_UNSUPPORTED', `"${mac}" is not a MAC address`, 'Use six hex pairs, for example 52:54:00:12:34:56.');
  }
  return hex;
}

/**
 * Wrap a script body: `& { ... }` so PowerShell parses it as one statement
 * (stdin input to `-Command -` is otherwise run line by line, as typed, and
 * a multi-line block needs a blank line to end it: PowerShell issue #3223),
 * stop on every error, and answer exactly one result line. Non-ASCII in the
 * JSON is escaped so the console code page cannot mangle it.
 */
export function wrapScript(op: string, body: string): string {
  return [
    `# berth:${op}`,
    '& {',
    "$ErrorActionPreference = 'Stop'",
    "$ProgressPreference = 'SilentlyContinue'",
    'function Send-BerthResult($Value) {',
    '  $json = ConvertTo-Json -InputObject $Value -Depth 6 -Compress',
    "  $json = [regex]::Replace($json, '[^\\x00-\\x7F]', { param($m) '\\u{0:x4}' -f [int][char]$m.Value })",
    `  [Console]::Out.WriteLine('${RESULT_MARK}' + $json)`,
    '}',
    'function Stop-Berth($Kind, $Message) { throw (New-Object System.Exception ("BERTH-FAIL:" + $Kind + ":" + $Message)) }',
    'try {',
    body
      .trim()
      .split('\n')
      .map((l) => `  ${l}`)
      .join('\n'),
    '} catch {',
    '  $msg = $_.Exception.Message',
    "  $kind = 'error'",
    "  if ($msg -like 'BERTH-FAIL:*') { $parts = $msg -split ':', 3; $kind = $parts[1]; $msg = $parts[2] }",
    '  Send-BerthResult @{ ok = $false; kind = $kind; message = $msg; category = $_.CategoryInfo.Category.ToString(); errorId = $_.FullyQualifiedErrorId }',
    '}',
    '}',
    '',
    '',
  ].join('\n');
}

/**
 * Hyper-V usable by this user? The module, the management service (vmms),
 * membership of Hyper-V Administrators (SID S-1-5-32-578, the same in every
 * language) or an elevated administrator, and the virtual switch.
 */
export function preflightLines(switchName: string): string[] {
  return [
    "if (-not (Get-Module -ListAvailable -Name Hyper-V)) { Stop-Berth 'disabled' 'the Hyper-V PowerShell module is not installed' }",
    '$vmms = Get-Service -Name vmms -ErrorAction SilentlyContinue',
    "if (-not $vmms) { Stop-Berth 'disabled' 'the Hyper-V Virtual Machine Management service (vmms) is not installed' }",
    "if ($vmms.Status -ne 'Running') { Stop-Berth 'disabled' ('the Hyper-V Virtual Machine Management service (vmms) is ' + $vmms.Status) }",
    '$principal = New-Object System.Security.Principal.WindowsPrincipal([System.Security.Principal.WindowsIdentity]::GetCurrent())',
    "$hvAdmins = New-Object System.Security.Principal.SecurityIdentifier('S-1-5-32-578')",
    'if (-not ($principal.IsInRole($hvAdmins) -or $principal.IsInRole([System.Security.Principal.WindowsBuiltInRole]::Administrator))) {',
    "  Stop-Berth 'not-admin' 'this user is not a member of Hyper-V Administrators'",
    '}',
    `$switchName = ${psQuote(switchName)}`,
    "if (-not (Get-VMSwitch -Name $switchName -ErrorAction SilentlyContinue)) { Stop-Berth 'no-switch' ('there is no Hyper-V virtual switch named ' + $switchName) }",
  ];
}

export interface HypervScriptOptions {
  switchName: string;
}

function isVhd(p: string): boolean {
  return /\.vhdx?$/i.test(p);
}

function requireVhd(what: string, p: string): string {
  if (!isVhd(p)) {
    throw new BerthError(
      'VM_SPEC_UNSUPPORTED',
      `the ${what} ${p} is not a VHDX/VHD file; Hyper-V attaches only virtual hard disks`,
      'Use the Hyper-V build of the guest image (VHDX), or create the disk with `New-VHD`.',
    );
  }
  // A drive or UNC path. Off Windows (the contract tests simulate Hyper-V
  // on Linux) the host's own absolute paths pass too.
  const windowsAbsolute = path.win32.isAbsolute(p) && !/^[\\/](?![\\/])/.test(p);
  if (!windowsAbsolute && !(process.platform !== 'win32' && path.posix.isAbsolute(p))) {
    throw new BerthError('VM_SPEC_UNSUPPORTED', `the ${what} path ${p} is not an absolute Windows path`, 'This is a bug in Berth; please report it.');
  }
  return p;
}

/**
 * Create the VM for a spec and start it. A VM of the same name made by
 * Berth and switched off is removed first (its disks stay; Remove-VM only
 * deletes the configuration), so cpus, memory and disks always match the
 * spec. Before anything is removed or made, a data disk larger than the
 * spec asks for stops the script (see vhdShrinkCheckLines). The EFI disk and read-only disks are attached through a fresh
 * differencing disk in the VM folder, so several instances can share one
 * base image and nothing writes to it. Cmdlets: New-VM, Set-VM, Set-VMProcessor, Set-VMMemory,
 * New-VHD, Add-VMHardDiskDrive, Get-VMHardDiskDrive, Set-VMFirmware,
 * Connect-VMNetworkAdapter, Set-VMNetworkAdapter, Set-VMComPort, Start-VM.
 */
export function buildCreateScript(spec: VmSpec, o: HypervScriptOptions): string {
  if (!spec.efi) {
    throw new BerthError(
      'IMAGE_MISSING',
      'Hyper-V boots only UEFI disk images, and this guest image has no EFI boot disk',
      'Use a guest image built with its EFI/VHDX artifacts (`npm run image`), or another driver.',
    );
  }
  const name = hypervVmName(spec);
  const dir = hypervVmDir(spec);
  const mem = memoryBytes(spec.memoryMiB);
  const minMem = Math.min(mem, memoryBytes(512));
  const lines: string[] = [...preflightLines(o.switchName)];
  lines.push(
    `$name = ${psQuote(name)}`,
    `$dir = ${psQuote(dir)}`,
    '$old = Get-VM -Name $name -ErrorAction SilentlyContinue',
    'if ($old) {',
    `  if ($old.Notes -ne ${psQuote(HYPERV_NOTE)}) { Stop-Berth 'name-taken' ('a Hyper-V VM named ' + $name + ' exists and was not created by Berth') }`,
    "  if ($old.State.ToString() -ne 'Off') { Stop-Berth 'busy' ('the Hyper-V VM ' + $name + ' is already ' + $old.State.ToString()) }",
    '}',
  );
  for (const d of spec.disks) {
    if (d.sizeBytes !== undefined && !d.readonly) lines.push(...vhdShrinkCheckLines(requireVhd(`disk ${d.serial}`, d.path), d.sizeBytes));
  }
  lines.push(
    'if ($old) { Remove-VM -Name $name -Force }',
    'New-Item -ItemType Directory -Force -Path $dir | Out-Null',
    `New-VM -Name $name -Generation 2 -MemoryStartupBytes ${mem} -NoVHD -Path $dir | Out-Null`,
    `Set-VM -Name $name -Notes ${psQuote(HYPERV_NOTE)} -AutomaticCheckpointsEnabled $false -CheckpointType Disabled -AutomaticStartAction Nothing -AutomaticStopAction ShutDown`,
    `Set-VMProcessor -VMName $name -Count ${spec.cpus}`,
    `Set-VMMemory -VMName $name -DynamicMemoryEnabled $true -MinimumBytes ${minMem} -StartupBytes ${mem} -MaximumBytes ${mem}`,
  );
  // Shared, never-written images (the EFI disk, the base system) go in
  // through a per-VM differencing disk: Hyper-V opens an attached VHDX
  // exclusively, and the child keeps every write away from the parent.
  const attach = (location: number, file: string, readonly: boolean, childName: string) => {
    if (!readonly) {
      lines.push(`Add-VMHardDiskDrive -VMName $name -ControllerType SCSI -ControllerNumber 0 -ControllerLocation ${location} -Path ${psQuote(file)}`);
      return;
    }
    lines.push(
      `$child = ${psQuote(path.win32.join(dir, `${childName}${path.win32.extname(file).toLowerCase()}`))}`,
      'if (Test-Path -LiteralPath $child) { Remove-Item -LiteralPath $child -Force }',
      `New-VHD -Path $child -ParentPath ${psQuote(file)} -Differencing | Out-Null`,
      `Add-VMHardDiskDrive -VMName $name -ControllerType SCSI -ControllerNumber 0 -ControllerLocation ${location} -Path $child`,
    );
  };
  const efiLun = HYPERV_DISK_LUNS['berth-efi'];
  attach(efiLun, requireVhd('EFI boot disk', spec.efi.image), true, 'berth-efi');
  for (const d of spec.disks) {
    const lun = hypervDiskLun(d.serial);
    if (lun === efiLun)
      throw new BerthError(
        'VM_SPEC_UNSUPPORTED',
        `the disk ${d.serial} would take the EFI boot disk's LUN ${efiLun}`,
        'This is a bug in Berth; please report it.',
      );
    const file = requireVhd(`disk ${d.serial}`, d.path);
    if (d.sizeBytes !== undefined && !d.readonly) lines.push(...ensureVhdLines(file, d.sizeBytes));
    attach(lun, file, d.readonly, d.serial);
  }
  lines.push(
    `$bootDisk = Get-VMHardDiskDrive -VMName $name -ControllerType SCSI -ControllerNumber 0 -ControllerLocation ${efiLun}`,
    'Set-VMFirmware -VMName $name -EnableSecureBoot Off -FirstBootDevice $bootDisk',
    'Connect-VMNetworkAdapter -VMName $name -SwitchName $switchName',
    `Set-VMNetworkAdapter -VMName $name -StaticMacAddress ${psQuote(hypervMac(spec.macAddress ?? defaultMacAddress(spec.name)))}`,
    `Set-VMComPort -VMName $name -Number 1 -Path ${psQuote(comPipePath(spec))}`,
    'Start-VM -Name $name',
    '$vm = Get-VM -Name $name',
    'Send-BerthResult @{ ok = $true; exists = $true; state = $vm.State.ToString(); id = $vm.Id.ToString(); notes = $vm.Notes }',
  );
  return wrapScript('create', lines.join('\n'));
}

/** VHDX sizes are whole MiB. */
function vhdBytes(sizeBytes: number): number {
  return Math.ceil(sizeBytes / (1024 * 1024)) * 1024 * 1024;
}

/**
 * A writable disk Hyper-V makes itself: a dynamic VHDX (New-VHD -Dynamic,
 * space taken as the guest writes) created when missing and grown
 * (Resize-VHD) when smaller than asked. Never shrunk: vhdShrinkCheckLines
 * refuses that first.
 */
export function ensureVhdLines(file: string, sizeBytes: number): string[] {
  const size = vhdBytes(sizeBytes);
  return [
    `$disk = ${psQuote(file)}`,
    `if (-not (Test-Path -LiteralPath $disk)) { New-VHD -Path $disk -SizeBytes ${size} -Dynamic | Out-Null }`,
    `elseif ((Get-VHD -Path $disk).Size -lt ${size}) { Resize-VHD -Path $disk -SizeBytes ${size} }`,
  ];
}

/**
 * An existing disk larger than the spec asks for (the diskGiB setting was
 * lowered) stops the script before the VM is touched. Hyper-V's Resize-VHD
 * shrinks a VHDX only down to the end of its last partition, and the guest's
 * ext4 spans the whole disk, so it cannot be made smaller without losing
 * what is on it; quietly starting at the old size would hide that the
 * setting did nothing. Get-VHD's Size is the virtual size in bytes.
 */
export function vhdShrinkCheckLines(file: string, sizeBytes: number): string[] {
  const size = vhdBytes(sizeBytes);
  return [
    `$disk = ${psQuote(file)}`,
    'if (Test-Path -LiteralPath $disk) {',
    '  $have = (Get-VHD -Path $disk).Size',
    `  if ($have -gt ${size}) { Stop-Berth 'disk-shrink' ('the data disk ' + $disk + ' is ' + [math]::Ceiling($have / 1GB) + ' GiB, and Hyper-V cannot shrink it to the ${Math.round((size / 1024 ** 3) * 10) / 10} GiB in settings') }`,
    '}',
  ];
}

/** The VM's state (Get-VM), and the worker process id when Hyper-V tells it. */
export function buildStateScript(spec: Pick<VmSpec, 'name'>): string {
  return wrapScript(
    'state',
    [
      `$vm = Get-VM -Name ${psQuote(hypervVmName(spec))} -ErrorAction SilentlyContinue`,
      'if (-not $vm) {',
      '  Send-BerthResult @{ ok = $true; exists = $false }',
      '} else {',
      '  $procId = 0',
      '  try { $procId = [int](Get-CimInstance -Namespace \'root\\virtualization\\v2\' -ClassName Msvm_ComputerSystem -Filter ("Name=\'" + $vm.Id + "\'")).ProcessID } catch { $procId = 0 }',
      '  Send-BerthResult @{ ok = $true; exists = $true; state = $vm.State.ToString(); notes = $vm.Notes; processId = $procId }',
      '}',
    ].join('\n'),
  );
}

/**
 * Stop-VM: without -TurnOff it shuts the guest down through the shutdown
 * integration service (-Force: no prompt, and a locked guest still goes
 * down); the request runs as a job that is given a few seconds to reach
 * Hyper-V, and the engine waits for the VM to turn off. With -TurnOff it is
 * the power cord.
 */
export function buildStopScript(spec: Pick<VmSpec, 'name'>, turnOff: boolean): string {
  const name = psQuote(hypervVmName(spec));
  return wrapScript(
    turnOff ? 'turnoff' : 'shutdown',
    [
      `$vm = Get-VM -Name ${name} -ErrorAction SilentlyContinue`,
      "if ($vm -and $vm.State.ToString() -ne 'Off') {",
      turnOff ? `  Stop-VM -Name ${name} -TurnOff -Force` : `  $job = Stop-VM -Name ${name} -Force -AsJob\n  Wait-Job -Job $job -Timeout 3 | Out-Null`,
      `  $vm = Get-VM -Name ${name}`,
      '}',
      'if ($vm) { Send-BerthResult @{ ok = $true; exists = $true; state = $vm.State.ToString() } } else { Send-BerthResult @{ ok = $true; exists = $false } }',
    ].join('\n'),
  );
}

/**
 * Give back what the guest freed (issue 17 item 5): the guest's ext4
 * discards freed blocks and Hyper-V marks them unmapped in the dynamic
 * VHDX, but the file keeps its length until Optimize-VHD -Mode Full
 * compacts it. Run with the VM off (the disk is not open then); each
 * file's length before and after.
 */
export function buildCompactScript(files: readonly string[]): string {
  const lines = ['$sizes = @()'];
  for (const f of files) {
    lines.push(
      `$f = ${psQuote(f)}`,
      'if (Test-Path -LiteralPath $f) {',
      '  $before = (Get-Item -LiteralPath $f).Length',
      '  Optimize-VHD -Path $f -Mode Full',
      '  $sizes += @{ path = $f; before = $before; after = (Get-Item -LiteralPath $f).Length }',
      '}',
    );
  }
  lines.push('Send-BerthResult @{ ok = $true; disks = $sizes }');
  return wrapScript('compact', lines.join('\n'));
}

/**
 * The guest's IPv4 addresses: Get-VMNetworkAdapter's IPAddresses (from the
 * guest's KVP daemon, hv_kvp_daemon), and the host's neighbour table for
 * our MAC (Get-NetNeighbor) for guests without it.
 */
export function buildAddressScript(spec: Pick<VmSpec, 'name' | 'macAddress'>): string {
  const mac = hypervMac(spec.macAddress ?? defaultMacAddress(spec.name)).replace(/(..)(?!$)/g, '$1-');
  return wrapScript(
    'address',
    [
      `$vm = Get-VM -Name ${psQuote(hypervVmName(spec))} -ErrorAction SilentlyContinue`,
      "if (-not $vm) { Stop-Berth 'gone' 'the VM does not exist' }",
      "$ips = @((Get-VMNetworkAdapter -VM $vm).IPAddresses | Where-Object { $_ -match '^\\d+\\.\\d+\\.\\d+\\.\\d+$' -and $_ -notlike '169.254.*' })",
      '$neighbors = @()',
      'if ($ips.Count -eq 0) {',
      `  $neighbors = @(Get-NetNeighbor -LinkLayerAddress ${psQuote(mac)} -AddressFamily IPv4 -ErrorAction SilentlyContinue | Where-Object { $_.State -ne 'Unreachable' -and $_.IPAddress -notlike '169.254.*' } | ForEach-Object { $_.IPAddress })`,
      '}',
      'Send-BerthResult @{ ok = $true; state = $vm.State.ToString(); ips = $ips; neighbors = $neighbors }',
    ].join('\n'),
  );
}

/** What `berth doctor` needs to know about Hyper-V on this host. */
export function buildProbeScript(switchName: string): string {
  return wrapScript(
    'probe',
    [
      '$r = @{ ok = $true }',
      '$r.module = [bool](Get-Module -ListAvailable -Name Hyper-V)',
      '$vmms = Get-Service -Name vmms -ErrorAction SilentlyContinue',
      "$r.vmms = if ($vmms) { $vmms.Status.ToString() } else { 'missing' }",
      '$principal = New-Object System.Security.Principal.WindowsPrincipal([System.Security.Principal.WindowsIdentity]::GetCurrent())',
      "$r.hypervAdmin = $principal.IsInRole((New-Object System.Security.Principal.SecurityIdentifier('S-1-5-32-578')))",
      '$r.elevated = $principal.IsInRole([System.Security.Principal.WindowsBuiltInRole]::Administrator)',
      '$cs = Get-CimInstance -ClassName Win32_ComputerSystem',
      '$r.hypervisorPresent = [bool]$cs.HypervisorPresent',
      '$r.edition = (Get-CimInstance -ClassName Win32_OperatingSystem).Caption',
      `$r.switchExists = if ($r.module -and $vmms) { [bool](Get-VMSwitch -Name ${psQuote(switchName)} -ErrorAction SilentlyContinue) } else { $false }`,
      'Send-BerthResult $r',
    ].join('\n'),
  );
}
