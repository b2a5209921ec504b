/**
 * Fake hypervisor executables for contract tests: Node scripts put first on
 * PATH under the real tools' names. Each records how it was called and
 * plays its tool's documented behaviour: vfkit (doc/usage.md: command line,
 * REST API on --restful-uri, exit when the VM stops), powershell.exe running
 * Berth's Hyper-V scripts from stdin (answers from a JSON state file), and
 * qemu-system-* (-daemonize with -pidfile, QMP on -qmp, SHUTDOWN events).
 * Modes make them fail to start, crash, or ignore a shutdown.
 */
import fs from 'node:fs';
import path from 'node:path';

export const FAKE_VFKIT = String.raw`#!/usr/bin/env node
// Fake vfkit: records argv, serves the REST API on the --restful-uri unix
// socket, writes the serial log and a bootpd lease; FAKE_VFKIT_MODE picks
// ok | crash-start | crash-later | hang-stop | hang-all. SIGUSR1 plays the
// guest powering itself off (vfkit exits when the VM stops).
const fs = require('fs');
const http = require('http');
const argv = process.argv.slice(2);
if (argv[0] === '--version') { console.log('vfkit version: v0.6.1'); process.exit(0); }
const mode = process.env.FAKE_VFKIT_MODE || 'ok';
if (process.env.FAKE_VFKIT_RECORD) fs.appendFileSync(process.env.FAKE_VFKIT_RECORD, JSON.stringify(argv) + '\n');
const opt = (flag) => argv[argv.indexOf(flag) + 1];
const devices = argv.flatMap((a, i) => (argv[i - 1] === '--device' ? [a] : []));
const serial = (devices.find((d) => d.startsWith('virtio-serial,')) || '').split('logFilePath=')[1];
const mac = ((devices.find((d) => d.startsWith('virtio-net,')) || '').split('mac=')[1] || '').split(',')[0];
const sock = decodeURIComponent(opt('--restful-uri').replace(/^unix:\/\//, ''));
const say = (line) => serial && fs.appendFileSync(serial, line + '\n');
if (mode === 'crash-start') {
  console.error('time="x" level=fatal msg="Error Domain=VZErrorDomain Code=2 Description=\\"Virtualization is not available on this hardware.\\""');
  process.exit(1);
}
let state = 'VirtualMachineStateStarting';
const quit = (code) => { say('reboot: Power down'); try { fs.rmSync(sock, { force: true }); } catch {} process.exit(code); };
process.on('SIGTERM', () => { if (mode !== 'hang-all') quit(0); });
process.on('SIGUSR1', () => quit(0));
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    if (req.url === '/vm/state' && req.method === 'GET') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ state, canStart: false, canPause: true, canResume: false, canStop: true, canHardStop: true }));
    }
    if (req.url === '/vm/state' && req.method === 'POST') {
      const want = JSON.parse(body).state;
      if (process.env.FAKE_VFKIT_RECORD) fs.appendFileSync(process.env.FAKE_VFKIT_RECORD, JSON.stringify({ post: want }) + '\n');
      res.end();
      if (want === 'Stop' && mode !== 'hang-stop' && mode !== 'hang-all') { state = 'VirtualMachineStateStopping'; setTimeout(() => quit(0), 100); }
      if (want === 'HardStop' && mode !== 'hang-all') setTimeout(() => quit(0), 20);
      return;
    }
    res.statusCode = 404;
    res.end('not found');
  });
});
server.listen(sock, () => {
  console.error('level=info msg="virtual machine is running"');
  say('Linux version 6.1.0 (fake vfkit)');
  setTimeout(() => {
    state = 'VirtualMachineStateRunning';
    if (process.env.FAKE_VFKIT_LEASES && mac) {
      const hw = mac.split(':').map((p) => p.replace(/^0(?=.)/, '')).join(':');
      fs.appendFileSync(process.env.FAKE_VFKIT_LEASES, '{\n\tname=berth\n\tip_address=' + (process.env.FAKE_VFKIT_IP || '192.168.64.42') + '\n\thw_address=1,' + hw + '\n\tidentifier=1,' + hw + '\n\tlease=0x7fffffff\n}\n');
    }
  }, 150);
  if (mode === 'crash-later') setTimeout(() => { say('Kernel panic - not syncing: fake'); process.exit(3); }, 400);
});
`;

