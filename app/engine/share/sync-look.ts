/**
 * The first half of a sync cycle: a look at both sides and the plan that
 * makes them equal. At everything (scanHost, scanGuest), or only where the
 * watchers saw changes (a scope, sync-scope.ts): then the guest is looked at
 * only when its watcher reported something or is not running, and
 * otherwise taken to hold what the ancestor recorded. Files both sides
 * changed are hashed on both sides, and equal ones are no conflict.
 * Carrying the plan out is sync-transfer.ts's job.
 */
import type { GuestSession } from '../guest/session.js';
import { hashGuest, lookGuest, scanGuest } from './sync-guest.js';
import { hashHost, lookHost, scanHost } from './sync-host.js';
import { hashCandidates, reconcile, type Ancestor, type Plan, type Snapshot } from './sync-plan.js';
import { ancestorIn, asRecorded, within, type Scope } from './sync-scope.js';

export interface Looked {
  /** What the host holds (in the scope, if any). */
  host: Snapshot;
  plan: Plan;
  /** How long the look took (scans and hashes, not the plan). */
  lookMs: number;
}

export async function lookAndPlan(o: {
  session: GuestSession;
  hostPath: string;
  /** The guest copy's folder. */
  tree: string;
  anc: Ancestor;
  scope?: Scope;
  lookInGuest: boolean;
}): Promise<Looked> {
  const t0 = Date.now();
  const { scope } = o;
  const [host, looked] = scope
    ? await Promise.all([
        lookHost(o.hostPath, scope.deep, scope.shallow),
        o.lookInGuest ? lookGuest(o.session, o.tree, scope.deep, scope.shallow).then((g) => within(g, scope)) : undefined,
      ])
    : await Promise.all([scanHost(o.hostPath), scanGuest(o.session, o.tree)]);
  const anc = scope ? ancestorIn(o.anc, scope, host, looked ?? new Map()) : o.anc;
  const guest = looked ?? asRecorded(anc);
  const cands = hashCandidates(anc, host, guest);
  const equal = new Set<string>();
  if (cands.length) {
    const [hh, gh] = await Promise.all([hashHost(o.hostPath, cands), hashGuest(o.session, o.tree, cands)]);
    for (const p of cands) if (hh.get(p) && hh.get(p) === gh.get(p)) equal.add(p);
  }
  const lookMs = Date.now() - t0;
  return { host, plan: reconcile(anc, host, guest, { equal }), lookMs };
}
