/**
 * Who can get in, checked on the real daemon with the fake guest (no VM):
 * - every file, socket and folder the engine creates is owner-only;
 * - the control API needs this start's token (a new one every start);
 * - nothing the engine process listens on is beyond loopback, unless
 *   portBind=all (read from /proc/net/tcp{,6} and this process's fds);
 * - the guest image is checked against its checksums before every boot
 *   and every reattach;
 * - the guest recipe has no passwords, and sshd takes only the generated
 *   key, only from the host side;
 * - the diagnostics bundle holds no private key, control token or
 *   dashboard token, even a key cut in half by the log tail.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { unzipSync, strFromU8 } from 'fflate';
import { startDashboard } from '../../app/cli/dashboard.js';
import { ControlClient } from '../../app/client/control-client.js';
import { buildDiagnostics, redact } from '../../app/engine/api/diagnostics.js';
import { startDaemon, type RunningDaemon } from '../../app/engine/daemon.js';
import { freeLoopbackPort } from '../../app/base/process-util.js';
import { isBerthError } from '../../app/contract/errors.js';
import { parseProcNet, isLoopback } from '../../app/engine/forward/proc-net.js';
import { ensureGuestKeys } from '../../app/base/ssh-keys.js';
import { instancePaths } from '../../app/base/paths.js';
import { defaultTuning } from '../../app/base/tuning.js';
import { waitFor } from '../../app/base/process-util.js';
import { FakeDriver, FakeVm } from '../helpers/fake-driver.js';
import { startFakeDockerd } from '../helpers/fake-guest.js';
import { ROOT } from '../helpers/run.js';
import { fakeImageDir, shortTempDir, withEnv } from '../helpers/temp.js';

const t = shortTempDir('sec');
const home = path.join(t.dir, 'home');
const imgDir = path.join(t.dir, 'img');
const dockerdSock = path.join(t.dir, 'dockerd.sock');
let restoreEnv: () => void;
let umask: number;
let dockerd: net.Server;
/** The guest port the fake guest says something listens on (0.0.0.0) */
let guestWildcardPort = 0;
/** What BERTH_IMAGE_DIR and BERTH_ACCEL would set for these in-process engines. */
const tuning = defaultTuning({ imageDir: imgDir, accel: 'tcg' });

before(async () => {
  umask = process.umask();
  restoreEnv = withEnv({
    BERTH_HOME: home,
    DOCKER_CONFIG: path.join(t.dir, 'docker'),
    BERTH_CACHE: path.join(t.dir, 'cache'),
  });
  fakeImageDir(imgDir);
  dockerd = await startFakeDockerd(dockerdSock);
  guestWildcardPort = await freeLoopbackPort();
});
after(() => {
  dockerd.close();
  process.umask(umask);
  restoreEnv();
  t.cleanup();
});

function driverFor(instance: string, extra: Partial<ConstructorParameters<typeof FakeDriver>[0]> = {}): FakeDriver {
  const p = instancePaths(instance, home);
  return new FakeDriver({
    mode: 'ok',
    hostKeyFile: p.hostKey,
    clientPubFile: `${p.clientKey}.pub`,
    dockerSocket: dockerdSock,
    // The guest's socket watcher is told a server listens on 0.0.0.0 in the VM.
    exec: (cmd) => (cmd.includes('perl') ? { stdout: `= t/0.0.0.0/${guestWildcardPort}\n`, code: 0 } : undefined),
    ...extra,
  });
}

/** TCP sockets this process listens on, with their addresses (from /proc, not from our own bookkeeping). */
function ownListeners(): { ip: string; port: number }[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  const out: { ip: string; port: number }[] = [];
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue; // no IPv6
    }
    const listening = parseProcNet('tcp', text);
    const lines = text
      .split('\n')
      .slice(1)
      .filter((l) => l.trim());
    for (const l of lines) {
      const cols = l.trim().split(/\s+/);
      if (cols[3] !== '0A' || !inodes.has(cols[9]!)) continue;
      const s = listening.find((x) => cols[1]!.endsWith(`:${x.port.toString(16).toUpperCase().padStart(4, '0')}`));
      if (s) out.push({ ip: s.ip, port: s.port });
    }
  }
  return out;
}

/** Every path under `dir` whose mode lets anyone but the owner in. */
function looseModes(dir: string): string[] {
  const bad: string[] = [];
  const walk = (p: string) => {
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink()) return;
    if ((st.mode & 0o077) !== 0) bad.push(`${path.relative(home, p) || '.'} ${(st.mode & 0o777).toString(8)}`);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
  };
  walk(dir);
  return bad;
}