export const FAKE_PS = String.raw`#!/usr/bin/env node
// Fake powershell.exe: records argv and the script read from stdin, answers
// from the state file. The operation is the script's first line, # berth:<op>.
const fs = require('fs');
const stateFile = process.env.FAKE_PS_STATE;
let script = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => (script += d));
process.stdin.on('end', () => {
  const st = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
  fs.appendFileSync(process.env.FAKE_PS_RECORD, JSON.stringify({ argv: process.argv.slice(2), script }) + '\n');
  const op = (/^# berth:(\w+)/.exec(script) || [])[1];
  const name = (/(?:\$name = |Get-VM -Name )'([^']+)'/.exec(script) || [])[1];
  const vm = st.vms[name];
  const out = (o) => console.log('BERTH-RESULT:' + JSON.stringify(o));
  const save = () => fs.writeFileSync(stateFile, JSON.stringify(st));
  if (st.mode === 'raw-missing') {
    console.error("Get-VM : The term 'Get-VM' is not recognized as the name of a cmdlet, function, script file, or operable program.");
    process.exit(1);
  }
  if (op === 'create' || op === 'probe') {
    if (st.mode === 'disabled') return out({ ok: false, kind: 'disabled', message: 'the Hyper-V PowerShell module is not installed', category: 'NotSpecified' });
    if (st.mode === 'not-admin') return out({ ok: false, kind: 'not-admin', message: 'this user is not a member of Hyper-V Administrators', category: 'NotSpecified' });
    if (st.mode === 'no-switch') return out({ ok: false, kind: 'no-switch', message: 'there is no Hyper-V virtual switch named Default Switch', category: 'NotSpecified' });
  }
  if (st.mode === 'denied') {
    return out({ ok: false, kind: 'error', category: 'PermissionDenied', message: "You do not have the required permission to complete this task. Contact the administrator of the authorization policy for the computer 'PC'." });
  }
  switch (op) {
    case 'probe':
      return out({ ok: true, module: true, vmms: 'Running', hypervAdmin: true, elevated: false, hypervisorPresent: true, edition: 'Microsoft Windows 11 Pro', switchExists: true });
    case 'create': {
      if (vm && vm.state !== 'Off') return out({ ok: false, kind: 'busy', message: 'the Hyper-V VM ' + name + ' is already ' + vm.state });
      // Writable disks Hyper-V makes (st.disks: path -> virtual size in
      // bytes): the script refuses a shrink before touching the VM, else
      // creates or grows them, as New-VHD and Resize-VHD would.
      st.disks = st.disks || {};
      const sized = [...script.matchAll(/\$disk = '([^']+)'\n[\s\S]*?\$have -gt (\d+)\)/g)];
      for (const [, file, want] of sized) {
        const have = st.disks[file];
        if (have !== undefined && have > Number(want)) {
          return out({ ok: false, kind: 'disk-shrink', message: 'the data disk ' + file + ' is ' + Math.ceil(have / 2 ** 30) + ' GiB, and Hyper-V cannot shrink it to the ' + Number(want) / 2 ** 30 + ' GiB in settings', category: 'OperationStopped' });
        }
      }
      for (const [, file, want] of sized) st.disks[file] = Math.max(st.disks[file] || 0, Number(want));
      const notes = (/-Notes '([^']*)'/.exec(script) || [])[1];
      st.vms[name] = { state: 'Running', notes };
      save();
      return out({ ok: true, exists: true, state: 'Running', id: '6d0b6f3c-0000-4000-8000-000000000001', notes });
    }
    case 'state':
      return out(vm ? { ok: true, exists: true, state: vm.state, notes: vm.notes, processId: 4242 } : { ok: true, exists: false });
    case 'shutdown':
      if (vm && st.mode !== 'hang-stop') { vm.state = 'Off'; save(); }
      return out(vm ? { ok: true, exists: true, state: vm.state } : { ok: true, exists: false });
    case 'turnoff':
      if (vm) { vm.state = 'Off'; save(); }
      return out(vm ? { ok: true, exists: true, state: 'Off' } : { ok: true, exists: false });
    case 'compact':
      // Optimize-VHD on each disk: what the script names, in order.
      st.compacted = (st.compacted || []).concat([...script.matchAll(/\$f = '([^']+)'/g)].map((m) => m[1]));
      save();
      return out({ ok: true, disks: [] });
    case 'address':
      st.addressCalls = (st.addressCalls || 0) + 1;
      save();
      if (st.addressCalls < 2) return out({ ok: true, state: 'Running', ips: [], neighbors: [] });
      return out({ ok: true, state: 'Running', ips: [st.ip || '172.29.112.5'], neighbors: [] });
    default:
      console.error('unknown op ' + op);
      process.exit(1);
  }
});
`;

