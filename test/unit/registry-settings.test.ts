/**
 * The registry and proxy settings (issue 17 item 4): what each key takes,
 * bad values refused with the reason and nothing saved, CA certificates read
 * from files and folders when the setting changes, and what reaches the
 * guest's dockerd on the config disk (dockerd.env, the CA bundle).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { isBerthError } from '../../app/contract/errors.js';
import { guestDockerConfig, guestProxyUrl } from '../../app/engine/docker/daemon-config.js';
import { writeConfigDisk } from '../../app/engine/guest/config-disk.js';
import { readCaCertificates } from '../../app/engine/settings/ca-certificates.js';
import { noProxyProblem, proxyUrlProblem, registryHostProblem } from '../../app/engine/settings/registry-schema.js';
import { defaultSettings } from '../../app/engine/settings/schema.js';
import { SettingsStore } from '../../app/engine/settings/store.js';
import { makeCa as makeTestCa } from '../helpers/registry.js';
import { shortTempDir } from '../helpers/temp.js';

/** A CA certificate made by openssl (PEM); its path. */
const makeCa = (dir: string, name: string) => makeTestCa(dir, name).cert;

test('insecure registries: host:port, a host, an address range; a URL, a bad port or a path is refused with the reason', () => {
  for (const ok of ['host.docker.internal:5000', 'localhost:5000', 'registry.example.com', '10.0.0.0/8', '[::1]:5000', '192.168.1.20:443']) {
    assert.equal(registryHostProblem(ok), undefined, ok);
  }
  assert.match(registryHostProblem('http://host.docker.internal:5000/v2')!, /without a scheme \(write host\.docker\.internal:5000\)/);
  assert.match(registryHostProblem('reg:99999')!, /is not host:port/);
  assert.match(registryHostProblem('reg:5000/path')!, /is not host:port/);
  assert.match(registryHostProblem('a b:5000')!, /is not host:port/);
  assert.match(registryHostProblem('-bad-.example:5000')!, /is not host:port/);
  assert.match(registryHostProblem('10.0.0.0/40')!, /not an address range/);
});

