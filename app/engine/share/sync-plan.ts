/**
 * Sync mode's decisions, as a pure function: given what each side holds now
 * and what both held after the last successful sync (the ancestor), what
 * must be done so both sides hold the same again, without losing anything.
 *
 * This is a three-way merge per path, the approach Mutagen (under Docker
 * Desktop's synchronized file shares) and Unison take: a side "changed" a
 * path when what it holds differs from the ancestor's record of that side.
 * Each side is compared only with its own earlier state (its own sizes,
 * times and inode numbers), never with the other side's, so the two copies'
 * different mtimes or inodes never look like edits.
 *
 * - Only one side changed: its state goes to the other side (a create, an
 *   edit, a delete; a rename is a delete and a create).
 * - Both changed to the same thing (both deleted, both made the folder, the
 *   same bytes on both sides, checked by hash): nothing to move.
 * - A delete against an edit: the edit wins (nothing is lost), as in
 *   Mutagen's "safe" modes.
 * - Both changed differently: a conflict. Both versions are kept: the host's
 *   version keeps the name on both sides; the guest's is moved aside in the
 *   guest to `NAME.conflict-guest-TIME` and copied to the host under that
 *   name, where the user resolves it. Unlike Mutagen's safe mode the sync
 *   does not stall on the path: both versions are already safe.
 *
 * Applying a plan checks, just before each change, that the target still is
 * what the scan saw (sync-host.ts, sync-guest.ts); a change that lost that
 * race is skipped and the next cycle sees both edits and decides again.
 */

export type EntryKind = 'file' | 'dir' | 'link';
export type Side = 'host' | 'guest';

/** One path as one side holds it. */
export interface Entry {
  kind: EntryKind;
  /**
   * The side's own signature: for a file its size, mtime, inode and
   * executable bit as that side reports them; for a link `l:TARGET`; for a
   * folder ''. Only ever compared with the same side's earlier signature.
   */
  sig: string;
  /** Files: size in bytes. */
  size?: number;
  /** Links: the target as stored. */
  target?: string;
}

/** Relative POSIX path (no leading slash, no `.`/`..`) -> entry. */
export type Snapshot = Map<string, Entry>;

/** What both sides held after the last sync: the kind and each side's signature. */
export interface AncestorEntry {
  kind: EntryKind;
  host: string;
  guest: string;
}
export type Ancestor = Map<string, AncestorEntry>;

export type Action =
  /** Send `entry` (a file or a link) from `from` to the other side, replacing `expect` there (undefined: nothing there). */
  | { op: 'copy'; from: Side; path: string; entry: Entry; expect?: Entry }
  | { op: 'mkdir'; on: Side; path: string }
  /** Remove what `on` holds at `path` (a folder only when empty), if it still is `expect`. */
  | { op: 'delete'; on: Side; path: string; expect: Entry }
  /** Conflict: move the guest's version aside to `to` (it then comes to the host by the next copy or cycle). */
  | { op: 'save'; on: 'guest'; path: string; to: string; expect: Entry }
  /** Both sides already hold the same: just record it. */
  | { op: 'same'; path: string; host: Entry; guest: Entry };

export interface Conflict {
  path: string;
  /** Where the guest's version was kept (relative). */
  guestCopy: string;
  host: EntryKind | 'missing';
  guest: EntryKind | 'missing';
  at: string;
}

export interface Plan {
  actions: Action[];
  conflicts: Conflict[];
  /** Paths both sides no longer hold: drop from the ancestor. */
  forget: string[];
}

export interface PlanOptions {
  /** Paths both sides changed whose contents were found identical (by hash). */
  equal?: Set<string>;
  /** The time stamped on conflict copies. */
  now?: Date;
}

/** Did `side` change `cur` since the ancestor? */
export function changedOn(side: Side, anc: AncestorEntry | undefined, cur: Entry | undefined): boolean {
  if (!anc) return cur !== undefined;
  if (!cur) return true;
  if (cur.kind !== anc.kind) return true;
  if (cur.kind === 'dir') return false;
  return cur.sig !== anc[side];
}

/** The paths both sides changed where both hold files of the same size: worth hashing before deciding. */
export function hashCandidates(anc: Ancestor, host: Snapshot, guest: Snapshot): string[] {
  const out: string[] = [];
  for (const [p, h] of host) {
    const g = guest.get(p);
    if (!g || h.kind !== 'file' || g.kind !== 'file' || h.size !== g.size) continue;
    const a = anc.get(p);
    if (changedOn('host', a, h) && changedOn('guest', a, g)) out.push(p);
  }
  return out;
}

