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
import { bundledVirtiofsd, parseVirtiofsdVersion, RUST_VIRTIOFSD_PATHS } from '../app/engine/drivers/virtiofsd-probe.js';
import { guestSources, hostAptEntries, hostDebianCodename } from '../app/engine/image/apt-sources.js';
import { guestSuite } from '../app/engine/image/image-store.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const say = (m: string) => process.stdout.write(`${m}\n`);
const fail = (m: string, hint: string): never => {
  process.stderr.write(`error: ${m}\nhint: ${hint}\n`);
  process.exit(1);
};

/** The flavor and version a virtiofsd reports, or undefined when it does not run. */
function version(bin: string): ReturnType<typeof parseVirtiofsdVersion> {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? parseVirtiofsdVersion(`${r.stdout}${r.stderr}`) : undefined;
}

if (process.platform !== 'linux') {
  say('virtiofsd runs on Linux hosts only: nothing to do');
  process.exit(0);
}
const system = RUST_VIRTIOFSD_PATHS.find((p) => fs.existsSync(p) && version(p)?.flavor === 'rust');
if (system) {
  say(`this host has the Rust virtiofsd (${system}): nothing to do`);
  process.exit(0);
}
const suite = guestSuite();
const launcher = bundledVirtiofsd(cacheDir());
const dir = path.dirname(launcher);
const suiteFile = path.join(dir, 'suite');
const have = fs.existsSync(launcher) ? version(launcher) : undefined;
if (!process.argv.includes('--force') && have?.flavor === 'rust' && fs.readFileSync(suiteFile, 'utf8').trim() === suite) {
  say(`virtiofsd ${have.version} from Debian ${suite} is already in ${dir}`);
  process.exit(0);
}
if (process.getuid?.() !== 0) fail('unpacking virtiofsd needs root (mmdebstrap root mode)', 'Run it with sudo, as ./scripts/install.sh does.');
const sources = process.env.BERTH_APT_SOURCES
  ? fs.readFileSync(process.env.BERTH_APT_SOURCES, 'utf8')
  : guestSources(hostAptEntries(), suite, hostDebianCodename());
if (!sources) {
  fail(
    `this host's apt sources have no Debian ${suite} entries, and no Debian entries of its own release to take the mirrors from`,
    `Install the virtiofsd package of your distribution if it has the Rust one, or set BERTH_APT_SOURCES to a sources file for ${suite}. QEMU's C virtiofsd works meanwhile.`,
  );
}
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
    fail(`unpacking virtiofsd from Debian ${suite} failed (exit status ${r.status})`, "The lines above say why. QEMU's C virtiofsd works meanwhile.");
  fs.writeFileSync(path.join(out, 'suite'), `${suite}\n`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(out, dir);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
const got = version(launcher);
if (!got || got.flavor !== 'rust') fail(`${launcher} does not run`, "Run `npm run virtiofsd -- --force`; QEMU's C virtiofsd works meanwhile.");
say(`virtiofsd ${got!.version} from Debian ${suite}: ${launcher}`);
