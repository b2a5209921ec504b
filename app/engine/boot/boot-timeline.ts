import type { BootStep, HostBootStep } from '../../contract/boot-timeline.js';
import { placeGuestSteps, readGuestStamps } from '../guest/boot-timeline.js';
import type { GuestSession } from '../guest/session.js';

/**
 * One start's boot timeline: the engine's own steps (VM spawned and up, ssh
 * handshake, dockerd answering, the socket) as they happen, and the guest's
 * steps, read once over the connected session. Times are milliseconds from
 * `begin`, on the engine's monotonic clock.
 */
export class BootTimeline {
  private origin?: number;
  private readonly host = new Map<HostBootStep, number>();
  private guest: BootStep[] = [];

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** A new start: forget the last one. */
  begin(): void {
    this.origin = this.now();
    this.host.clear();
    this.guest = [];
  }

  /** No timeline (a stop, a reattach: the boot was not watched). */
  clear(): void {
    this.origin = undefined;
    this.host.clear();
    this.guest = [];
  }

  private elapsed(): number {
    return this.now() - (this.origin ?? this.now());
  }

  /** The engine reached `step` now (the first time counts). */
  mark(step: HostBootStep): void {
    if (this.origin === undefined || this.host.has(step)) return;
    this.host.set(step, Math.round(this.elapsed()));
  }

  /**
   * Read the guest's stamps. The last guest step (the API listening) is
   * stamped from dockerd's log, which may trail its answering by a moment:
   * with it missing, one more read after `retryMs`. Never throws.
   */
  async readGuest(session: Pick<GuestSession, 'exec'>, o: { retryMs?: number; last?: string } = {}): Promise<void> {
    if (this.origin === undefined) return;
    const last = o.last ?? 'docker-api-listening';
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await readGuestStamps(session, () => this.elapsed());
      if (r) this.guest = placeGuestSteps(r.stamps, r.readAtMs);
      if (!r || this.guest.some((s) => s.step === last)) return;
      await new Promise((res) => setTimeout(res, o.retryMs ?? 300));
    }
  }

  /** The steps so far in the order they happened; undefined without a start. */
  view(): BootStep[] | undefined {
    if (this.origin === undefined) return undefined;
    const host: BootStep[] = [...this.host].map(([step, atMs]) => ({ step, atMs, source: 'host' }));
    // Stable: steps at the same millisecond keep the guest's own order, host steps after.
    return [...this.guest, ...host].sort((a, b) => a.atMs - b.atMs);
  }
}