/** `a/b.txt` -> `a/b.txt.conflict-guest-20250102-030405`; taken names get -2, -3, ... */
export function conflictName(p: string, side: Side, now: Date, taken: (p: string) => boolean): string {
  const stamp = now
    .toISOString()
    .replace(/\.\d+Z$/, '')
    .replace(/[-:]/g, '')
    .replace('T', '-');
  const base = `${p}.conflict-${side}-${stamp}`;
  let name = base;
  for (let i = 2; taken(name); i++) name = `${base}-${i}`;
  return name;
}

const sameContent = (h: Entry, g: Entry, equal: Set<string>, p: string) =>
  h.kind === g.kind && (h.kind === 'dir' || (h.kind === 'link' ? h.target === g.target : equal.has(p)));

const depth = (p: string) => p.split('/').length;

/** Is `p` inside folder `dir` (strictly)? */
export const isInside = (p: string, dir: string) => p.startsWith(`${dir}/`);

export function reconcile(anc: Ancestor, host: Snapshot, guest: Snapshot, opts: PlanOptions = {}): Plan {
  const equal = opts.equal ?? new Set<string>();
  const now = opts.now ?? new Date();
  const paths = [...new Set([...anc.keys(), ...host.keys(), ...guest.keys()])].sort();
  const actions: Action[] = [];
  const conflicts: Conflict[] = [];
  const forget: string[] = [];
  const newNames = new Set<string>();
  const taken = (p: string) => host.has(p) || guest.has(p) || newNames.has(p);
  /** Guest folders moved aside this cycle: what is inside moved with them. */
  const savedDirs: string[] = [];

  const toOther = (from: Side, p: string, e: Entry, there: Entry | undefined) => {
    const on: Side = from === 'host' ? 'guest' : 'host';
    if (e.kind === 'dir') {
      if (there?.kind === 'dir') return;
      if (there) actions.push({ op: 'delete', on, path: p, expect: there });
      actions.push({ op: 'mkdir', on, path: p });
      return;
    }
    if (there?.kind === 'dir') {
      // A folder to replace by a file: removed first (only once empty).
      actions.push({ op: 'delete', on, path: p, expect: there });
      actions.push({ op: 'copy', from, path: p, entry: e });
      return;
    }
    actions.push({ op: 'copy', from, path: p, entry: e, ...(there ? { expect: there } : {}) });
  };

  for (const p of paths) {
    if (savedDirs.some((d) => isInside(p, d))) continue;
    const a = anc.get(p);
    const h = host.get(p);
    const g = guest.get(p);
    const hc = changedOn('host', a, h);
    const gc = changedOn('guest', a, g);
    if (!h && !g) {
      if (a) forget.push(p);
      continue;
    }
    if (!hc && !gc) continue;
    if (hc && !gc) {
      if (h) toOther('host', p, h, g);
      else if (g) actions.push({ op: 'delete', on: 'guest', path: p, expect: g });
      continue;
    }
    if (gc && !hc) {
      if (g) toOther('guest', p, g, h);
      else if (h) actions.push({ op: 'delete', on: 'host', path: p, expect: h });
      continue;
    }
    // Both changed.
    if (!h) {
      toOther('guest', p, g!, undefined); // deleted on the host, edited in the guest: the edit wins
      continue;
    }
    if (!g) {
      toOther('host', p, h, undefined);
      continue;
    }
    if (sameContent(h, g, equal, p)) {
      actions.push({ op: 'same', path: p, host: h, guest: g });
      continue;
    }
    // A real conflict: keep both.
    const to = conflictName(p, 'guest', now, taken);
    newNames.add(to);
    actions.push({ op: 'save', on: 'guest', path: p, to, expect: g });
    if (g.kind === 'dir') savedDirs.push(p);
    else actions.push({ op: 'copy', from: 'guest', path: to, entry: g });
    toOther('host', p, h, undefined);
    conflicts.push({ path: p, guestCopy: to, host: h.kind, guest: g.kind, at: now.toISOString() });
  }
  return { actions: orderActions(actions), conflicts, forget };
}

const PHASE: Record<Action['op'], number> = { same: 0, save: 1, delete: 2, mkdir: 3, copy: 4 };

/**
 * The order changes can be applied in: conflict copies moved aside first,
 * then deletes (deepest first, so folders are empty when their turn comes),
 * then folders (parents first), then files and links.
 */
export function orderActions(actions: Action[]): Action[] {
  return actions
    .map((a, i) => ({ a, i }))
    .sort((x, y) => {
      const d = PHASE[x.a.op] - PHASE[y.a.op];
      if (d) return d;
      if (x.a.op === 'delete') return depth(y.a.path) - depth(x.a.path) || x.i - y.i;
      if (x.a.op === 'mkdir') return depth(x.a.path) - depth(y.a.path) || x.i - y.i;
      return x.i - y.i;
    })
    .map((x) => x.a);
}

/** A human line for a conflict (CLI, logs). */
export function describeConflict(c: Conflict): string {
  return `${c.path}: changed on both sides; the host's version kept the name, the guest's is ${c.guestCopy}`;
}
