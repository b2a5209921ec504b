/**
 * One sync agent kept running in the guest for a synced folder's looks and
 * changes (programs/sync-agent.pl `serve`), so that a single edit costs one
 * write and one answer on a channel already open. Started afresh, each look
 * or change paid an ssh exec and Perl's start-up: under TCG here 64-75 ms
 * for the exec and about 210 ms more for the agent, for every edit.
 *
 * Requests go one at a time. The channel is closed after IDLE_MS without a
 * request (nothing is left running in the guest once a folder is no longer
 * synced, or quiet) and opened again by the next one. A request whose
 * channel cannot open, or ends before its answer, fails with
 * AgentUnavailable and its caller runs it the old way. What the guest
 * answers is checked as any guest output is: a malformed answer, a field
 * over MAX_FIELD_BYTES or more fields than asked for closes the channel and
 * fails the request.
 */
import type { ClientChannel } from 'ssh2';
import type { GuestSession } from '../guest/session.js';
import { GuestOutputTooLong, MAX_FIELD_BYTES, NulFields } from './sync-fields.js';

/** A quiet agent is stopped after this long (the next request starts it again). */
export const IDLE_MS = 30_000;
/** The longest error text kept from an `err` answer. */
const MAX_ERROR = 4000;

export type AgentRequest = 'look' | 'hash' | 'apply' | 'push' | 'pull';

/** The agent could not be reached, or went away before it answered: run the request on its own. */
export class AgentUnavailable extends Error {}

export interface AgentAnswer {
  ok: boolean;
  /** ok: the fields the request's mode prints. */
  fields: string[];
  /** ok, for a request asked `raw`: the answer's bytes as they came (a pull's tar). */
  body?: Buffer;
  /** not ok: why, as the agent said. */
  error: string;
}

export class SyncAgentLink {
  private channel?: Promise<ClientChannel>;
  /** The channel `channel` opened. */
  private current?: ClientChannel;
  private tail: Promise<unknown> = Promise.resolve();
  private idle?: NodeJS.Timeout;
  /** Requests answered over the kept channel (tests and the bench read it). */
  answered = 0;

  constructor(
    private readonly session: GuestSession,
    /** The command that starts the agent's `serve` mode on the copy (sync-guest.ts agentCommand). */
    private readonly command: string,
    private readonly idleMs = IDLE_MS,
  ) {}

  /**
   * Run one request (`input` is what the mode reads on stdin when run
   * alone). Its answer is NUL fields, at most `maxFields`; or, with `raw`,
   * bytes kept as they are, at most `raw` of them.
   */
  request(mode: AgentRequest, stage: string, input: Buffer, maxFields: number, raw?: number): Promise<AgentAnswer> {
    const run = this.tail.then(() => this.once(mode, stage, input, maxFields, raw));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Stop the agent (it ends at the end of its input). */
  close(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    const ch = this.channel;
    this.channel = undefined;
    this.current = undefined;
    void ch?.then((c) => c.end()).catch(() => undefined);
  }

  private forget(ch: ClientChannel): void {
    if (this.current !== ch) return;
    this.current = undefined;
    this.channel = undefined;
  }

  private open(): Promise<ClientChannel> {
    if (!this.channel) {
      const opening = this.session.openExec(this.command).then((ch) => {
        ch.stderr.resume();
        ch.on('close', () => this.forget(ch));
        if (this.channel === opening) this.current = ch;
        return ch;
      });
      opening.catch(() => {
        if (this.channel === opening) this.channel = undefined;
      });
      this.channel = opening;
    }
    return this.channel;
  }

  private async once(mode: AgentRequest, stage: string, input: Buffer, maxFields: number, raw?: number): Promise<AgentAnswer> {
    if (this.idle) clearTimeout(this.idle);
    let ch: ClientChannel;
    try {
      ch = await this.open();
    } catch (err) {
      throw new AgentUnavailable(`cannot start the sync agent: ${(err as Error).message}`);
    }
    const head = Buffer.from(`${mode}\0${stage}\0`, 'utf8');
    const answer = await new Promise<AgentAnswer>((resolve, reject) => {
      let header = '';
      let status: 'ok' | 'err' | undefined;
      let left = 0;
      let error = '';
      const fields: string[] = [];
      const chunks: Buffer[] = [];
      const nul = new NulFields(MAX_FIELD_BYTES);
      const done = (err?: Error, a?: AgentAnswer) => {
        ch.off('data', onData);
        ch.off('close', onClose);
        if (err) {
          // This channel is done with: the next request opens another at once.
          this.forget(ch);
          ch.close();
          reject(err);
        } else resolve(a!);
      };
      const body = (b: Buffer) => {
        left -= b.length;
        if (status === 'err') error = (error + b.toString('utf8')).slice(0, MAX_ERROR);
        else if (raw !== undefined) chunks.push(b);
        else
          nul.push(b, (f) => {
            if (fields.length >= maxFields) throw new GuestOutputTooLong(`the sync agent sent more than ${maxFields} fields`);
            fields.push(f);
          });
      };
      const onData = (d: Buffer) => {
        try {
          let rest = d;
          if (!status) {
            const nl = rest.indexOf(10);
            header += rest.subarray(0, nl < 0 ? rest.length : nl).toString('latin1');
            if (header.length > 20) throw new Error('the sync agent sent a malformed answer');
            if (nl < 0) return;
            const m = /^(ok|err) (\d{1,12})$/.exec(header);
            if (!m) throw new Error('the sync agent sent a malformed answer');
            status = m[1] as 'ok' | 'err';
            left = Number(m[2]);
            if (status === 'ok' && raw !== undefined && left > raw) throw new GuestOutputTooLong(`the sync agent's answer is over ${raw} bytes`);
            rest = rest.subarray(nl + 1);
          }
          if (rest.length > left) throw new Error('the sync agent sent more than its answer');
          body(rest);
          if (left > 0) return;
          done(undefined, { ok: status === 'ok', fields, error: error.trim(), ...(raw !== undefined && { body: Buffer.concat(chunks) }) });
        } catch (err) {
          done(err as Error);
        }
      };
      const onClose = () => done(new AgentUnavailable('the sync agent ended before it answered'));
      ch.on('data', onData);
      ch.on('close', onClose);
      ch.write(`${head.length + input.length}\n`);
      ch.write(head);
      ch.write(input);
    });
    this.answered++;
    this.idle = setTimeout(() => this.close(), this.idleMs);
    this.idle.unref?.();
    return answer;
  }
}
