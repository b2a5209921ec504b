/**
 * The shells a guest script (vm-images/rootfs/etc/berth/*.sh) must run in:
 * dash here, busybox ash in the guest. A shell missing here is said, never
 * skipped silently; with none at all the test file fails.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

export interface Shell {
  name: string;
  argv: string[];
}

export function guestShells(what: string): Shell[] {
  const shells: Shell[] = [];
  for (const [name, argv] of [
    ['dash', ['/bin/sh']],
    ['busybox sh', ['/bin/busybox', 'sh']],
  ] as const) {
    if (spawnSync(argv[0], [...argv.slice(1), '-c', 'exit 0']).status === 0) shells.push({ name, argv: [...argv] });
    else process.stdout.write(`# ${what} tests: ${argv[0]} is not usable here, so ${name} is not tested (apt-get install busybox-static)\n`);
  }
  assert.ok(shells.length > 0, `no POSIX shell to run ${what} with`);
  return shells;
}