describe('the daemon on the fake guest', () => {
  let d: RunningDaemon;
  let driver: FakeDriver;
  let firstToken = '';
  const paths = instancePaths('sec', home);

  before(async () => {
    process.umask(0o022); // a usual login umask: the engine must not rely on it
    driver = driverFor('sec');
    d = await startDaemon({ instance: 'sec', exitOnStop: false, driver, tuning });
    firstToken = fs.readFileSync(paths.token, 'utf8').trim();
    const c = await ControlClient.connect(paths);
    try {
      await c.call('vm.start', {});
      await c.call('settings.update', { patch: { cpus: 1 } });
      await c.call('ports.add', { hostPort: await freeLoopbackPort(), guestPort: 80 });
      await c.call('diagnostics.bundle', {});
    } finally {
      c.close();
    }
  });
  after(async () => {
    await d.shutdown(true);
    await d.done;
  });

  test('every file, socket and folder under the Berth home is owner-only', () => {
    for (const f of [
      paths.token,
      paths.controlSocket,
      paths.dockerSocket,
      paths.settings,
      paths.clientKey,
      paths.hostKey,
      paths.engineLog,
      paths.serialLog,
      paths.configDisk,
      paths.dataDisk,
      paths.state,
      paths.lock,
    ]) {
      assert.ok(fs.existsSync(f), `${f} exists (the walk covers it)`);
    }
    assert.deepEqual(looseModes(home), [], 'files or folders others can read or enter');
  });

  test("the control API refuses a client without this start's token", async () => {
    assert.match(firstToken, /^[0-9a-f]{64}$/, '256 random bits');
    for (const token of ['', 'x', firstToken.slice(0, 63), firstToken + 'a', firstToken.replace(/./, (ch) => (ch === 'a' ? 'b' : 'a'))]) {
      const bad = path.join(t.dir, 'bad.token');
      fs.writeFileSync(bad, token);
      await assert.rejects(
        ControlClient.connect({ controlSocket: paths.controlSocket, token: bad }),
        (e) => isBerthError(e, 'UNAUTHORIZED') || isBerthError(e, 'BAD_REQUEST'),
      );
    }
    const sock = net.createConnection(paths.controlSocket);
    sock.write(JSON.stringify({ id: 1, method: 'settings.update', params: { patch: { portBind: 'all' } } }) + '\n');
    const answer = await new Promise<string>((r) => sock.once('data', (b) => r(b.toString())));
    sock.destroy();
    assert.equal(JSON.parse(answer).error.code, 'UNAUTHORIZED');
  });

  test('nothing listens beyond loopback with portBind=loopback; a guest wildcard port is loopback on the host', async () => {
    const dash = await startDashboard({ paths, root: ROOT_WITH_INDEX(), connect: () => ControlClient.connect(paths) });
    try {
      assert.ok(await waitFor(() => ownListeners().some((l) => l.port === guestWildcardPort), 5000), 'the guest port is forwarded');
      const all = ownListeners();
      assert.ok(
        all.some((l) => l.port === dash.port),
        'the dashboard is among them',
      );
      assert.deepEqual(
        all.filter((l) => !isLoopback(l.ip)),
        [],
        'listeners beyond loopback',
      );
    } finally {
      await dash.close();
    }
  });

  test('portBind=all is the opt-in: the same port then listens on every interface, and back', async () => {
    const c = await ControlClient.connect(paths);
    try {
      await c.call('settings.update', { patch: { portBind: 'all' } });
      assert.ok(await waitFor(() => ownListeners().some((l) => l.port === guestWildcardPort && !isLoopback(l.ip)), 5000), 'opted in: beyond loopback');
      await c.call('settings.update', { patch: { portBind: 'loopback' } });
      assert.ok(await waitFor(() => ownListeners().every((l) => isLoopback(l.ip)), 5000), 'opted out: loopback again');
    } finally {
      c.close();
    }
  });

  test('a new start makes a new token, and the old one stops working', async () => {
    await d.shutdown(true);
    await d.done;
    assert.ok(!fs.existsSync(paths.token), 'the token is removed at shutdown');
    d = await startDaemon({ instance: 'sec', exitOnStop: false, driver, tuning });
    const second = fs.readFileSync(paths.token, 'utf8').trim();
    assert.notEqual(second, firstToken);
    const old = path.join(t.dir, 'old.token');
    fs.writeFileSync(old, firstToken);
    await assert.rejects(ControlClient.connect({ controlSocket: paths.controlSocket, token: old }), (e) => isBerthError(e, 'UNAUTHORIZED'));
    assert.deepEqual(looseModes(home), []);
  });
});

