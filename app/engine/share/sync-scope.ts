/**
 * The paths one cycle looks at when it follows the watchers' events rather
 * than rescanning both sides: each path an event named (with everything
 * under it, when it is a folder: a folder made or moved in may hold entries
 * no event named, made before its watch was in place) and the folders on
 * the way to it (so a new parent is made, and nothing is looked up through
 * something that is no longer a folder). What the ancestor holds in that
 * scope is all the plan needs: reconcile() decides per path.
 */
import type { Ancestor, Snapshot } from './sync-plan.js';
import { safeRelative, SYNC_TEMP_PREFIX } from '../settings/sync-paths.js';

export interface Scope {
  /** Looked at with everything under them (none inside another). */
  deep: string[];
  /** Looked at alone: the folders on the way to a deep path. */
  shallow: string[];
}

/**
 * The scope of a set of changed paths, or undefined when they cannot be
 * followed (a path that is not a plain relative one: look at everything).
 * Paths of our own temporary files are dropped.
 */
export function scopeOf(paths: Iterable<string>): Scope | undefined {
  const sorted: string[] = [];
  for (const p of paths) {
    if (!safeRelative(p)) return undefined;
    if (p.split('/').some((c) => c.startsWith(SYNC_TEMP_PREFIX))) continue;
    sorted.push(p);
  }
  // Parents before children: a path inside a deep one is covered by it.
  sorted.sort((a, b) => a.length - b.length);
  const deepSet = new Set<string>();
  for (const p of sorted) if (!coveredBy(deepSet, p)) deepSet.add(p);
  const deep = [...deepSet].sort();
  const shallow = new Set<string>();
  for (const p of deep) {
    for (let i = p.indexOf('/'); i >= 0; i = p.indexOf('/', i + 1)) shallow.add(p.slice(0, i));
  }
  for (const p of deep) shallow.delete(p);
  return { deep, shallow: [...shallow].sort() };
}

/** Whether `p` or a folder it is in is in `set`. */
export function coveredBy(set: Set<string>, p: string): boolean {
  if (set.has(p)) return true;
  for (let i = p.indexOf('/'); i >= 0; i = p.indexOf('/', i + 1)) if (set.has(p.slice(0, i))) return true;
  return false;
}

/**
 * The part of the ancestor in the scope. A deep path's descendants are only
 * looked for when some side holds or held a folder there (one edited file
 * does not cost a walk over the whole ancestor).
 */
export function ancestorIn(anc: Ancestor, s: Scope, host: Snapshot, guest: Snapshot): Ancestor {
  const out: Ancestor = new Map();
  const folders = new Set<string>();
  for (const p of [...s.deep, ...s.shallow]) {
    const a = anc.get(p);
    if (a) out.set(p, a);
  }
  for (const p of s.deep) {
    if (anc.get(p)?.kind === 'dir' || host.get(p)?.kind === 'dir' || guest.get(p)?.kind === 'dir') folders.add(p);
  }
  if (!folders.size) return out;
  for (const [p, a] of anc) {
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) {
      if (folders.has(p.slice(0, i))) {
        out.set(p, a);
        break;
      }
    }
  }
  return out;
}

/** Only the entries of `snap` in the scope (the guest answers a look; it may name anything). */
export function within(snap: Snapshot, s: Scope): Snapshot {
  const deep = new Set(s.deep);
  const shallow = new Set(s.shallow);
  for (const p of snap.keys()) if (!shallow.has(p) && !coveredBy(deep, p)) snap.delete(p);
  return snap;
}

/** What the guest holds by the ancestor's record (its own signatures), for a look that does not ask it. */
export function asRecorded(anc: Ancestor): Snapshot {
  const snap: Snapshot = new Map();
  for (const [p, a] of anc)
    snap.set(p, a.kind === 'link' ? { kind: 'link', sig: a.guest, target: a.guest.replace(/^l:/, '') } : { kind: a.kind, sig: a.guest });
  return snap;
}
