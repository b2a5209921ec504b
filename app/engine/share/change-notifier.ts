/**
 * Host edits reach containers' file watchers (webpack, vite, nodemon).
 * None of 9p, virtiofs or sshfs carries inotify events from the host, so,
 * as Lima and Colima do, a host watcher tells the guest which paths changed
 * and the guest touches them: setting a file's times goes through the
 * guest kernel (an IN_ATTRIB event every watcher on that file or its folder
 * sees). The times set are the file's own, to the nanosecond, so nothing
 * changes on the host:
 * - reverse sshfs: the engine sends the host file's times (the guest's
 *   cached ones may be a second old); the SFTP server leaves times equal to
 *   the current ones alone.
 * - virtiofs: the guest asks the file server for the current times
 *   (statx with AT_STATX_FORCE_SYNC, past its attribute cache) and sets
 *   exactly those (utimensat). virtiofsd does set them on the host, which
 *   changes only the file's ctime; the host watcher then reports that
 *   change, and the notifier drops it because the file is as it nudged it
 *   (same inode, size, mtime and mode): no echo.
 * A path that no longer exists nudges its folder.
 *
 * Only folders that running containers bind-mount from a share are watched
 * (Docker's events tell which), not whole home folders. Changes the guest
 * made through reverse sshfs (reported by the SFTP server) are not echoed
 * back; over virtiofs they are nudged once more (an extra attribute event).
 *
 * The guest side is programs/nudge.pl. One line per path: `HOW ASEC ANSEC
 * MSEC MNSEC PATH`, HOW `f` (ask the file server, fall back to the given
 * times) or `h` (the given times).
 */
import { EventEmitter } from 'node:events';
import type { BigIntStats } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type parcelWatcher from '@parcel/watcher';
import type { Logger } from 'pino';
import type { ClientChannel } from 'ssh2';
import type { DockerApi } from '../docker/docker-api.js';
import type { GuestSession } from '../guest/session.js';
import { perlCommand } from '../guest/programs.js';

/** More changed paths than this in one batch are nudged by folder. */
const FLOOD = 500;

export interface ShareMapping {
  hostPath: string;
  guestPath: string;
  /** virtiofs shares get `f` nudges (times from the file server). */
  mechanism?: string;
}

/** The host path a guest path stands for, when it lies in a share. */
export function hostPathFor(guestPath: string, shares: ShareMapping[]): string | undefined {
  let best: ShareMapping | undefined;
  for (const s of shares) {
    const g = s.guestPath.replace(/\/+$/, '') || '/';
    if (guestPath === g || guestPath.startsWith(g === '/' ? '/' : `${g}/`)) {
      if (!best || g.length > best.guestPath.length) best = { hostPath: s.hostPath, guestPath: g };
    }
  }
  if (!best) return undefined;
  return path.join(best.hostPath, ...guestPath.slice(best.guestPath.length).split('/').filter(Boolean));
}

/** The share holding a host path (the innermost one). */
function shareOf(hostPath: string, shares: ShareMapping[]): ShareMapping | undefined {
  let best: ShareMapping | undefined;
  for (const s of shares) {
    const rel = path.relative(s.hostPath, hostPath);
    if (rel.startsWith('..') || path.isAbsolute(rel)) continue;
    if (!best || s.hostPath.length > best.hostPath.length) best = s;
  }
  return best;
}

/** The guest path of a host path inside a share. */
export function guestPathFor(hostPath: string, shares: ShareMapping[]): string | undefined {
  const best = shareOf(hostPath, shares);
  if (!best) return undefined;
  const rel = path.relative(best.hostPath, hostPath).split(path.sep).filter(Boolean);
  return [best.guestPath.replace(/\/+$/, ''), ...rel].join('/') || '/';
}

