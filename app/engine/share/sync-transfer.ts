/**
 * Carrying out one cycle's plan across both sides: deletes and folders on
 * each side, host files to the guest as tar streams into a staging folder
 * (placed by the agent in the same round trip), guest files to the host as
 * one tar stream (big ones beside the cycle, sync-bulk.ts), links
 * directly. The ancestor is updated as each change lands, so a cycle cut
 * short keeps what it did.
 */
import crypto from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import type { Logger } from 'pino';
import { create as tarCreate } from 'tar';
import type { GuestSession } from '../guest/session.js';
import { applyGuest, KEPT_BYTES, pullGuest, pushGuest, type GuestOp, type OpResult } from './sync-guest.js';
import { applyHostOp, receiveTar, type HostOp, type HostResult } from './sync-host.js';
import { type guestSyncDirs } from '../settings/sync-paths.js';
import type { Action, Ancestor } from './sync-plan.js';
import type { EchoKind, GuestEchoes } from './sync-echo.js';
import { sh } from '../../base/shell-quote.js';

export interface TransferContext {
  session: GuestSession;
  hostPath: string;
  dirs: ReturnType<typeof guestSyncDirs>;
  log: Logger;
  /** Updated in place as changes land. */
  anc: Ancestor;
  /** Told of the watcher events the guest ops will cause (sync-echo.ts). */
  echoes?: GuestEchoes;
  /** Takes big guest files to pull beside the cycle (sync-bulk.ts); without it they are pulled here. */
  bulk?: { start(c: TransferContext, items: Extract<Action, { op: 'copy' }>[]): void };
  /** With `bulk`: files at least this big go there. */
  bulkBytes?: number;
}

/** First-copy progress, reported to the session. */
export interface TransferProgress {
  /** Files for the guest are about to be sent (all batches of this cycle). */
  starting(totalFiles: number, totalBytes: number): void;
  /** Bytes of a tar stream to the guest went out. */
  sent(bytes: number): void;
  /** A batch of files landed in the guest. */
  landed(files: number): Promise<void>;
}

export interface TransferOutcome {
  toGuest: number;
  toHost: number;
  deleted: number;
  skipped: number;
  /** Conflict copies moved aside in the guest. */
  saved: Set<string>;
  /** Files written on the host. */
  copiedToHost: Set<string>;
  /** Paths a change landed on. */
  applied: Set<string>;
  /** Paths a change did not land on, and why (refused: retrying soon will not help). */
  failed: Map<string, { info: string; refused: boolean }>;
  /** Big guest files handed to the bulk lane, to land after the cycle. */
  later: number;
}

