import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';
import { cacheDir } from '../../app/base/paths.js';
import { readTuning } from '../../app/base/tuning.js';
import { ImageStore } from '../../app/engine/image/image-store.js';
import { hostGuestArch } from '../../app/engine/image/recipe.js';

/**
 * The busybox-static the test images take, for the guest's architecture:
 * the host's own, or for another guest architecture (the arm64 matrix:
 * BERTH_GUEST_ARCH=aarch64) the one in that guest image's root, Debian's
 * busybox-static there too. The image must be built (ensureImage).
 */
export function guestBusybox(workDir: string): string {
  const store = new ImageStore(cacheDir(), undefined, readTuning());
  if (store.arch === hostGuestArch()) return '/bin/busybox';
  const out = path.join(workDir, `busybox-${store.arch}`);
  if (!fs.existsSync(out)) {
    const bin = execFileSync('unsquashfs', ['-cat', path.join(store.expectedDir(), 'rootfs.squashfs'), 'usr/bin/busybox'], { maxBuffer: 64 << 20 });
    fs.writeFileSync(out, bin, { mode: 0o755 });
  }
  return out;
}

/**
 * Why the busybox-static binary cannot be used, or undefined when it can.
 * Tests make their container images offline from it (no registry here).
 */
export function busyboxProblem(bin = '/bin/busybox'): string | undefined {
  let data: Buffer;
  try {
    data = fs.readFileSync(bin);
  } catch {
    return `${bin} is missing (apt-get install busybox-static)`;
  }
  if (data.includes(Buffer.from('/lib64/ld-linux')) || data.includes(Buffer.from('/lib/ld-linux'))) {
    return `${bin} is dynamically linked; containers need busybox-static`;
  }
  return undefined;
}

/**
 * A rootfs tarball: busybox and its applet links, /tmp, /etc/passwd, a /www
 * with an index page; `extra` adds files (path in the image -> host file).
 * `busybox`: the binary; by default the guest architecture's (guestBusybox).
 */
export function busyboxRootfsTar(workDir: string, busybox?: string, extra: Record<string, string> = {}): string {
  const bin = busybox ?? guestBusybox(workDir);
  const root = fs.mkdtempSync(path.join(workDir, 'rootfs-'));
  fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(root, 'tmp'), { mode: 0o1777 });
  fs.mkdirSync(path.join(root, 'etc'));
  fs.mkdirSync(path.join(root, 'www'));
  fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  fs.writeFileSync(path.join(root, 'www/index.html'), 'hello from busybox httpd\n');
  fs.copyFileSync(bin, path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  // The applets' names from the host's busybox when the guest's is another architecture's (it does not run here).
  const applets = execFileSync(busybox ?? '/bin/busybox', ['--list'], { encoding: 'utf8' })
    .split('\n')
    .filter((a) => a && a !== 'busybox');
  for (const a of applets) fs.symlinkSync('busybox', path.join(root, 'bin', a));
  for (const [inImage, src] of Object.entries(extra)) {
    fs.mkdirSync(path.dirname(path.join(root, inImage)), { recursive: true });
    fs.copyFileSync(src, path.join(root, inImage));
    fs.chmodSync(path.join(root, inImage), 0o755);
  }
  const out = path.join(workDir, 'busybox-rootfs.tar');
  tar.c({ file: out, cwd: root, sync: true, portable: true }, fs.readdirSync(root));
  return out;
}