let rendererRoot: string | undefined;
function ROOT_WITH_INDEX(): string {
  if (!rendererRoot) {
    rendererRoot = path.join(t.dir, 'renderer');
    fs.mkdirSync(rendererRoot, { recursive: true });
    fs.writeFileSync(path.join(rendererRoot, 'index.html'), '<!doctype html>');
  }
  return rendererRoot;
}

describe('the guest image is verified before it boots', () => {
  test('on every start, not only the first', async () => {
    const driver = driverFor('img');
    const d = await startDaemon({ instance: 'img', exitOnStop: false, driver, tuning });
    const k = path.join(imgDir, 'initrd.img');
    const good = fs.readFileSync(k);
    try {
      const c = await ControlClient.connect(instancePaths('img', home));
      try {
        await c.call('vm.start', {});
        await c.call('vm.stop', {});
        fs.writeFileSync(k, Buffer.concat([good.subarray(0, -1), Buffer.from('!')]));
        await assert.rejects(c.call('vm.start', {}), (e) => isBerthError(e, 'IMAGE_CHECKSUM'));
        assert.equal(driver.specs.length, 1, 'the damaged image never booted');
      } finally {
        c.close();
      }
    } finally {
      fs.writeFileSync(k, good);
      await d.shutdown(true);
      await d.done;
    }
  });

  test('before reattaching to a VM an earlier engine left running', async () => {
    const paths = instancePaths('reat', home);
    let attaches = 0;
    const driver = driverFor('reat');
    driver.attach = async () => {
      attaches++;
      return new FakeVm();
    };
    fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(
      paths.state,
      JSON.stringify({ sshPort: 1, accel: 'tcg', accelReason: 'test', startedAt: '', imageDir: imgDir, cpus: 1, memoryMiB: 1024, diskGiB: 64 }),
    );
    const k = path.join(imgDir, 'vmlinuz');
    const good = fs.readFileSync(k);
    fs.writeFileSync(k, Buffer.concat([good.subarray(0, -1), Buffer.from('!')]));
    const d = await startDaemon({ instance: 'reat', exitOnStop: false, driver, tuning });
    try {
      await waitFor(() => !fs.existsSync(paths.state), 5000);
      assert.equal(attaches, 0, 'no VM was taken over with a damaged image');
      assert.equal(d.engine.status().state, 'stopped');
    } finally {
      fs.writeFileSync(k, good);
      await d.shutdown(false);
      await d.done;
    }
  });
});