export const FAKE_QEMU = String.raw`#!/usr/bin/env node
// Fake qemu-system-*: --version; with -daemonize the first process records
// argv, forks the "VM" and exits 0 once the pid file exists, as QEMU does.
// The VM writes the serial log and serves QMP on the -qmp unix socket
// (greeting, qmp_capabilities, system_powerdown, quit, SHUTDOWN events).
// SIGUSR1 plays the guest powering off. FAKE_QEMU_MODE: ok | fail-start
// (Hypervisor.framework refuses) | hang-stop (ACPI power-off ignored) |
// hang-all (quit and SIGTERM ignored too).
const fs = require('fs');
const net = require('net');
const { spawn } = require('child_process');
const argv = process.argv.slice(2);
const mode = process.env.FAKE_QEMU_MODE || 'ok';
const opt = (flag) => argv[argv.indexOf(flag) + 1];
if (argv[0] === '--version') { console.log('QEMU emulator version 9.1.0 (fake)'); process.exit(0); }
const pidFile = opt('-pidfile');
if (!process.env.FAKE_QEMU_VM) {
  if (process.env.FAKE_QEMU_RECORD) fs.appendFileSync(process.env.FAKE_QEMU_RECORD, JSON.stringify(argv) + '\n');
  if (mode === 'fail-start') {
    console.error('qemu-system-aarch64: -accel hvf: Error: HV_UNSUPPORTED');
    process.exit(1);
  }
  const vm = spawn(process.execPath, [__filename, ...argv], { detached: true, stdio: 'ignore', env: { ...process.env, FAKE_QEMU_VM: '1' } });
  vm.unref();
  const t0 = Date.now();
  const wait = () => {
    if (fs.existsSync(pidFile)) process.exit(0);
    if (Date.now() - t0 > 5000) { console.error('fake qemu: the VM did not come up'); process.exit(1); }
    setTimeout(wait, 20);
  };
  wait();
} else {
  const qmpPath = opt('-qmp').replace(/^unix:/, '').split(',')[0];
  const serial = opt('-serial').replace(/^file:/, '');
  const say = (line) => fs.appendFileSync(serial, line + '\n');
  const clients = new Set();
  let going = false;
  const exit = (reason) => {
    if (going) return;
    going = true;
    say('reboot: Power down');
    const ev = JSON.stringify({ event: 'SHUTDOWN', data: { guest: reason.startsWith('guest'), reason }, timestamp: { seconds: 0, microseconds: 0 } }) + '\n';
    for (const c of clients) c.write(ev);
    setTimeout(() => { try { fs.rmSync(pidFile, { force: true }); fs.rmSync(qmpPath, { force: true }); } catch {} process.exit(0); }, 30);
  };
  process.on('SIGTERM', () => { if (mode !== 'hang-all') exit('host-signal'); });
  process.on('SIGUSR1', () => exit('guest-shutdown'));
  const server = net.createServer((c) => {
    clients.add(c);
    c.on('close', () => clients.delete(c));
    c.on('error', () => {});
    c.write(JSON.stringify({ QMP: { version: { qemu: { major: 9, minor: 1, micro: 0 } }, capabilities: [] } }) + '\n');
    let buf = '';
    c.setEncoding('utf8');
    c.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line);
        if (process.env.FAKE_QEMU_RECORD) fs.appendFileSync(process.env.FAKE_QEMU_RECORD, JSON.stringify({ qmp: msg.execute }) + '\n');
        c.write(JSON.stringify({ return: {}, id: msg.id }) + '\n');
        if (msg.execute === 'system_powerdown' && mode === 'ok') setTimeout(() => exit('guest-shutdown'), 100);
        if (msg.execute === 'quit' && mode !== 'hang-all') exit('host-qmp-quit');
      }
    });
  });
  server.listen(qmpPath, () => {
    say('Linux version 6.1.0 (fake qemu)');
    fs.writeFileSync(pidFile, process.pid + '\n');
  });
}
`;

/** Write the fakes into `bin` under their tools' names; returns `bin`. */
export function installFakeHypervisors(bin: string): string {
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(bin, 'vfkit'), FAKE_VFKIT, { mode: 0o755 });
  fs.writeFileSync(path.join(bin, 'powershell.exe'), FAKE_PS, { mode: 0o755 });
  for (const q of ['qemu-system-aarch64', 'qemu-system-x86_64']) fs.writeFileSync(path.join(bin, q), FAKE_QEMU, { mode: 0o755 });
  return bin;
}

/** Only some of them (a Mac without vfkit has no vfkit on PATH). */
export function installFake(bin: string, names: ('vfkit' | 'powershell.exe' | 'qemu-system-aarch64' | 'qemu-system-x86_64')[]): string {
  fs.mkdirSync(bin, { recursive: true });
  for (const n of names) {
    const text = n === 'vfkit' ? FAKE_VFKIT : n === 'powershell.exe' ? FAKE_PS : FAKE_QEMU;
    fs.writeFileSync(path.join(bin, n), text, { mode: 0o755 });
  }
  return bin;
}
