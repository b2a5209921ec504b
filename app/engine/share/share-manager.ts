import { EventEmitter } from 'node:events';
import fsp from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ShareViewWire } from '../../contract/contract.js';
import { BerthError, toErrorInfo } from '../../contract/errors.js';
import type { GuestSession } from '../guest/session.js';
import { sleep } from '../../base/process-util.js';
// The SFTP server is loaded with the first reverse sshfs mount: virtio-fs shares never need it.
import type { SftpSession } from './sftp-server.js';
import { sshfsCommand } from './sshfs-command.js';
import { shareKey, type ShareMechanismName, type ShareRoute } from './virtiofs.js';
import { detachMount, fuseUnmount, isMounted, mountVirtiofs, prepareFuseMountPoint, unmountVirtiofs } from '../guest/queries.js';

export type ShareMechanism = ShareMechanismName;
export type ShareState = ShareViewWire['state'];

/** A shared folder as settings hold it. */
export interface ShareSetting {
  hostPath: string;
  /** Where it appears in the guest; default: the same path as on the host. */
  guestPath?: string;
  readOnly?: boolean;
}

/** What a share shows: the wire's shape (contract.ts holds the schema and its field notes). */
export type ShareView = ShareViewWire;

const SSHFS_ONLY: ShareRoute = { mechanism: 'reverse-sshfs', reason: 'reverse sshfs is the only mechanism here' };

export const guestPathOf = (s: ShareSetting) => s.guestPath ?? s.hostPath;

/**
 * One shared folder mounted in the guest, by one of two mechanisms:
 * - virtiofs: the VM has a virtio-fs device for it (made at boot, see
 *   virtiofs.ts); the guest mounts it by tag. Nothing to keep alive on our
 *   side: a dropped ssh link leaves it mounted. If it cannot be mounted, or
 *   its file server goes (QEMU's virtiofsd exited), the share falls back to
 *   reverse sshfs until the next restart, and says why.
 * - reverse sshfs: the guest's `sshfs -o slave` runs under an exec channel
 *   and the engine serves SFTP on it. When the channel dies (the ssh link
 *   dropped, sshfs crashed) the mount is lazily detached in the guest and
 *   made again as soon as the link is back.
 */
class ShareMount {
  state: ShareState = 'mounting';
  error?: string;
  hint?: string;
  private sftp?: SftpSession;
  private stopping = false;
  private loop?: Promise<void>;
  private firstAttempt!: Promise<void>;
  private settleFirst!: () => void;
  /** While a virtiofs mount stands: ends the wait with why it is lost (undefined: stopping). */
  private lose?: (why: string | undefined) => void;
  private lostReason?: string;

  constructor(
    readonly share: ShareSetting,
    private route: ShareRoute,
    private readonly session: GuestSession,
    private readonly log: Logger,
    private readonly changed: () => void,
    private readonly onMutate?: (hostPath: string) => void,
  ) {
    this.firstAttempt = new Promise((r) => (this.settleFirst = r));
  }

  get tag(): string | undefined {
    return this.route.mechanism === 'virtiofs' ? this.route.tag : undefined;
  }

  /** The virtio-fs device went away: reverse sshfs from now on. */
  virtiofsLost(reason: string): void {
    if (this.route.mechanism !== 'virtiofs') return;
    this.lostReason = reason;
    this.lose?.(reason);
  }

  private fallBack(why: string): void {
    this.log.warn({ share: this.guestPath, why }, 'shared folder: falling back to reverse sshfs');
    this.route = { mechanism: 'reverse-sshfs', reason: `${why}; reverse sshfs until the next restart` };
    this.changed();
  }

  get guestPath(): string {
    return guestPathOf(this.share);
  }

  /** Start mounting (and remounting); resolves after the first attempt settled. */
  start(): Promise<void> {
    this.loop ??= this.run();
    return this.firstAttempt;
  }

