/**
 * app/base/ssh2-parts.ts loads ssh2's client, key parser and key generator
 * from their own files, not through ssh2's index (which also loads its SSH
 * server and HTTP agents, and Node's https and tls with them: issue 16).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Client, generateKeyPairSync, parseKey } from '../../app/base/ssh2-parts.js';
import { ROOT } from '../helpers/run.js';

test("ssh2's own files give what its index gives", () => {
  const ssh2 = createRequire(import.meta.url)('ssh2') as typeof import('ssh2');
  assert.equal(Client, ssh2.Client);
  assert.equal(parseKey, ssh2.utils.parseKey);
  assert.equal(generateKeyPairSync, ssh2.utils.generateKeyPairSync);
});

test("the engine's ssh session and keys load neither ssh2's server nor Node's https and tls", () => {
  const modules = ['app/engine/guest/session.ts', 'app/base/ssh-keys.ts'].map((m) => pathToFileURL(path.join(ROOT, m)).href);
  const script = `
    for (const m of ${JSON.stringify(modules)}) await import(m);
    const { createRequire } = await import('node:module');
    const cache = Object.keys(createRequire(import.meta.url).cache);
    console.log(JSON.stringify({
      ssh2: cache.filter((f) => f.includes('/node_modules/ssh2/')).map((f) => f.slice(f.indexOf('/ssh2/') + 1)),
      builtins: process.moduleLoadList.filter((m) => /^NativeModule (https|tls|_tls_wrap)$/.test(m)),
    }));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const seen = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ssh2: string[]; builtins: string[] };
  assert.ok(seen.ssh2.includes('ssh2/lib/client.js'), `ssh2's client is loaded: ${seen.ssh2.join(', ')}`);
  for (const f of ['ssh2/lib/index.js', 'ssh2/lib/server.js', 'ssh2/lib/http-agents.js']) assert.ok(!seen.ssh2.includes(f), `${f} is not loaded`);
  assert.deepEqual(seen.builtins, []);
});
