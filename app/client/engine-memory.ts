/**
 * How the engine process holds memory. Measured with a real VM under a load
 * like the bench's before its Idle section (3 × 100 MiB through a published
 * port, a 100 MiB `docker cp`, 100 `docker version`, a synced folder of
 * 5,000 files), RSS 30 s after it: 101 MiB as node starts by default (one
 * run); 80 and 85 MiB with these (two runs). Fresh, 65 → 63 MiB. Why:
 * - glibc kept freed memory: its main arena held 34.6 MB of which 4.4 MB
 *   was in use (malloc_stats), and malloc_trim (called by hand through gdb)
 *   gave back 30 MiB. Node never calls malloc_trim, and glibc gives back
 *   only the top of its heap, so Buffers of a transfer, freed between
 *   longer-lived allocations, were held for good. With a fixed mmap
 *   threshold of 16 KiB, blocks that size and up (socket reads, ssh
 *   packets, files the sync packs) are mappings of their own, unmapped when
 *   freed; a fixed threshold also stops glibc from raising it (and the trim
 *   threshold with it, to 64 MiB) after the first big free. Two arenas
 *   instead of eight per core for the libuv and V8 helper threads.
 * - V8's young generation grew to 32 MB during a sync and stayed so at
 *   idle (nothing allocates, so no collection shrinks it): held at 1 MB a
 *   half here. The port forward's GETs ran at the same speed (16-19 MB/s
 *   under TCG either way).
 * glibc only (macOS's and Windows' allocators ignore the variables); a
 * value the user set wins. They are for the engine alone: glibc reads them
 * when the process starts, and the engine then takes out of its
 * environment those that hold the launcher's values, so QEMU, virtiofsd and
 * ssh, which it starts, run with glibc's defaults.
 */
export const ENGINE_NODE_FLAGS = ['--max-semi-space-size=1'];
export const ENGINE_MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '16384' };

/** In the engine, at its start: take out the malloc settings that hold the launcher's values, so the processes it starts do not inherit them. */
export function dropEngineMallocEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const [k, v] of Object.entries(ENGINE_MALLOC_ENV)) if (env[k] === v) delete env[k];
}
