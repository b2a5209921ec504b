/**
 * `npm run virtiofsd`: give a Linux host that has only QEMU's C virtiofsd
 * the Rust one, unpacked from the guest's Debian release into Berth's cache
 * (scripts/virtiofsd.sh; the engine finds it: drivers/virtiofsd-probe.ts).
 * Nothing to do where a Rust virtiofsd is installed, or where the cached
 * one is of the current release. Needs root, as the image build does.
 *   --force   unpack again
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir } from '../app/base/paths.js';
import { BerthError } from '../app/contract/errors.js';
import { bundledVirtiofsd, parseVirtiofsdVersion, RUST_VIRTIOFSD_PATHS } from '../app/engine/drivers/virtiofsd-probe.js';
import { guestSources, hostAptEntries, hostDebianCodename } from '../app/engine/image/apt-sources.js';
import { guestSuite } from '../app/engine/image/recipe.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const say = (m: string) => process.stdout.write(`${m}\n`);
// Under a low open-files limit the C one is not used (drivers/virtiofsd-probe.ts): shares are reverse sshfs there.
const QEMU_MEANWHILE = "Meanwhile shares use QEMU's C virtiofsd, or reverse sshfs where Berth's open-files limit is low.";

/** The flavor and version a virtiofsd reports, or undefined when it does not run. */
function version(bin: string): ReturnType<typeof parseVirtiofsdVersion> {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? parseVirtiofsdVersion(`${r.stdout}${r.stderr}`) : undefined;
}

/** The apt sources to unpack from: BERTH_APT_SOURCES, or the host's own mirrors with the guest's suite. */
function aptSources(suite: string): string {
  const file = process.env.BERTH_APT_SOURCES;
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new BerthError(
        'VIRTIOFSD_UNPACK_FAILED',
        `cannot read BERTH_APT_SOURCES (${file}): ${(err as Error).message}`,
        'Point it at an apt sources file, or unset it to use the host’s own.',
      );
    }
    if (!text.trim())
      throw new BerthError(
        'VIRTIOFSD_UNPACK_FAILED',
        `BERTH_APT_SOURCES (${file}) is empty`,
        `Give it Debian ${suite} entries, or unset it to use the host’s own. ${QEMU_MEANWHILE}`,
      );
    return text;
  }
  const sources = guestSources(hostAptEntries(), suite, hostDebianCodename());
  if (!sources)
    throw new BerthError(
      'VIRTIOFSD_UNPACK_FAILED',
      `this host's apt sources have no Debian ${suite} entries, and no Debian entries of its own release to take the mirrors from`,
      `Install the virtiofsd package of your distribution if it has the Rust one, or set BERTH_APT_SOURCES to a sources file for ${suite}. ${QEMU_MEANWHILE}`,
    );
  return sources;
}

/** Unpack the guest release's virtiofsd into Berth's cache, unless there is nothing to do; what it did, in a line. */
function unpack(): string {
  if (process.platform !== 'linux') return 'virtiofsd runs on Linux hosts only: nothing to do';
  const system = RUST_VIRTIOFSD_PATHS.find((p) => fs.existsSync(p) && version(p)?.flavor === 'rust');
  if (system) return `this host has the Rust virtiofsd (${system}): nothing to do`;
  const suite = guestSuite();
  const launcher = bundledVirtiofsd(cacheDir());
  const dir = path.dirname(launcher);
  const suiteFile = path.join(dir, 'suite');
  const have = fs.existsSync(launcher) ? version(launcher) : undefined;
  if (!process.argv.includes('--force') && have?.flavor === 'rust' && fs.readFileSync(suiteFile, 'utf8').trim() === suite)
    return `virtiofsd ${have.version} from Debian ${suite} is already in ${dir}`;
  if (process.getuid?.() !== 0)
    throw new BerthError(
      'VIRTIOFSD_UNPACK_NEEDS_ROOT',
      'unpacking virtiofsd needs root (mmdebstrap root mode)',
      'Run it with sudo, as ./scripts/install.sh does.',
    );
  const sources = aptSources(suite);
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = fs.mkdtempSync(`${dir}.new-`);
  try {
    const sourcesFile = path.join(tmp, 'apt.sources');
    fs.writeFileSync(sourcesFile, sources);
    const out = path.join(tmp, 'out');
    const r = spawnSync('bash', [path.join(root, 'scripts', 'virtiofsd.sh'), out, sourcesFile], {
      stdio: 'inherit',
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
    });
    if (r.status !== 0)
      throw new BerthError(
        'VIRTIOFSD_UNPACK_FAILED',
        `unpacking virtiofsd from Debian ${suite} failed (exit status ${r.status})`,
        `The lines above say why. ${QEMU_MEANWHILE}`,
      );
    fs.writeFileSync(path.join(out, 'suite'), `${suite}\n`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(out, dir);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const got = version(launcher);
  if (!got || got.flavor !== 'rust')
    throw new BerthError('VIRTIOFSD_UNPACK_FAILED', `${launcher} does not run`, `Run \`npm run virtiofsd -- --force\`; ${QEMU_MEANWHILE}`);
  return `virtiofsd ${got.version} from Debian ${suite}: ${launcher}`;
}

try {
  say(unpack());
} catch (err) {
  if (!(err instanceof BerthError)) throw err;
  process.stderr.write(`error: ${err.message} [${err.code}]\nhint: ${err.hint}\n`);
  process.exit(1);
}
