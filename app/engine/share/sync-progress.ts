/**
 * How far the first copy of a synced folder has come (files and bytes sent
 * to the guest), for `berth sync` and the dashboard while it is made. Later
 * cycles report nothing here: their changes show in the session's view.
 */
import type { SyncView } from './sync-state.js';
import type { TransferProgress } from './sync-transfer.js';

/** Emit a change at most this often while bytes go out. */
const EMIT_EVERY_MS = 500;

export class FirstCopyProgress {
  private now?: SyncView['initial'];

  constructor(
    private readonly o: {
      /** The first copy was made before (a later cycle): nothing to report. */
      done: () => boolean;
      /** The first copy starts: the session shows it as copying. */
      copying: () => void;
      changed: () => void;
      /** A batch landed: the session saves its state (a restart goes on from there). */
      landed: () => Promise<void>;
    },
  ) {}

  /** What to show, while a first copy goes on. */
  view(): SyncView['initial'] | undefined {
    return this.now ? { ...this.now } : undefined;
  }

  /** A cycle ended: the first copy, if this was it, is made. */
  end(): void {
    this.now = undefined;
  }

  /** The callbacks for one cycle's transfer. */
  forCycle(): TransferProgress {
    let lastEmit = 0;
    return {
      starting: (totalFiles, totalBytes) => {
        if (this.o.done()) return;
        this.now = { files: 0, totalFiles, bytes: 0, totalBytes };
        this.o.copying();
      },
      sent: (bytes) => {
        if (!this.now) return;
        this.now.bytes = Math.min(this.now.bytes + bytes, this.now.totalBytes);
        if (Date.now() - lastEmit > EMIT_EVERY_MS) {
          lastEmit = Date.now();
          this.o.changed();
        }
      },
      landed: async (files) => {
        if (!this.now) return;
        this.now.files = Math.min(this.now.totalFiles, this.now.files + files);
        this.o.changed();
        await this.o.landed();
      },
    };
  }
}