test('proxies: http, https or socks5 URLs of a host; anything else refused; noProxy a comma list', () => {
  for (const ok of ['', 'http://proxy:3128', 'https://proxy.example.com', 'socks5://user:pa%40ss@10.1.1.1:1080', 'http://127.0.0.1:3128/']) {
    assert.equal(proxyUrlProblem(ok), undefined, ok);
  }
  assert.match(proxyUrlProblem('proxy:3128')!, /must start with http:\/\/, https:\/\/ or socks5:\/\//);
  assert.match(proxyUrlProblem('http://')!, /is not a URL/);
  assert.match(proxyUrlProblem('ftp://proxy')!, /must start with/);
  assert.match(proxyUrlProblem('http://proxy:3128/some/path')!, /no path/);
  assert.equal(noProxyProblem('localhost,127.0.0.1,.corp.example,*.internal,10.0.0.0/8, registry:5000'), undefined);
  assert.match(noProxyProblem('localhost,bad host,ok')!, /"bad host" cannot be in noProxy/);
});

test('settings: bad registry, proxy and CA values are refused all at once with a hint, and nothing is saved', () => {
  const t = shortTempDir('regs');
  try {
    const file = path.join(t.dir, 's.json');
    const s = new SettingsStore(file);
    s.update({ cpus: 1 });
    const before = fs.readFileSync(file, 'utf8');
    const bad = (patch: Record<string, unknown>, re: RegExp) => {
      assert.throws(
        () => s.update(patch),
        (e: unknown) => isBerthError(e) && e.code === 'INVALID_SETTINGS' && re.test(e.message) && /Nothing was saved|PEM|remove it/.test(e.hint ?? ''),
      );
      assert.equal(fs.readFileSync(file, 'utf8'), before, 'the file is unchanged');
    };
    bad({ insecureRegistries: ['http://reg:5000'] }, /insecureRegistries\.0: "http:\/\/reg:5000" must be host:port without a scheme/);
    bad({ httpProxy: 'not a url', noProxy: 'a b' }, /httpProxy: "not a url" is not a URL.*noProxy: "a b" cannot be in noProxy/);
    bad({ insecureRegistries: ['reg:5000', 'reg:5000'] }, /lists a registry twice/);
    bad({ caCertificates: ['relative/ca.pem'] }, /caCertificates\.0: must be an absolute path/);
    bad({ caCertificates: [path.join(t.dir, 'missing.pem')] }, /caCertificates: .*missing\.pem does not exist/);
    const unreadable = path.join(t.dir, 'not-a-cert.pem');
    fs.writeFileSync(unreadable, 'hello\n');
    bad({ caCertificates: [unreadable] }, /has no PEM certificate/);
    const garbage = path.join(t.dir, 'garbage.pem');
    fs.writeFileSync(garbage, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n');
    bad({ caCertificates: [garbage] }, /certificate 1 in .*garbage\.pem does not parse/);
    bad({ caCertificates: [t.dir + '/empty'] }, /does not exist/);
    fs.mkdirSync(path.join(t.dir, 'empty'));
    bad({ caCertificates: [path.join(t.dir, 'empty')] }, /has no \.pem, \.crt or \.cer file/);

    const ca = makeCa(t.dir, 'Berth Test CA');
    const r = s.update({ insecureRegistries: ['host.docker.internal:5000'], caCertificates: [ca], httpProxy: 'http://127.0.0.1:3128', noProxy: 'localhost' });
    assert.deepEqual(r.changed.sort(), ['caCertificates', 'httpProxy', 'insecureRegistries', 'noProxy']);
    assert.equal(r.restartRequired, true, 'they reach dockerd at the next start');
    assert.deepEqual(new SettingsStore(file).get().insecureRegistries, ['host.docker.internal:5000']);
  } finally {
    t.cleanup();
  }
});

test('CA certificates: a file with two, a folder of .pem/.crt files (others and subfolders left), in order', () => {
  const t = shortTempDir('cas');
  try {
    const a = makeCa(t.dir, 'CA A');
    const b = makeCa(t.dir, 'CA B');
    const two = path.join(t.dir, 'two.pem');
    fs.writeFileSync(two, `# a bundle\n${fs.readFileSync(a, 'utf8')}\n${fs.readFileSync(b, 'utf8')}`);
    assert.deepEqual(readCaCertificates([two]).subjects, ['CN=CA A', 'CN=CA B']);
    const folder = path.join(t.dir, 'corp');
    fs.mkdirSync(path.join(folder, 'sub'), { recursive: true });
    fs.copyFileSync(b, path.join(folder, '2.crt'));
    fs.copyFileSync(a, path.join(folder, '1.pem'));
    fs.writeFileSync(path.join(folder, 'README'), 'not a certificate');
    fs.copyFileSync(a, path.join(folder, 'sub', '3.pem'));
    const bundle = readCaCertificates([folder]);
    assert.deepEqual(bundle.subjects, ['CN=CA A', 'CN=CA B']);
    assert.equal(bundle.pem.match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.ok(bundle.pem.endsWith('-----END CERTIFICATE-----\n'));
  } finally {
    t.cleanup();
  }
});

test("guest dockerd config: nothing by default; proxies exported (the host's loopback made the guest's way to it), insecure registries as arguments, the CA bundle", () => {
  assert.deepEqual(guestDockerConfig(defaultSettings(), '10.0.2.2'), {});
  assert.equal(guestProxyUrl('http://localhost:3128', '10.0.2.2'), 'http://10.0.2.2:3128');
  assert.equal(guestProxyUrl('http://u:p@127.0.0.1:3128/', '10.0.2.2'), 'http://u:p@10.0.2.2:3128');
  assert.equal(guestProxyUrl('http://127.0.0.1:3128', undefined), 'http://127.0.0.1:3128', 'no way to the host loopback: left as it is');
  assert.equal(guestProxyUrl('http://proxy.corp:3128', '10.0.2.2'), 'http://proxy.corp:3128');
  const t = shortTempDir('gdc');
  try {
    const ca = makeCa(t.dir, 'Corp CA');
    const c = guestDockerConfig(
      {
        ...defaultSettings(),
        insecureRegistries: ['host.docker.internal:5000', '10.0.0.0/8'],
        caCertificates: [ca],
        httpProxy: 'http://127.0.0.1:3128',
        httpsProxy: "http://o'neil@proxy:3128",
        noProxy: 'localhost,.corp',
      },
      '10.0.2.2',
    );
    assert.equal(
      c.envFile,
      [
        "export HTTP_PROXY='http://10.0.2.2:3128'",
        "export http_proxy='http://10.0.2.2:3128'",
        "export HTTPS_PROXY='http://o'\\''neil@proxy:3128'",
        "export https_proxy='http://o'\\''neil@proxy:3128'",
        "export NO_PROXY='localhost,.corp'",
        "export no_proxy='localhost,.corp'",
        "set -- --insecure-registry 'host.docker.internal:5000' --insecure-registry '10.0.0.0/8'",
        '',
      ].join('\n'),
    );
    // The shell reads it back as written.
    const out = execFileSync('sh', ['-c', `${c.envFile}printf '%s\\n' "$HTTPS_PROXY" "$@"`], { encoding: 'utf8' });
    assert.equal(out, "http://o'neil@proxy:3128\n--insecure-registry\nhost.docker.internal:5000\n--insecure-registry\n10.0.0.0/8\n");
    assert.match(c.caBundle!, /^-----BEGIN CERTIFICATE-----\n/);
    // noProxy alone sets nothing.
    assert.deepEqual(guestDockerConfig({ ...defaultSettings(), noProxy: 'localhost' }), {});
    // A CA file gone since it was set: the start is refused with the reason.
    fs.rmSync(ca);
    assert.throws(() => guestDockerConfig({ ...defaultSettings(), caCertificates: [ca] }), /caCertificates: .*does not exist/);
  } finally {
    t.cleanup();
  }
});

test('config disk: dockerd.env and the CA bundle are on it when given, and gone from the staging folder when not', () => {
  const t = shortTempDir('cfgd');
  try {
    const stage = path.join(t.dir, 'cfg');
    const disk = path.join(t.dir, 'cfg.tar');
    const base = { authorizedKeys: 'ssh-ed25519 AAAA k', hostPrivateKey: 'PRIV\n', hostPublicKey: 'ssh-ed25519 BBBB h', env: { BERTH_NET: 'user' } };
    writeConfigDisk(stage, disk, { ...base, docker: { envFile: "export HTTP_PROXY='http://p:1'\n", caBundle: 'PEM\n' } });
    const names = () => execFileSync('tar', ['-tf', disk], { encoding: 'utf8' }).trim().split('\n').sort();
    assert.deepEqual(names(), ['authorized_keys', 'ca-certificates.crt', 'config.env', 'dockerd.env', 'ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']);
    assert.equal(execFileSync('tar', ['-xOf', disk, 'dockerd.env'], { encoding: 'utf8' }), "export HTTP_PROXY='http://p:1'\n");
    writeConfigDisk(stage, disk, base);
    assert.deepEqual(names(), ['authorized_keys', 'config.env', 'ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']);
    assert.ok(!fs.existsSync(path.join(stage, 'dockerd.env')) && !fs.existsSync(path.join(stage, 'ca-certificates.crt')));
  } finally {
    t.cleanup();
  }
});
