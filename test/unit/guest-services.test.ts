/**
 * The guest's services as init runs them (vm-images/rootfs/etc/inittab):
 * containerd is its own service, started beside dockerd so the two start in
 * parallel, and dockerd finds it at the address containerd listens on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { ROOT } from '../helpers/run.js';
const read = (f: string) => fs.readFileSync(path.join(ROOT, 'vm-images/rootfs', f), 'utf8');

test("init starts containerd, dockerd, sshd and the containers' DNS server together once rc.sysinit is done", () => {
  const lines = read('etc/inittab')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(lines.slice(0, 5), [
    '::sysinit:/etc/berth/rc.sysinit',
    '::respawn:/etc/berth/run-containerd',
    '::respawn:/etc/berth/run-dockerd',
    '::respawn:/etc/berth/run-sshd',
    '::respawn:/etc/berth/run-dns',
  ]);
  for (const f of ['run-containerd', 'run-dockerd', 'run-sshd', 'run-dns', 'rc.sysinit', 'rc.shutdown']) {
    assert.ok(fs.statSync(path.join(ROOT, 'vm-images/rootfs/etc/berth', f)).mode & 0o100, `${f} is executable`);
  }
});

test("dockerd connects to the containerd init runs, at the address containerd's config gives", () => {
  const daemon = JSON.parse(read('etc/docker/daemon.json')) as Record<string, unknown>;
  const toml = read('etc/berth/containerd.toml');
  const address = /^\[grpc\]\s*\n\s*address = "([^"]+)"/m.exec(toml)?.[1];
  assert.equal(address, '/run/containerd/containerd.sock');
  assert.equal(daemon.containerd, address);
  assert.match(read('etc/berth/run-containerd'), /exec \/usr\/bin\/containerd --config \/etc\/berth\/containerd\.toml /);
  assert.match(toml, /"io\.containerd\.grpc\.v1\.cri"/, 'no Kubernetes plugin');
  // containerd keeps its state on the data disk, which rc.sysinit binds.
  assert.match(toml, /^root = "\/var\/lib\/containerd"$/m);
  assert.match(read('etc/berth/rc.sysinit'), /for d in docker containerd berth; do/);
});

test('at shutdown dockerd stops its containers first, then containerd goes', () => {
  const down = read('etc/berth/rc.shutdown');
  assert.ok(down.indexOf('stop dockerd') >= 0 && down.indexOf('stop dockerd') < down.indexOf('stop containerd'));
});

test("containers' NAT and network isolation are set by one iptables-restore in rc.sysinit, not by dockerd", () => {
  const daemon = JSON.parse(read('etc/docker/daemon.json')) as Record<string, unknown>;
  assert.equal(daemon.iptables, false);
  const sysinit = read('etc/berth/rc.sysinit');
  for (const rule of [
    '"-A POSTROUTING -o $nic -j MASQUERADE"',
    "'-A FORWARD -j BERTH-ISOLATION'",
    "'-A BERTH-ISOLATION -m physdev --physdev-is-bridged -j RETURN'",
    "'-A BERTH-ISOLATION -i docker0 -o br-+ -j DROP'",
    "'-A BERTH-ISOLATION -i br-+ -o docker0 -j DROP'",
    "'-A BERTH-ISOLATION -i br-+ -o br-+ -j DROP'",
  ]) {
    assert.ok(sysinit.includes(rule), rule);
  }
  assert.match(
    sysinit,
    /\|\n\s*iptables-restore -w --noflush \|\| log "cannot set the containers' NAT and isolation rules"\n\s*fi\n\s*: >\/run\/berth\/container-net\n\) &/,
  );
  // No container before the rules: containerd (which runs them) waits for the marker.
  const containerd = read('etc/berth/run-containerd');
  assert.ok(containerd.indexOf('[ ! -e /run/berth/container-net ]') >= 0);
  assert.ok(containerd.indexOf('container-net') < containerd.indexOf('exec /usr/bin/containerd'));
});
