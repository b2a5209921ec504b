/**
 * The shells a guest script (vm-images/rootfs/etc/berth/*.sh) must run in:
 * dash here, busybox ash in the guest. Every shell is returned; one missing
 * here carries a `problem`, for the prereq gate (test/helpers/prereq-gate.ts):
 * its tests are skipped with the reason (a failure under CI), never passed.
 */
import { spawnSync } from 'node:child_process';

export interface Shell {
  name: string;
  argv: string[];
  /** Why this shell cannot run here (undefined when it can). */
  problem?: string;
}

export function guestShells(): Shell[] {
  return [
    { name: 'dash', argv: ['/bin/sh'], pkg: 'dash' },
    { name: 'busybox sh', argv: ['/bin/busybox', 'sh'], pkg: 'busybox-static' },
  ].map(({ name, argv, pkg }) => {
    const usable = spawnSync(argv[0]!, [...argv.slice(1), '-c', 'exit 0']).status === 0;
    return usable ? { name, argv } : { name, argv, problem: `${argv[0]} is not usable here (apt-get install ${pkg})` };
  });
}

/** The first shell that runs here, for tests that need any POSIX shell (a problem when there is none). */
export function anyShell(): { shell: Shell; problem?: string } {
  const shells = guestShells();
  const ok = shells.find((s) => !s.problem);
  return ok ? { shell: ok } : { shell: shells[0]!, problem: `no POSIX shell: ${shells.map((s) => s.problem).join('; ')}` };
}
