import fs from 'node:fs';
import path from 'node:path';

/**
 * The guest image is built from the host's own apt sources: no mirror name is
 * ever written into the repository. This picks the host's entries for the
 * guest's Debian suite (and its -updates/-security companions) out of
 * sources.list and sources.list.d, in one-line or deb822 format, and returns
 * them as one deb822 text for mmdebstrap. A Debian host of another release
 * lends its own release's entries with the suite renamed (see guestSources).
 */
export interface AptEntry {
  uris: string[];
  suites: string[];
  components: string[];
  signedBy?: string;
}

function suiteMatches(suite: string, wanted: string): boolean {
  return suite === wanted || suite.startsWith(`${wanted}-`) || suite.startsWith(`${wanted}/`);
}

export function parseOneLine(text: string): AptEntry[] {
  const entries: AptEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line.startsWith('deb ')) continue;
    let rest = line.slice(4).trim();
    let signedBy: string | undefined;
    const opts = /^\[([^\]]*)\]\s*/.exec(rest);
    if (opts) {
      rest = rest.slice(opts[0].length);
      const m = /signed-by=(\S+)/.exec(opts[1]!);
      if (m) signedBy = m[1];
    }
    const [uri, suite, ...components] = rest.split(/\s+/);
    if (!uri || !suite) continue;
    entries.push({ uris: [uri], suites: [suite], components, signedBy });
  }
  return entries;
}

export function parseDeb822(text: string): AptEntry[] {
  const entries: AptEntry[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^\s/.test(raw) && last) {
        fields.set(last, `${fields.get(last)}\n${raw.trim()}`);
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw);
      if (!m) continue;
      last = m[1]!.toLowerCase();
      fields.set(last, m[2]!.trim());
    }
    const types = (fields.get('types') ?? '').split(/\s+/);
    if (!types.includes('deb')) continue;
    if ((fields.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    const uris = (fields.get('uris') ?? '').split(/\s+/).filter(Boolean);
    const suites = (fields.get('suites') ?? '').split(/\s+/).filter(Boolean);
    if (!uris.length || !suites.length) continue;
    entries.push({
      uris,
      suites,
      components: (fields.get('components') ?? '').split(/\s+/).filter(Boolean),
      signedBy: fields.get('signed-by'),
    });
  }
  return entries;
}

/** Entries for `suite` with the main component, as deb822 text ('' when none). */
export function sourcesForSuite(entries: AptEntry[], suite: string): string {
  const out: string[] = [];
  for (const e of entries) {
    const suites = e.suites.filter((s) => suiteMatches(s, suite));
    if (!suites.length || !e.components.includes('main')) continue;
    const lines = ['Types: deb', `URIs: ${e.uris.join(' ')}`, `Suites: ${suites.join(' ')}`, 'Components: main'];
    // A keyring path is only kept when it is a file; inline keys are kept as is.
    if (e.signedBy && (e.signedBy.includes('\n') || fs.existsSync(e.signedBy))) {
      lines.push(`Signed-By: ${e.signedBy.includes('\n') ? e.signedBy.split('\n').join('\n ') : e.signedBy}`);
    }
    out.push(lines.join('\n'));
  }
  return out.length ? out.join('\n\n') + '\n' : '';
}

/**
 * The guest suite's sources: the host's own entries for it when it has them;
 * otherwise the entries of the host's own Debian release (`hostSuite`, see
 * hostDebianCodename) with that suite renamed to the guest's, same mirrors,
 * keyring and companions (bookworm-security becomes trixie-security): a
 * Debian mirror serves every release under the same URIs. '' when neither.
 */
export function guestSources(entries: AptEntry[], suite: string, hostSuite?: string): string {
  const own = sourcesForSuite(entries, suite);
  if (own || !hostSuite || hostSuite === suite) return own;
  const renamed = entries.map((e) => ({
    ...e,
    suites: e.suites.filter((s) => suiteMatches(s, hostSuite)).map((s) => suite + s.slice(hostSuite.length)),
  }));
  return sourcesForSuite(renamed, suite);
}

/** The host's Debian release name (VERSION_CODENAME of os-release), on Debian only. */
export function hostDebianCodename(osRelease = '/etc/os-release'): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(osRelease, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string) => new RegExp(`^${name}=["']?([^"'\n]*)["']?$`, 'm').exec(text)?.[1]?.trim();
  if (field('ID') !== 'debian') return undefined;
  const codename = field('VERSION_CODENAME');
  return codename && /^[a-z]+$/.test(codename) ? codename : undefined;
}

export function hostAptEntries(root = '/etc/apt'): AptEntry[] {
  const entries: AptEntry[] = [];
  const main = path.join(root, 'sources.list');
  if (fs.existsSync(main)) entries.push(...parseOneLine(fs.readFileSync(main, 'utf8')));
  const dir = path.join(root, 'sources.list.d');
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).sort();
  } catch {
    /* no folder */
  }
  for (const n of names) {
    const f = path.join(dir, n);
    if (n.endsWith('.list')) entries.push(...parseOneLine(fs.readFileSync(f, 'utf8')));
    else if (n.endsWith('.sources')) entries.push(...parseDeb822(fs.readFileSync(f, 'utf8')));
  }
  return entries;
}
