import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { guestSources, hostAptEntries, hostDebianCodename, parseDeb822, parseOneLine, sourcesForSuite } from '../../app/engine/image/apt-sources.js';
import { shortTempDir } from '../helpers/temp.js';

// Host names here are placeholders (example.invalid): the point is that the
// build copies whatever the host has, and names no mirror itself.
const deb822 = `Types: deb deb-src
URIs: http://mirror.example.invalid/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.invalid/debian-security
Suites: bookworm-security
Components: main

# disabled
Types: deb
URIs: http://other.example.invalid/x
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: https://vendor.example.invalid/node
Suites: nodistro
Components: main
`;

test('deb822 stanzas: types, suites, components, Enabled: no', () => {
  const e = parseDeb822(deb822);
  assert.equal(e.length, 3);
  assert.deepEqual(e[0]!.suites, ['bookworm', 'bookworm-updates']);
  assert.equal(e[0]!.signedBy, '/usr/share/keyrings/debian-archive-keyring.gpg');
});

test('one-line entries with options', () => {
  const e = parseOneLine(`deb [arch=amd64 signed-by=/k.gpg] http://m.example.invalid/debian bookworm main
deb-src http://m.example.invalid/debian bookworm main
# deb http://x.example.invalid bookworm main
deb https://vendor.example.invalid/apt cloud-sdk-bookworm main`);
  assert.equal(e.length, 2);
  assert.equal(e[0]!.signedBy, '/k.gpg');
  assert.deepEqual(e[1]!.suites, ['cloud-sdk-bookworm']);
});

test('only the guest suite and its companions are kept, as deb822', () => {
  const out = sourcesForSuite([...parseDeb822(deb822), ...parseOneLine('deb https://vendor.example.invalid/apt cloud-sdk-bookworm main')], 'bookworm');
  assert.match(out, /Suites: bookworm bookworm-updates/);
  assert.match(out, /Suites: bookworm-security/);
  assert.doesNotMatch(out, /nodistro|cloud-sdk|other\.example/);
  assert.match(out, /^Components: main$/m);
});

test('no matching entries gives an empty text', () => {
  assert.equal(sourcesForSuite(parseOneLine('deb http://x.example.invalid/ubuntu jammy main'), 'bookworm'), '');
});

test('a Debian host of another release lends its own entries, the suite renamed, same mirrors and keyring', () => {
  const entries = [...parseDeb822(deb822), ...parseOneLine('deb https://vendor.example.invalid/apt cloud-sdk-bookworm main')];
  const out = guestSources(entries, 'trixie', 'bookworm');
  assert.match(out, /^URIs: http:\/\/mirror\.example\.invalid\/debian\nSuites: trixie trixie-updates$/m);
  assert.match(out, /^URIs: http:\/\/mirror\.example\.invalid\/debian-security\nSuites: trixie-security$/m);
  assert.match(out, /^Signed-By: \/usr\/share\/keyrings\/debian-archive-keyring\.gpg$/m);
  assert.doesNotMatch(out, /bookworm|nodistro|cloud-sdk|other\.example/);
});

test("the host's own entries for the guest suite come first; nothing to rename gives ''", () => {
  const own = parseOneLine('deb http://own.example.invalid/debian trixie main\ndeb http://m.example.invalid/debian bookworm main');
  assert.match(guestSources(own, 'trixie', 'bookworm'), /own\.example/);
  assert.doesNotMatch(guestSources(own, 'trixie', 'bookworm'), /m\.example/);
  assert.equal(guestSources(parseOneLine('deb http://x.example.invalid/ubuntu noble main'), 'trixie', undefined), '');
  assert.equal(guestSources(parseOneLine('deb http://x.example.invalid/ubuntu noble main'), 'trixie', 'bookworm'), '');
});

test('the host release comes from os-release, on Debian only', () => {
  const t = shortTempDir();
  try {
    const f = path.join(t.dir, 'os-release');
    fs.writeFileSync(f, 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n');
    assert.equal(hostDebianCodename(f), 'bookworm');
    fs.writeFileSync(f, 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n');
    assert.equal(hostDebianCodename(f), undefined, 'an Ubuntu mirror has no Debian release to rename to');
    assert.equal(hostDebianCodename(path.join(t.dir, 'none')), undefined);
  } finally {
    t.cleanup();
  }
});

test('reads sources.list and sources.list.d', () => {
  const t = shortTempDir();
  try {
    fs.mkdirSync(path.join(t.dir, 'sources.list.d'));
    fs.writeFileSync(path.join(t.dir, 'sources.list'), 'deb http://a.example.invalid/debian bookworm main\n');
    fs.writeFileSync(path.join(t.dir, 'sources.list.d', 'x.sources'), deb822);
    fs.writeFileSync(path.join(t.dir, 'sources.list.d', 'y.list.disabled'), 'deb http://no.example.invalid bookworm main\n');
    const e = hostAptEntries(t.dir);
    assert.equal(e.length, 4);
    assert.ok(!JSON.stringify(e).includes('no.example'));
  } finally {
    t.cleanup();
  }
});
