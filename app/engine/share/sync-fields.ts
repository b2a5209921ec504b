/**
 * The guest's answers to the sync, as NUL-ended fields, and their limits:
 * what the agent run alone (sync-guest.ts) and the kept agent
 * (sync-agent-link.ts) both send.
 */
/**
 * The longest field the agent may send: a path (Linux allows 4,096 bytes),
 * a link target, a signature. A longer one is a broken or hostile guest.
 */
export const MAX_FIELD_BYTES = 64 * 1024;

/** Guest output over a limit: the channel is closed and the run fails. */
export class GuestOutputTooLong extends Error {}

/** Splits a byte stream into NUL-terminated UTF-8 fields, none longer than `maxField` bytes. */
export class NulFields {
  private rest: Buffer = Buffer.alloc(0);
  constructor(private readonly maxField = MAX_FIELD_BYTES) {}
  /** Throws GuestOutputTooLong when a field grows past the limit (nothing more is kept). */
  push(chunk: Buffer, onField: (f: string) => void): void {
    let buf = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    let i: number;
    while ((i = buf.indexOf(0)) >= 0) {
      if (i > this.maxField) break;
      onField(buf.subarray(0, i).toString('utf8'));
      buf = buf.subarray(i + 1);
    }
    if (buf.length > this.maxField) {
      this.rest = Buffer.alloc(0);
      throw new GuestOutputTooLong(`the guest sent a field over ${this.maxField} bytes`);
    }
    this.rest = Buffer.from(buf);
  }
}