  private set(state: ShareState, error?: string, hint?: string): void {
    if (this.state === state && this.error === error) return;
    this.state = state;
    this.error = error;
    this.hint = hint;
    this.changed();
  }

  private async run(): Promise<void> {
    let delay = 500;
    while (!this.stopping) {
      if (this.route.mechanism === 'virtiofs') {
        try {
          await this.mountVirtiofs();
        } catch (err) {
          if (this.stopping) break;
          this.fallBack(`the virtiofs mount failed (${(err as Error).message})`);
          continue;
        }
        this.settleFirst();
        const why = this.lostReason ?? (await new Promise<string | undefined>((r) => (this.lose = r)));
        this.lose = undefined;
        if (this.stopping || why === undefined) break;
        this.set('mounting');
        // Requests to a device whose server is gone would hang: detach it
        // (the umount itself may wait forever for the device; the path is
        // free at once). What is still pending on it, and a VM-wide sync,
        // waits until the VM restarts: the reason says so.
        void detachMount(this.session, this.guestPath);
        await sleep(500);
        if (this.stopping) break;
        this.fallBack(`${why} (restart the VM soon with \`berth restart\`: until then, anything still waiting on the old device, and a VM-wide sync, hangs)`);
        continue;
      }
      try {
        await this.mountOnce();
        delay = 500;
        this.settleFirst();
        await this.sftp!.closed;
        if (this.stopping) break;
        this.log.warn({ share: this.guestPath }, 'shared folder channel closed; mounting again');
        this.set('mounting');
      } catch (err) {
        const info = toErrorInfo(err);
        this.log.warn({ share: this.guestPath, err: info.message }, 'mounting a shared folder failed');
        this.set('error', info.message, info.hint);
        this.settleFirst();
        if (this.stopping) break;
        await sleep(delay);
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  private async mountOnce(): Promise<void> {
    const { hostPath, readOnly } = this.share;
    const guest = this.guestPath;
    const st = await fsp.stat(hostPath).catch(() => undefined);
    if (!st?.isDirectory()) {
      throw new BerthError(
        'INVALID_HOST_PATH',
        `the shared folder ${hostPath} does not exist on this computer`,
        'Create it, or stop sharing it with `berth share rm`. Berth mounts it as soon as it exists.',
      );
    }
    const prep = await prepareFuseMountPoint(this.session, guest);
    if (prep.code !== 0) {
      throw new BerthError(
        'SHARE_MOUNT_FAILED',
        `cannot create the mount point ${guest} in the VM: ${prep.stderr.trim()}`,
        'Pick another guest path with `berth share add PATH --guest-path ...`.',
      );
    }
    const { serveSftp } = await import('./sftp-server.js');
    const ch = await this.session.openExec(`exec ${sshfsCommand(guest, guest, { readOnly })}`);
    let stderr = '';
    ch.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    this.sftp = await serveSftp(ch, { root: hostPath, remoteRoot: guest, readOnly, log: this.log, onMutate: this.onMutate });
    // Mounted once the guest kernel lists it (sshfs mounts after the SFTP handshake).
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (await isMounted(this.session, guest, { type: 'fuse' })) break;
      if (Date.now() > deadline || this.stopping) {
        await this.sftp.close().catch(() => undefined);
        throw new BerthError(
          'SHARE_MOUNT_FAILED',
          `the shared folder ${hostPath} did not mount at ${guest} in the VM${stderr ? `: ${stderr.trim().split('\n').pop()}` : ''}`,
          '`berth logs --guest` may say why; Berth tries again by itself, and `berth restart` starts over.',
        );
      }
      await sleep(100);
    }
    this.log.info({ share: guest, host: hostPath, readOnly: !!readOnly }, 'shared folder mounted (reverse sshfs)');
    this.set('mounted');
  }

  /** Mount the share's virtio-fs device by tag (already mounted after a reattach: kept). */
  private async mountVirtiofs(): Promise<void> {
    if (this.lostReason) throw new Error(this.lostReason);
    const { hostPath, readOnly } = this.share;
    const guest = this.guestPath;
    const tag = this.route.tag!;
    const st = await fsp.stat(hostPath).catch(() => undefined);
    if (!st?.isDirectory()) throw new Error(`the shared folder ${hostPath} does not exist on this computer`);
    const r = await mountVirtiofs(this.session, tag, guest, !!readOnly);
    if (r.code !== 0) throw new Error((r.stderr.trim() || r.stdout.trim() || `exit status ${r.code}`).split('\n').pop());
    this.log.info({ share: guest, host: hostPath, tag, readOnly: !!readOnly }, 'shared folder mounted (virtiofs)');
    this.set('mounted');
  }

  async stop(unmountInGuest: boolean): Promise<void> {
    this.stopping = true;
    this.lose?.(undefined);
    if (unmountInGuest && this.state === 'mounted' && this.route.mechanism === 'virtiofs') {
      // Only our own device at exactly that path.
      await unmountVirtiofs(this.session, this.route.tag!, this.guestPath);
    } else if (unmountInGuest && this.state === 'mounted') {
      await fuseUnmount(this.session, this.guestPath);
    }
    await this.sftp?.close().catch(() => undefined);
    this.settleFirst();
  }

  view(): ShareView {
    const v: ShareView = {
      hostPath: this.share.hostPath,
      guestPath: this.guestPath,
      readOnly: !!this.share.readOnly,
      mechanism: this.route.mechanism,
      mechanismReason: this.route.reason,
      state: this.state,
    };
    if (this.error) v.error = this.error;
    if (this.hint) v.hint = this.hint;
    return v;
  }
}

/**
 * Keeps the guest's mounts equal to the shared folders in settings. Mounts
 * are live: adding or removing a share needs no restart.
 */
export class ShareManager extends EventEmitter<{ change: [ShareView[]] }> {
  private mounts = new Map<string, ShareMount>();

  constructor(
    private readonly session: GuestSession,
    private readonly log: Logger,
    private readonly shares: () => ShareSetting[],
    /** Told about every change the guest makes through a share (host path). */
    private readonly onMutate?: (hostPath: string) => void,
    /** How each share is mounted (virtiofs.ts routeOf); default reverse sshfs. */
    private readonly route: (s: ShareSetting) => ShareRoute = () => SSHFS_ONLY,
    /** Adds what the views say beyond the mounts (share-activity.ts adviseShares). */
    private readonly advise: (views: ShareView[]) => ShareView[] = (v) => v,
  ) {
    super();
  }

  /** A virtio-fs device's file server went away: those shares fall back to reverse sshfs. */
  virtiofsLost(tag: string, reason: string): void {
    for (const m of this.mounts.values()) if (m.tag === tag) m.virtiofsLost(reason);
  }

  /** Mount every share; resolves once each has mounted or failed once. */
  async start(): Promise<void> {
    await this.refresh();
  }

  async refresh(): Promise<void> {
    const want = new Map(this.shares().map((s) => [shareKey(s), s]));
    const gone = [...this.mounts].filter(([k]) => !want.has(k));
    for (const [k, m] of gone) {
      this.mounts.delete(k);
      await m.stop(true);
    }
    const added: ShareMount[] = [];
    // Parents before children, so a nested share mounts on top of its parent.
    for (const [k, s] of [...want].sort((a, b) => guestPathOf(a[1]).length - guestPathOf(b[1]).length)) {
      if (this.mounts.has(k)) continue;
      const m = new ShareMount(s, this.route(s), this.session, this.log, () => this.emit('change', this.list()), this.onMutate);
      this.mounts.set(k, m);
      added.push(m);
      await m.start();
    }
    if (gone.length || added.length) this.emit('change', this.list());
  }

  list(): ShareView[] {
    return this.advise([...this.mounts.values()].map((m) => m.view()));
  }

  async stop(): Promise<void> {
    const all = [...this.mounts.values()];
    this.mounts.clear();
    await Promise.all(all.map((m) => m.stop(false)));
  }
}