describe('the guest recipe (vm-images)', () => {
  const read = (p: string) => fs.readFileSync(path.join(ROOT, 'vm-images', p), 'utf8');
  const directives = (text: string) =>
    new Map(
      text
        .split('\n')
        .map((l) => l.replace(/#.*/, '').trim())
        .filter(Boolean)
        .map((l) => {
          const [k, ...v] = l.split(/\s+/);
          return [k!.toLowerCase(), v.join(' ')] as const;
        }),
    );

  test('sshd: keys only, the generated one only, root without a password', () => {
    const files = fs.readdirSync(path.join(ROOT, 'vm-images/rootfs/etc/ssh/sshd_config.d'));
    assert.deepEqual(files, ['berth.conf'], 'one drop-in, ours');
    const d = directives(read('rootfs/etc/ssh/sshd_config.d/berth.conf'));
    assert.equal(d.get('passwordauthentication'), 'no');
    assert.equal(d.get('kbdinteractiveauthentication'), 'no');
    assert.equal(d.get('permitemptypasswords'), 'no');
    assert.equal(d.get('permitrootlogin'), 'prohibit-password');
    assert.equal(d.get('usepam'), 'no');
    assert.equal(d.get('authorizedkeysfile'), '/run/berth/ssh/authorized_keys', 'only the key the engine wrote');
    assert.equal(d.get('hostkey'), '/run/berth/ssh/ssh_host_ed25519_key', 'the host key the engine pinned');
    assert.notEqual(d.get('pubkeyauthentication'), 'no');
    for (const k of ['hostbasedauthentication', 'gssapiauthentication', 'kerberosauthentication']) assert.notEqual(d.get(k), 'yes', k);
  });

  test('no passwords: root is locked, no baked-in keys, nothing in the overlay sets one', () => {
    const build = read('build.sh');
    assert.ok(build.includes(`sed -i 's/^root:[^:]*:/root:*:/' "$root/etc/shadow"`), "root's password field becomes *");
    assert.ok(build.includes(`rm -f "$root"/etc/ssh/ssh_host_*`), 'no host keys baked into the image');
    const overlay: string[] = [];
    const walk = (p: string) =>
      fs.statSync(p).isDirectory()
        ? fs.readdirSync(p).forEach((e) => walk(path.join(p, e)))
        : overlay.push(path.relative(path.join(ROOT, 'vm-images/rootfs'), p));
    walk(path.join(ROOT, 'vm-images/rootfs'));
    for (const f of overlay) {
      assert.doesNotMatch(f, /^etc\/(shadow|passwd|group|gshadow|sudoers)|authorized_keys|id_(rsa|ed25519|ecdsa)/, `${f} must not come from the recipe`);
      assert.doesNotMatch(fs.readFileSync(path.join(ROOT, 'vm-images/rootfs', f), 'utf8'), /chpasswd|passwd\s+root|\$[1256y]\$/, `${f} sets no password`);
    }
    for (const f of ['build.sh', 'initramfs/init', 'rootfs/etc/berth/rc.sysinit']) {
      assert.doesNotMatch(read(f), /chpasswd|usermod\s+-p|\$[1256y]\$[^\s]/, `${f} sets no password`);
    }
  });

  test('sshd is reachable from the host side only: loopback and the gateway, everything else reset', () => {
    const sshd = read('rootfs/etc/berth/run-sshd');
    const rules = sshd.split('\n').filter((l) => /--dport 22/.test(l));
    assert.deepEqual(
      rules.map((l) => l.trim()),
      [
        "echo '-A INPUT -p tcp --dport 22 -i lo -j ACCEPT'",
        '[ -n "$gw" ] && echo "-A INPUT -p tcp --dport 22 -s $gw -j ACCEPT"',
        "echo '-A INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset'",
        "echo '-A INPUT -p tcp --dport 22 -i lo -j ACCEPT'",
        "echo '-A INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset'",
      ],
    );
    assert.match(sshd, /\| iptables-restore -w --noflush/);
    assert.match(sshd, /\| ip6tables-restore -w --noflush/);
    assert.ok(sshd.indexOf('ip6tables-restore') < sshd.indexOf('exec /usr/sbin/sshd'), 'the firewall is up before sshd starts');
    assert.match(sshd, /if \[ ! -e \/run\/berth\/sshd-firewall \]; then/, 'once per boot, though init respawns sshd');
    assert.doesNotMatch(read('rootfs/etc/berth/rc.sysinit'), /--dport 22/, 'one place sets the firewall');
    // Only the config disk's key becomes authorized, and the folder is root's alone.
    const init = read('rootfs/etc/berth/rc.sysinit');
    assert.match(init, /for f in authorized_keys ssh_host_ed25519_key ssh_host_ed25519_key\.pub; do/);
    assert.match(init, /chmod 0700 \/run\/berth\/ssh/);
  });

  test('the host side of the link: QEMU forwards only sshd, on 127.0.0.1', async () => {
    const { buildQemuArgs } = await import('../../app/engine/drivers/qemu.js');
    const fwds = (extra: string[]) =>
      (buildQemuArgs({ ...driverSpecFor(), extraHostForwards: extra }).find((a) => a.startsWith('user,')) ?? '')
        .split(',')
        .filter((p) => p.startsWith('hostfwd='));
    assert.deepEqual(fwds([]), ['hostfwd=tcp:127.0.0.1:2222-:22']);
    assert.deepEqual(
      fwds(['28080:18080', '0.0.0.0:1:2', 'x']),
      ['hostfwd=tcp:127.0.0.1:2222-:22', 'hostfwd=tcp:127.0.0.1:28080-:18080'],
      'benchmark forwards stay on loopback too',
    );
  });
});

function driverSpecFor() {
  return {
    name: 'x',
    arch: 'x86_64' as const,
    accel: 'tcg' as const,
    cpus: 1,
    memoryMiB: 1024,
    kernel: '/k',
    initrd: '/i',
    cmdline: 'console=ttyS0',
    disks: [],
    sshHostPort: 2222,
    extraHostForwards: [],
    serialLog: '/s',
    pidFile: '/p',
    controlSocket: '/q',
  };
}

describe('the diagnostics bundle holds no secrets', () => {
  test('no private key (whole, escaped or cut by the log tail), no control token, no dashboard token', () => {
    const paths = instancePaths('diag', home);
    fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    const keys = ensureGuestKeys(paths.keysDir, paths.clientKey, paths.hostKey, 'diag');
    const controlToken = 'c0ffee'.repeat(10) + 'abcd';
    fs.writeFileSync(paths.token, controlToken + '\n');
    const dashToken = 'Zk3_x-Q9aB7cD1eF2gH3iJ4kL5mN6oP7';
    const keyBody = keys.clientPrivate
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'))
      .join('');
    const escaped = JSON.stringify(keys.hostPrivate).slice(1, -1);
    fs.writeFileSync(
      paths.engineLog,
      // The first line is the end of a key whose start the 4 MiB tail cut off.
      keys.clientPrivate.slice(keys.clientPrivate.indexOf('\n', 40) + 1) +
        [
          JSON.stringify({ level: 30, msg: `dashboard at http://127.0.0.1:4567/#token=${dashToken}` }),
          JSON.stringify({ level: 30, msg: `ws ws://127.0.0.1:4567/ws?token=${dashToken}&x=1` }),
          JSON.stringify({ level: 50, msg: 'hello', params: { token: controlToken } }),
          JSON.stringify({ level: 50, msg: `key ${escaped}` }),
          JSON.stringify({ level: 30, msg: `pinned ${keys.hostPublic}` }),
        ].join('\n') +
        '\n',
    );
    fs.writeFileSync(paths.serialLog, `berth-init: ready\n${keys.hostPrivate}\n`);
    fs.writeFileSync(paths.daemonOut, `Berth dashboard: http://127.0.0.1:4567/#token=${dashToken}\n`);
    const b = buildDiagnostics({ paths, extra: { 'status.json': { token: controlToken }, 'guest.log': `sshd: ${keys.clientPublic}\n` } });
    const files = unzipSync(fs.readFileSync(b.path));
    const all = Object.entries(files)
      .map(([name, f]) => `== ${name}\n${strFromU8(f)}`)
      .join('\n');
    assert.ok(!all.includes(controlToken), 'the control token');
    assert.ok(!all.includes(dashToken), 'the dashboard token');
    for (const k of [keys.clientPrivate, keys.hostPrivate]) {
      const body = k.split('\n').filter((l) => l && !l.startsWith('-----'));
      for (const line of body) if (line.length >= 16) assert.ok(!all.includes(line), `a line of a private key: ${line.slice(0, 20)}...`);
    }
    assert.ok(!all.includes(keyBody.slice(-40)));
    assert.ok(!all.includes(keys.hostPublic.split(' ')[1]!), 'public keys too (they identify the machine)');
    assert.ok(files['engine.log'] && files['daemon.out'] && files['serial.log'], 'the logs are in it');
  });

  test('redact: Authorization headers with their scheme, bare Bearer tokens, and token fields in JSON-escaped JSON', () => {
    const secret = 'S3cr3t-Val_ue.9876543210';
    const cases = [
      `GET /v1.43/info HTTP/1.1\r\nAuthorization: Bearer ${secret}\r\n`,
      `proxy-authorization: Basic ${secret}`,
      `curl -H 'Authorization:Bearer ${secret}' http://x`,
      `calling the registry with Bearer ${secret} now`,
      JSON.stringify({ msg: 'request', headers: { Authorization: `Bearer ${secret}` } }),
      // A JSON message logged as a string inside a JSON log line: its quotes are escaped.
      JSON.stringify({ level: 30, msg: `sent ${JSON.stringify({ id: 1, method: 'hello', params: { token: secret } })}` }),
      JSON.stringify({ level: 30, msg: `sent ${JSON.stringify({ password: `a"b${secret}` })}` }),
      JSON.stringify({ level: 30, msg: `got ${JSON.stringify({ access_token: secret, expires_in: 300 })}` }),
      // Escaped twice (a JSON string inside a JSON string inside a log line).
      JSON.stringify({ msg: JSON.stringify({ inner: JSON.stringify({ apiKey: secret }) }) }),
    ];
    for (const c of cases) {
      const out = redact(c);
      assert.ok(!out.includes(secret) && !out.includes(secret.slice(0, 12)), `leaked from ${c}:\n${out}`);
      assert.match(out, /<redacted>/);
    }
    // Ordinary words after "Basic" or "Bearer" are not eaten where no header is.
    assert.equal(redact('Basic setup done; the bearer of news'), 'Basic setup done; the bearer of news');
    // The JSON around an escaped secret stays readable.
    const line = JSON.stringify({ level: 30, msg: `sent ${JSON.stringify({ params: { token: secret }, method: 'hello' })}` });
    assert.match(redact(line), /\\"method\\":\\"hello\\"/);
  });

  test('redact: a key with its start cut off is still removed', () => {
    const out = redact(
      'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBzb21l\n-----END OPENSSH PRIVATE KEY-----\nnext line stays\n',
    );
    assert.doesNotMatch(out, /b3Blbn|QyNTUxOQ/);
    assert.match(out, /next line stays/);
  });
});