/** What a nudge leaves as it was: a later event with the same signature is its echo. */
function signature(st: BigIntStats): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}:${st.mode}`;
}

/** One nudge line (see programs/nudge.pl). */
export function nudgeLine(how: 'f' | 'h', st: Pick<BigIntStats, 'atimeNs' | 'mtimeNs'>, guestPath: string): string {
  const split = (ns: bigint) => `${ns / 1_000_000_000n} ${ns % 1_000_000_000n}`;
  return `${how} ${split(st.atimeNs)} ${split(st.mtimeNs)} ${guestPath}`;
}

interface Watched {
  refs: number;
  sub?: parcelWatcher.AsyncSubscription;
  ready?: Promise<void>;
}

interface ContainerMounts {
  Mounts?: { Type?: string; Source?: string }[];
}

export class ChangeNotifier extends EventEmitter<{ nudged: [string[]] }> {
  /** host folder -> its watcher and how many containers mount it */
  private watched = new Map<string, Watched>();
  private byContainer = new Map<string, string[]>();
  /** Host paths the guest just changed itself: ignore their events until then. */
  private quiet = new Map<string, number>();
  /** host path -> 'c' (content or attributes changed) or 'r' (created, deleted, renamed) */
  private pending = new Map<string, 'c' | 'r'>();
  /** host path -> what it was when last nudged (its echo is dropped). */
  private nudged = new Map<string, { sig: string; at: number }>();
  private flushTimer?: NodeJS.Timeout;
  private channel?: Promise<ClientChannel>;
  private events?: { stop: () => void };
  private stopped = true;
  nudges = 0;

  constructor(
    private readonly session: GuestSession,
    private readonly docker: DockerApi,
    private readonly log: Logger,
    private readonly shares: () => ShareMapping[],
    /** Host folders not to nudge (synced folders: their guest copies get real events). */
    private readonly skip: (hostPath: string) => boolean = () => false,
  ) {
    super();
  }

  /** The SFTP server reports what the guest changes: no echo for those. */
  guestChanged(hostPath: string): void {
    this.quiet.set(hostPath, Date.now() + 2000);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.events = this.docker.followContainers({
      event: (action, id) => void (action === 'start' ? this.containerStarted(id) : this.containerGone(id)),
      list: (list) => list.forEach((c) => void this.containerStarted(c.Id)),
    });
  }

  private async containerStarted(id: string): Promise<void> {
    if (this.byContainer.has(id)) return;
    let info: ContainerMounts;
    try {
      info = (await this.docker.request('GET', `/containers/${encodeURIComponent(id)}/json`)) as ContainerMounts;
    } catch {
      return;
    }
    const shares = this.shares();
    const roots = (info.Mounts ?? [])
      .filter((m) => m.Type === 'bind' && m.Source)
      .map((m) => hostPathFor(m.Source!, shares))
      .filter((p): p is string => !!p && !this.skip(p));
    if (this.stopped || !roots.length) return;
    this.byContainer.set(id, roots);
    for (const r of roots) this.watch(r);
  }

  private containerGone(id: string): void {
    const roots = this.byContainer.get(id);
    if (!roots) return;
    this.byContainer.delete(id);
    for (const r of roots) this.unwatch(r);
  }

  private watch(root: string): void {
    const cur = this.watched.get(root);
    if (cur) {
      cur.refs++;
      return;
    }
    const entry: Watched = { refs: 1 };
    this.watched.set(root, entry);
    // @parcel/watcher: native recursive watching (inotify, FSEvents,
    // ReadDirectoryChangesW) off the event loop. Node 20's own recursive
    // fs.watch on Linux walks folders synchronously on every event: 20,000
    // new files in one folder blocked the engine for minutes, and a blocked
    // engine deadlocks the SFTP mounts it serves. Loaded with the first
    // folder watched: an engine whose containers mount no share never needs it.
    entry.ready = import('@parcel/watcher')
      .then(({ default: watcher }) =>
        watcher.subscribe(root, (err, events) => {
          if (err) return void this.log.debug({ err: err.message, root }, 'file watcher error');
          for (const e of events) this.hostChanged(e.path, e.type === 'update' ? 'c' : 'r');
        }),
      )
      .then(
        (sub) => {
          if (this.watched.get(root) !== entry) return void sub.unsubscribe().catch(() => undefined);
          entry.sub = sub;
          this.log.info({ root }, 'watching a bind-mounted folder for host changes');
        },
        (err: Error) => {
          this.watched.delete(root);
          this.log.warn({ err: err.message, root }, 'cannot watch a shared folder');
        },
      );
  }

  private unwatch(root: string): void {
    const cur = this.watched.get(root);
    if (!cur) return;
    if (--cur.refs > 0) return;
    this.watched.delete(root);
    void cur.sub?.unsubscribe().catch(() => undefined);
  }

  private hostChanged(hostPath: string, kind: 'c' | 'r'): void {
    const until = this.quiet.get(hostPath);
    if (until !== undefined) {
      if (until > Date.now()) return;
      this.quiet.delete(hostPath);
    }
    if (this.pending.get(hostPath) !== 'r') this.pending.set(hostPath, kind);
    // Coalesce a burst (an editor's save is several events) into one write.
    this.flushTimer ??= setTimeout(() => void this.flush(), 25);
  }

  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    const shares = this.shares();
    const pending = [...this.pending];
    this.pending.clear();
    const lines: string[] = [];
    const paths: string[] = [];
    const now = Date.now();
    const stat = (p: string) => fsp.lstat(p, { bigint: true }).catch(() => undefined);
    /** Nudge `hostPath` (it exists) unless the event was our own nudge's echo. */
    const nudge = async (hostPath: string, kind: 'c' | 'r', st?: BigIntStats): Promise<boolean> => {
      st ??= await stat(hostPath);
      const share = shareOf(hostPath, shares);
      const g = guestPathFor(hostPath, shares);
      if (!st || !share || !g || g.includes('\n')) return false;
      const sig = signature(st);
      const last = this.nudged.get(hostPath);
      if (kind === 'c' && last?.sig === sig) return true;
      this.nudged.set(hostPath, { sig, at: now });
      lines.push(nudgeLine(share.mechanism === 'virtiofs' ? 'f' : 'h', st, g));
      return true;
    };
    if (pending.length > FLOOD) {
      // A flood (a checkout, an unpacked archive): nudge the folders, not
      // every file, so the guest is not busy for minutes with touches.
      for (const d of new Set(pending.map(([p]) => path.dirname(p)))) if (await nudge(d, 'r')) paths.push(d);
    } else {
      for (const [p, kind] of pending) {
        if (!guestPathFor(p, shares)) continue;
        const st = await stat(p);
        // A name that appeared, went or moved: its folder changed too.
        if (st) await nudge(p, kind, st);
        if (!st || kind === 'r') await nudge(path.dirname(p), 'r');
        paths.push(p);
      }
    }
    // Forget old marks now and then.
    for (const [p, t] of this.quiet) if (t < now) this.quiet.delete(p);
    for (const [p, n] of this.nudged) if (now - n.at > 30_000) this.nudged.delete(p);
    if (!lines.length || this.stopped) return;
    try {
      const ch = await this.nudger();
      ch.write(lines.join('\n') + '\n');
      this.nudges += paths.length;
      this.emit(
        'nudged',
        paths.map((p) => guestPathFor(p, shares) ?? p),
      );
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'cannot nudge the guest');
    }
  }

  private nudger(): Promise<ClientChannel> {
    if (!this.channel) {
      this.channel = this.session.openExec(perlCommand('nudge.pl')).then((ch) => {
        ch.on('close', () => (this.channel = undefined));
        ch.stderr.on('data', (d: Buffer) => this.log.debug({ stderr: d.toString() }, 'nudger'));
        return ch;
      });
      this.channel.catch(() => (this.channel = undefined));
    }
    return this.channel;
  }

  stop(): void {
    this.stopped = true;
    this.events?.stop();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const w of this.watched.values()) void w.sub?.unsubscribe().catch(() => undefined);
    this.watched.clear();
    this.byContainer.clear();
    void this.channel?.then((ch) => ch.end());
    this.channel = undefined;
  }
}