/** Apply the plan's actions in their order; update the ancestor as each succeeds. */
export async function applyActions(c: TransferContext, actions: Action[], progress: TransferProgress): Promise<TransferOutcome> {
  const anc = c.anc;
  const out: TransferOutcome = {
    toGuest: 0,
    toHost: 0,
    deleted: 0,
    skipped: 0,
    saved: new Set(),
    copiedToHost: new Set(),
    applied: new Set(),
    failed: new Map(),
    later: 0,
  };
  const note = (r: OpResult | HostResult) => {
    if (r.status === 'ok') {
      out.applied.add(r.path);
      return true;
    }
    out.skipped++;
    const refused = 'refused' in r && !!r.refused;
    out.failed.set(r.path, { info: r.status === 'skip' ? `skipped: ${r.info} since the scan` : r.info, refused });
    if (r.status === 'err') c.log.debug({ folder: c.hostPath, file: r.path, err: r.info }, 'sync could not apply a change');
    return false;
  };
  for (const a of actions) if (a.op === 'same') anc.set(a.path, { kind: a.host.kind, host: a.host.sig, guest: a.guest.sig });

  // 1. In the guest: conflict copies aside, deletes, folders. On the host: deletes, folders.
  const guestOps: GuestOp[] = [];
  const hostOps: HostOp[] = [];
  for (const a of actions) {
    if (a.op === 'save') guestOps.push({ op: 'save', path: a.path, to: a.to, expect: a.expect });
    else if (a.op === 'delete') (a.on === 'guest' ? guestOps : hostOps).push({ op: 'del', path: a.path, expect: a.expect });
    else if (a.op === 'mkdir') (a.on === 'guest' ? guestOps : hostOps).push({ op: 'mkdir', path: a.path });
  }
  const [gres, hres] = await Promise.all([
    expectingEchoes(c, guestOps, () => applyGuest(c.session, c.dirs.tree, c.dirs.stage, guestOps)),
    (async () => {
      const rs: HostResult[] = [];
      for (const o of hostOps) rs.push(await applyHostOp(c.hostPath, o));
      return rs;
    })(),
  ]);
  gres.forEach((r, i) => {
    const o = guestOps[i]!;
    if (!note(r)) return;
    if (o.op === 'save') {
      out.saved.add(o.path);
      anc.delete(o.path);
    } else if (o.op === 'del') {
      out.deleted++;
      anc.delete(o.path);
    } else if (o.op === 'mkdir') anc.set(o.path, { kind: 'dir', host: '', guest: '' });
  });
  hres.forEach((r, i) => {
    const o = hostOps[i]!;
    if (!note(r)) return;
    if (o.op === 'del') {
      out.deleted++;
      anc.delete(o.path);
    } else if (o.op === 'mkdir') anc.set(o.path, { kind: 'dir', host: '', guest: '' });
  });

  // 2. Host -> guest: files as one tar stream into the staging folder, then renamed into place; links directly.
  const toGuest = actions.filter((a): a is Extract<Action, { op: 'copy' }> => a.op === 'copy' && a.from === 'host');
  const files = toGuest.filter((a) => a.entry.kind === 'file');
  if (files.length)
    progress.starting(
      files.length,
      files.reduce((s, a) => s + (a.entry.size ?? 0), 0),
    );
  // In batches, each recorded as it lands: a link that drops in the middle
  // of a big first copy costs one batch, not the whole copy. A batch small
  // enough for the kept agent is packed on the host while the one before
  // it is in the guest.
  const list = batches(toGuest);
  const fileBytes = (b: typeof toGuest) => b.reduce((s, a) => s + (a.entry.kind === 'file' ? (a.entry.size ?? 0) : 0), 0);
  const fileList = (b: typeof toGuest) => b.filter((a) => a.entry.kind === 'file');
  const packAhead = (i: number): Promise<Buffer> | undefined => {
    const b = list[i];
    if (!b || !fileList(b).length || fileBytes(b) > KEPT_BYTES) return undefined;
    const p = collect(
      packFiles(
        c,
        fileList(b).map((a) => a.path),
        progress,
      ),
    );
    p.catch(() => undefined); // its error is thrown where the batch is pushed
    return p;
  };
  let ahead = packAhead(0);
  for (const [bi, batch] of list.entries()) {
    // Each push stages into a folder of its own: a tar that outlived a
    // dropped link may still be writing into an earlier one.
    const stage = `${c.dirs.stage}/${crypto.randomBytes(6).toString('hex')}`;
    const bfiles = fileList(batch);
    const packed = ahead;
    ahead = packAhead(bi + 1);
    const placeOps: GuestOp[] = batch.map((a) =>
      a.entry.kind === 'link' ? { op: 'link', path: a.path, target: a.entry.target ?? '', expect: a.expect } : { op: 'place', path: a.path, expect: a.expect },
    );
    // Files: sent, placed and their staging folder removed in one round trip.
    const tb = Date.now();
    const pres = await expectingEchoes(c, placeOps, async () =>
      bfiles.length
        ? pushGuest(
            c.session,
            c.dirs.tree,
            stage,
            placeOps,
            packed
              ? Readable.from([await packed], { objectMode: false })
              : packFiles(
                  c,
                  bfiles.map((a) => a.path),
                  progress,
                ),
            fileBytes(batch),
          )
        : applyGuest(c.session, c.dirs.tree, stage, placeOps),
    );
    c.log.debug({ folder: c.hostPath, files: bfiles.length, links: batch.length - bfiles.length, ms: Date.now() - tb }, 'sync: batch to the guest');
    pres.forEach((r, i) => {
      const a = batch[i]!;
      if (!note(r)) return;
      out.toGuest++;
      anc.set(a.path, { kind: a.entry.kind, host: a.entry.sig, guest: r.info });
    });
    await progress.landed(bfiles.length);
  }

  // 3. Guest -> host: links directly, files as one tar stream from the guest.
  const toHost = actions.filter((a): a is Extract<Action, { op: 'copy' }> => a.op === 'copy' && a.from === 'guest');
  for (const a of toHost.filter((x) => x.entry.kind === 'link')) {
    const r = await applyHostOp(c.hostPath, { op: 'link', path: a.path, target: a.entry.target ?? '', expect: a.expect });
    if (!note(r)) continue;
    out.toHost++;
    anc.set(a.path, { kind: 'link', host: r.entry?.sig ?? a.entry.sig, guest: a.entry.sig });
  }
  const fromGuest = toHost.filter((x) => x.entry.kind === 'file');
  const big = c.bulk && c.bulkBytes !== undefined ? fromGuest.filter((a) => (a.entry.size ?? 0) >= c.bulkBytes!) : [];
  if (big.length) {
    c.bulk!.start(c, big);
    out.later = big.length;
  }
  const pulls = big.length ? fromGuest.filter((a) => !big.includes(a)) : fromGuest;
  if (pulls.length) {
    const byPath = new Map(pulls.map((a) => [a.path, a]));
    const results = await pullFiles(c, byPath);
    for (const r of results) {
      const a = byPath.get(r.path);
      if (!a || !note(r) || !r.entry) continue;
      out.toHost++;
      out.copiedToHost.add(r.path);
      anc.set(r.path, { kind: 'file', host: r.entry.sig, guest: a.entry.sig });
    }
    // Files the guest no longer had when tar read them: look again next cycle.
    const got = new Set(results.map((r) => r.path));
    for (const p of byPath.keys()) {
      if (got.has(p)) continue;
      out.skipped++;
      out.failed.set(p, { info: 'not in the guest copy when it was read', refused: false });
    }
  }
  return out;
}

