/**
 * Host edits reach containers' file watchers (webpack, vite, nodemon).
 * None of 9p, virtiofs or sshfs carries inotify events from the host, so a
 * host watcher tells the guest what changed, path by path: created,
 * written, attributes changed, deleted, renamed (a delete and a create of
 * the same inode in one batch). In the guest, Berth's kernel module
 * (vm-images/notify) turns each into the inotify events the guest's own
 * syscall would have made (IN_CREATE, IN_MODIFY and IN_CLOSE_WRITE,
 * IN_DELETE, IN_MOVED_FROM/IN_MOVED_TO), after a fresh lookup so that the
 * watcher's stat finds what the host has. Without the module (an older
 * image), as Lima and Colima do, the guest touches the paths instead:
 * setting a file's times goes through the guest kernel (an IN_ATTRIB event
 * every watcher on that file or its folder sees). The times set are the
 * file's own, to the nanosecond, so nothing changes on the host:
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
 * back; over virtiofs the host cannot tell them from its own, and they are
 * sent once more: the module drops them at once when nothing in the guest
 * watches that file system, and sends a watcher an extra event otherwise.
 * Each watched folder's changes are counted (share-activity.ts): one that
 * changes by the thousand is better synced, and `berth shares` says so.
 *
 * The guest side is programs/nudge.pl. One line per path: `HOW EV ASEC
 * ANSEC MSEC MNSEC PATH`, HOW `f` (ask the file server, fall back to the
 * given times) or `h` (the given times), EV what happened (see NudgeEvent).
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
import { HostInodes } from './host-inodes.js';
import { FolderActivity } from './share-activity.js';

/** More changed paths than this in one batch are nudged by folder. */
const FLOOD = 500;

/**
 * What a nudge line says happened (programs/nudge.pl): c created, m written,
 * a attributes changed, d deleted, F and T the old and new names of a
 * rename, p a folder whose names changed (touched only where the guest has
 * no events), t touch only.
 */
export type NudgeEvent = 'c' | 'm' | 'a' | 'd' | 'F' | 'T' | 'p' | 't';
type HostChange = 'create' | 'update' | 'delete';

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
export function nudgeLine(how: 'f' | 'h', ev: NudgeEvent, st: Pick<BigIntStats, 'atimeNs' | 'mtimeNs'> | undefined, guestPath: string): string {
  const split = (ns: bigint) => `${ns / 1_000_000_000n} ${ns % 1_000_000_000n}`;
  return `${how} ${ev} ${split(st?.atimeNs ?? 0n)} ${split(st?.mtimeNs ?? 0n)} ${guestPath}`;
}

/** Merge a host watcher's new event for a path into the one pending for it. */
function merged(prev: HostChange | undefined, next: HostChange): HostChange {
  return prev === 'create' && next === 'update' ? 'create' : next;
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
  /** host path -> what the host watcher last said of it */
  private pending = new Map<string, HostChange>();
  /** Inodes of host paths seen (a rename is a delete and a create of one inode). */
  private known = new HostInodes();
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
    /** Counts the changes in each watched folder (which ones would be better synced). */
    readonly activity = new FolderActivity(),
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
          this.activity.count(root, events.length);
          for (const e of events) this.hostChanged(e.path, e.type);
        }),
      )
      .then(
        (sub) => {
          if (this.watched.get(root) !== entry) return void sub.unsubscribe().catch(() => undefined);
          entry.sub = sub;
          this.log.info({ root }, 'watching a bind-mounted folder for host changes');
          void this.known.seed(root, () => this.watched.get(root) === entry);
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
    this.known.forgetUnder(root);
    void cur.sub?.unsubscribe().catch(() => undefined);
  }

  private hostChanged(hostPath: string, kind: HostChange): void {
    const until = this.quiet.get(hostPath);
    if (until !== undefined) {
      if (until > Date.now()) return;
      this.quiet.delete(hostPath);
    }
    this.pending.set(hostPath, merged(this.pending.get(hostPath), kind));
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
    /** A line for `hostPath` (st: what it is now), unless the event was our own nudge's echo. */
    const nudge = (hostPath: string, ev: NudgeEvent, st?: BigIntStats): boolean => {
      const share = shareOf(hostPath, shares);
      const g = guestPathFor(hostPath, shares);
      if (!share || !g || g.includes('\n') || ((ev === 'm' || ev === 'a') && !st)) return false;
      if (st) {
        const sig = signature(st);
        if ((ev === 'm' || ev === 'a') && this.nudged.get(hostPath)?.sig === sig) return true;
        this.nudged.set(hostPath, { sig, at: now });
        this.known.remember(hostPath, st);
      } else {
        this.known.forget(hostPath);
      }
      lines.push(nudgeLine(share.mechanism === 'virtiofs' ? 'f' : 'h', ev, st, g));
      return true;
    };
    /** A folder whose names changed: touched where the guest has no events. */
    const folder = async (dir: string) => {
      const st = await stat(dir);
      if (st) nudge(dir, 'p', st);
    };
    if (pending.length > FLOOD) {
      // A flood (a checkout, an unpacked archive): nudge the folders, not
      // every file, so the guest is not busy for minutes with touches.
      for (const d of new Set(pending.map(([p]) => path.dirname(p)))) {
        const st = await stat(d);
        if (st && nudge(d, 't', st)) paths.push(d);
      }
      for (const [p] of pending) this.known.forget(p);
    } else {
      const changes = await Promise.all(pending.filter(([p]) => guestPathFor(p, shares)).map(async ([p, kind]) => ({ p, kind, st: await stat(p) })));
      // A rename: a path gone and a path made in one batch, the same inode.
      const madeByIno = new Map(changes.filter((c) => c.st && c.kind !== 'update').map((c) => [c.st!.ino, c]));
      const renamedTo = new Map<string, string>();
      for (const c of changes) {
        const ino = this.known.get(c.p)?.ino;
        const to = !c.st && ino !== undefined ? madeByIno.get(ino) : undefined;
        if (to && !renamedTo.has(to.p)) renamedTo.set(to.p, c.p);
      }
      const from = new Set(renamedTo.values());
      for (const { p, kind, st } of changes) {
        if (from.has(p)) continue;
        const old = renamedTo.get(p);
        if (old !== undefined && st) {
          nudge(old, 'F');
          nudge(p, 'T', st);
          await folder(path.dirname(old));
          if (path.dirname(old) !== path.dirname(p)) await folder(path.dirname(p));
          paths.push(old, p);
          continue;
        }
        if (!st) {
          nudge(p, 'd');
        } else if (kind === 'update') {
          const was = this.known.get(p);
          nudge(p, was && was.size === st.size && was.mtimeNs === st.mtimeNs ? 'a' : 'm', st);
        } else {
          nudge(p, 'c', st);
          // What was made in a new folder before the host watcher watched it is never reported: look.
          if (st.isDirectory()) void this.madeIn(p);
        }
        if (!st || kind !== 'update') await folder(path.dirname(p));
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

  /** A folder just made on the host: what is in it already counts as created (the next batch). */
  private async madeIn(dir: string): Promise<void> {
    const names = await fsp.readdir(dir).catch(() => []);
    if (names.length > FLOOD) return;
    for (const n of names) if (!this.known.has(path.join(dir, n))) this.hostChanged(path.join(dir, n), 'create');
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
    this.known.clear();
    this.byContainer.clear();
    void this.channel?.then((ch) => ch.end());
    this.channel = undefined;
  }
}