/** The event the guest's watcher reports for a guest op that applied (a conflict copy set aside: none is dropped). */
function echoOf(o: GuestOp): EchoKind | undefined {
  if (o.op === 'place' || o.op === 'link') return 'MOVED_TO';
  if (o.op === 'mkdir') return 'CREATE,ISDIR';
  if (o.op === 'del') return o.expect.kind === 'dir' ? 'DELETE,ISDIR' : 'DELETE';
  return undefined;
}

/**
 * Run guest ops with their echoes expected from before they are sent (an
 * event can come before the answer); an op that did not apply, or a run
 * that failed, expects nothing.
 */
async function expectingEchoes(c: TransferContext, ops: GuestOp[], run: () => Promise<OpResult[]>): Promise<OpResult[]> {
  const echoes = c.echoes;
  if (!echoes) return run();
  const items = ops.flatMap((o) => {
    const kind = echoOf(o);
    return kind ? [{ path: o.path, kind }] : [];
  });
  echoes.expect(items);
  let results: OpResult[];
  try {
    results = await run();
  } catch (err) {
    for (const i of items) echoes.forget(i.path);
    throw err;
  }
  const applied = new Set(results.filter((r) => r.status === 'ok').map((r) => r.path));
  for (const i of items) if (!applied.has(i.path)) echoes.forget(i.path);
  return results;
}

/** A tar stream read whole into memory. */
async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Host files (relative paths) as one tar stream, counted for the progress. */
function packFiles(c: TransferContext, files: string[], progress: TransferProgress): Readable {
  const pack = tarCreate({ cwd: c.hostPath, portable: true, noDirRecurse: true, follow: false }, files);
  const counter = new Transform({
    transform: (chunk: Buffer, _enc, cb) => {
      // Tar headers and padding count too: close enough for progress.
      progress.sent(chunk.length);
      cb(null, chunk);
    },
  });
  pack.on('error', (err: unknown) => counter.destroy(err as Error));
  pack.pipe(counter);
  return counter;
}

/** Pulls of at most this many files may come from the kept agent (its answer, all headers and bytes, is held in memory). */
const KEPT_PULL_FILES = 1000;

/**
 * Fetch guest files as one tar stream and write them on the host: a few
 * small ones (KEPT_PULL_FILES, KEPT_BYTES in all by the look's sizes) from
 * the kept agent, more from a tar of their own.
 */
export async function pullFiles(c: TransferContext, want: Map<string, Extract<Action, { op: 'copy' }>>): Promise<HostResult[]> {
  const wanted = new Map([...want].map(([p, a]) => [p, a.expect ? { expect: a.expect } : {}]));
  const bytes = [...want.values()].reduce((s, a) => s + (a.entry.size ?? 0), 0);
  if (bytes <= KEPT_BYTES && want.size <= KEPT_PULL_FILES) {
    const tar = await pullGuest(c.session, c.dirs.tree, [...want.keys()], KEPT_BYTES);
    if (tar) return receiveTar(c.hostPath, Readable.from([tar], { objectMode: false }), wanted);
  }
  const list = Buffer.from([...want.keys()].map((p) => `${p}\0`).join(''), 'utf8');
  const ch = await c.session.openExec(sh`cd ${c.dirs.tree} && exec tar -c -f - --no-recursion --verbatim-files-from --null -T - 2>/dev/null; true`);
  const done = receiveTar(c.hostPath, ch, wanted);
  ch.end(list);
  return done;
}

/** Files and links to send, cut into tar streams of at most 1,000 files or 64 MiB (a bigger file goes alone). */
export function batches<T extends { entry: { kind: string; size?: number } }>(items: T[], maxFiles = 1000, maxBytes = 64 * 2 ** 20): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let files = 0;
  let bytes = 0;
  for (const it of items) {
    const size = it.entry.kind === 'file' ? (it.entry.size ?? 0) : 0;
    if (cur.length && (files + 1 > maxFiles || bytes + size > maxBytes)) {
      out.push(cur);
      cur = [];
      files = bytes = 0;
    }
    cur.push(it);
    files++;
    bytes += size;
  }
  if (cur.length) out.push(cur);
  return out;
}
