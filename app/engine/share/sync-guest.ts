/**
 * The guest side of a synced folder, driven over the ssh session:
 *
 * - a small Perl agent (programs/sync-agent.pl; Perl is in the guest
 *   image) scans the guest copy and applies changes with the just-in-time
 *   check (the target must still be what the scan saw), reporting each
 *   result and the new signature;
 * - file contents travel as tar streams: GNU tar in the guest, node-tar on
 *   the host. Files for the guest are unpacked into a staging folder next to
 *   the copy and renamed into place by the agent, so a container never sees
 *   half a file;
 * - inotifywait (inotify-tools) tells the engine when something changed.
 *
 * Every signature of the guest's side is made by the agent's one `ent`
 * function, so a scan and the result of a change always agree.
 */
import { EventEmitter } from 'node:events';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { ClientChannel } from 'ssh2';
import type { GuestSession } from '../guest/session.js';
import type { Entry, EntryKind, Snapshot } from './sync-plan.js';
import { SYNC_TEMP_PREFIX } from '../settings/sync-paths.js';
import { perlCommand } from '../guest/programs.js';
import { sh } from '../../base/shell-quote.js';
import { AgentUnavailable, SyncAgentLink, type AgentRequest } from './sync-agent-link.js';
import { GuestOutputTooLong, NulFields } from './sync-fields.js';

/** The shell command that runs the agent (programs/sync-agent.pl) in `mode` on `root`. */
export function agentCommand(mode: 'scan' | 'look' | 'hash' | 'apply' | 'push' | 'serve', root: string, stage = ''): string {
  return perlCommand('sync-agent.pl', [mode, root, stage || root, SYNC_TEMP_PREFIX]);
}

export { GuestOutputTooLong, MAX_FIELD_BYTES, NulFields } from './sync-fields.js';
/** The most entries a scan may report (4 fields each); a bigger tree is refused, not buffered. */
export const MAX_SCAN_ENTRIES = 2_000_000;

/** Turn the agent's scan output (kind, path, sig, extra per entry) into a snapshot. */
export function parseScan(fields: string[]): Snapshot {
  const snap: Snapshot = new Map();
  for (let i = 0; i + 3 < fields.length; i += 4) {
    const kind = fields[i] as EntryKind;
    const p = fields[i + 1]!;
    const sig = fields[i + 2]!;
    const extra = fields[i + 3]!;
    const e: Entry = { kind, sig };
    if (kind === 'file') e.size = Number(extra);
    if (kind === 'link') e.target = extra;
    snap.set(p, e);
  }
  return snap;
}

export interface GuestRun {
  code: number | null;
  stderr: string;
}

/**
 * Run a guest command, feeding `input`, handing stdout's NUL fields to
 * `onField`. Output over the limits (a field over MAX_FIELD_BYTES, more
 * than `maxFields` fields) closes the channel and rejects.
 */
export async function runGuest(
  session: GuestSession,
  command: string,
  input: Buffer | Readable | undefined,
  onField?: (f: string) => void,
  onStdout?: (chunk: Buffer) => void,
  maxFields = Infinity,
): Promise<GuestRun> {
  // A stream's error while the channel opens (a file gone before tar read
  // it) would otherwise have no listener: keep it for below.
  let inputError: Error | undefined;
  const early = (err: Error) => (inputError ??= err);
  if (input && !Buffer.isBuffer(input)) input.on('error', early);
  const ch = await session.openExec(command).catch((err: unknown) => {
    if (input && !Buffer.isBuffer(input)) input.destroy();
    throw err;
  });
  return new Promise((resolve, reject) => {
    const fields = new NulFields();
    let stderr = '';
    let count = 0;
    let over = false;
    ch.on('data', (d: Buffer) => {
      if (over) return;
      if (onStdout) return void onStdout(d);
      if (!onField) return;
      try {
        fields.push(d, (f) => {
          if (++count > maxFields) throw new GuestOutputTooLong(`the guest sent more than ${maxFields} fields`);
          onField(f);
        });
      } catch (err) {
        over = true;
        ch.close();
        reject(err);
      }
    });
    ch.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    ch.on('close', () => resolve({ code: ch.exitCode ?? null, stderr }));
    ch.on('error', reject);
    if (input === undefined) ch.end();
    else if (Buffer.isBuffer(input)) ch.end(input);
    else {
      const failed = (err: Error) => {
        ch.close();
        reject(err);
      };
      input.off('error', early);
      input.on('error', failed);
      if (inputError) failed(inputError);
      else input.pipe(ch);
    }
  });
}

/** The kept agent of each guest copy (sync-agent-link.ts), per ssh session. */
const links = new WeakMap<GuestSession, Map<string, SyncAgentLink>>();

export function agentLink(session: GuestSession, root: string): SyncAgentLink {
  let byRoot = links.get(session);
  if (!byRoot) links.set(session, (byRoot = new Map()));
  let link = byRoot.get(root);
  if (!link) byRoot.set(root, (link = new SyncAgentLink(session, agentCommand('serve', root))));
  return link;
}

/**
 * A request to the guest copy's kept agent; where it cannot be reached, the
 * agent run on its own (`command`, the same input) as before.
 */
async function viaAgent(
  session: GuestSession,
  root: string,
  req: { mode: AgentRequest; stage?: string; input: Buffer; maxFields: number; command: string },
  onField: (f: string) => void,
): Promise<GuestRun> {
  try {
    const a = await agentLink(session, root).request(req.mode, req.stage ?? root, req.input, req.maxFields);
    if (!a.ok) return { code: 1, stderr: a.error };
    for (const f of a.fields) onField(f);
    return { code: 0, stderr: '' };
  } catch (err) {
    if (!(err instanceof AgentUnavailable)) throw err;
    return runGuest(session, req.command, req.input, onField, undefined, req.maxFields);
  }
}

export async function scanGuest(session: GuestSession, root: string): Promise<Snapshot> {
  const fields: string[] = [];
  const r = await runGuest(session, agentCommand('scan', root), undefined, (f) => fields.push(f), undefined, MAX_SCAN_ENTRIES * 4);
  if (r.code !== 0) throw new Error(`scanning the guest copy ${root} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  return parseScan(fields);
}

/**
 * What the guest copy holds at some paths only (see Scope): each path in
 * `deep` with everything under it, each in `shallow` alone. The same
 * signatures as scanGuest (the agent's one `ent`).
 */
export async function lookGuest(session: GuestSession, root: string, deep: string[], shallow: string[]): Promise<Snapshot> {
  const input = Buffer.from([...deep.map((p) => `d\0${p}\0`), ...shallow.map((p) => `s\0${p}\0`)].join(''), 'utf8');
  const fields: string[] = [];
  const r = await viaAgent(session, root, { mode: 'look', input, maxFields: MAX_SCAN_ENTRIES * 4, command: agentCommand('look', root) }, (f) => fields.push(f));
  if (r.code !== 0) throw new Error(`looking in the guest copy ${root} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  return parseScan(fields);
}

export async function hashGuest(session: GuestSession, root: string, paths: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!paths.length) return out;
  const fields: string[] = [];
  const input = Buffer.from(paths.map((p) => `${p}\0`).join(''), 'utf8');
  const r = await viaAgent(session, root, { mode: 'hash', input, maxFields: paths.length * 2, command: agentCommand('hash', root) }, (f) => fields.push(f));
  if (r.code !== 0) throw new Error(`hashing in the guest failed: ${r.stderr.trim()}`);
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i + 1]) out.set(fields[i]!, fields[i + 1]!);
  return out;
}

export type GuestOp =
  | { op: 'save'; path: string; to: string; expect: Entry }
  | { op: 'del'; path: string; expect: Entry }
  | { op: 'mkdir'; path: string }
  | { op: 'place'; path: string; expect?: Entry }
  | { op: 'link'; path: string; target: string; expect?: Entry };

export interface OpResult {
  status: 'ok' | 'skip' | 'err';
  path: string;
  /** ok place/link: the new signature; skip/err: why. */
  info: string;
}

const exp = (e?: Entry) => [e?.kind ?? '', e?.sig ?? ''];

export function encodeOps(ops: GuestOp[]): Buffer {
  const fields: string[] = [];
  for (const o of ops) {
    switch (o.op) {
      case 'save':
        fields.push('save', o.path, o.to, ...exp(o.expect));
        break;
      case 'del':
        fields.push('del', o.path, ...exp(o.expect));
        break;
      case 'mkdir':
        fields.push('mkdir', o.path);
        break;
      case 'place':
        fields.push('place', o.path, ...exp(o.expect));
        break;
      case 'link':
        fields.push('link', o.path, o.target, ...exp(o.expect));
        break;
    }
  }
  return Buffer.from(fields.map((f) => `${f}\0`).join(''), 'utf8');
}

/** Apply `ops` in order in the guest copy; one result per op. */
export async function applyGuest(session: GuestSession, root: string, stage: string, ops: GuestOp[]): Promise<OpResult[]> {
  if (!ops.length) return [];
  const fields: string[] = [];
  const r = await viaAgent(
    session,
    root,
    { mode: 'apply', stage, input: encodeOps(ops), maxFields: ops.length * 3, command: agentCommand('apply', root, stage) },
    (f) => fields.push(f),
  );
  const out: OpResult[] = [];
  for (let i = 0; i + 2 < fields.length; i += 3) out.push({ status: fields[i] as OpResult['status'], path: fields[i + 1]!, info: fields[i + 2]! });
  if (r.code !== 0 && out.length < ops.length) throw new Error(`applying changes in the guest failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  return out;
}

/** Pushes and pulls whose files hold at most this many bytes go through the kept agent (their tar in memory). */
export const KEPT_BYTES = 4 * 2 ** 20;

/**
 * Files and links into the guest copy in one round trip: the agent reads
 * `ops`, unpacks `tar` (a tar stream of the files) into the new staging
 * folder `stage`, applies the ops (`place` from there) and removes `stage`.
 * `bytes` (the files' sizes) at most KEPT_BYTES: through the kept
 * agent; more streams to an agent of its own.
 */
export async function pushGuest(session: GuestSession, root: string, stage: string, ops: GuestOp[], tar: Readable, bytes = Infinity): Promise<OpResult[]> {
  const enc = encodeOps(ops);
  const fields: string[] = [];
  const command = agentCommand('push', root, stage);
  let r: GuestRun;
  if (bytes <= KEPT_BYTES) {
    const chunks: Buffer[] = [Buffer.from(`${enc.length}\n`), enc];
    for await (const c of tar) chunks.push(c as Buffer);
    r = await viaAgent(session, root, { mode: 'push', stage, input: Buffer.concat(chunks), maxFields: ops.length * 3, command }, (f) => fields.push(f));
  } else {
    const input = new PassThrough();
    input.write(`${enc.length}\n`);
    input.write(enc);
    pipeline(tar, input, () => undefined); // an error of tar's destroys input: runGuest rejects
    r = await runGuest(session, command, input, (f) => fields.push(f), undefined, ops.length * 3);
  }
  const out: OpResult[] = [];
  for (let i = 0; i + 2 < fields.length; i += 3) out.push({ status: fields[i] as OpResult['status'], path: fields[i + 1]!, info: fields[i + 2]! });
  if (r.code !== 0 && out.length < ops.length) throw new Error(`copying files into the guest failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  return out;
}

/**
 * Files of the guest copy as one tar, from the kept agent (no exec, no tar
 * started in the guest): regular files only, their bytes at most `cap` in
 * all (a file that grew past it is left out, as is one gone). The answer is
 * bounded by the cap and the tar's headers; what is in it is the guest's
 * word (receiveTar checks it). Undefined when the agent cannot be reached:
 * the caller runs tar on its own.
 */
export async function pullGuest(session: GuestSession, root: string, paths: string[], cap: number): Promise<Buffer | undefined> {
  const input = Buffer.from([String(cap), ...paths].map((p) => `${p}\0`).join(''), 'utf8');
  // Per file a header, a pax header and its record (a path is at most 4 KiB), padding; the end.
  const most = cap + paths.length * 6 * 512 + Buffer.byteLength(paths.join('')) + 1024;
  try {
    const a = await agentLink(session, root).request('pull', root, input, 0, most);
    if (!a.ok) throw new Error(`reading files from the guest copy failed: ${a.error}`);
    return a.body;
  } catch (err) {
    if (err instanceof AgentUnavailable) return undefined;
    throw err;
  }
}

/** What inotifywait says on stderr once all its watches are in place (not with -q). */
const WATCHES_ESTABLISHED = 'Watches established.';

/**
 * Watches the guest copy with inotifywait and says when something changed.
 * `established` says the watches are in place (each time the channel is
 * opened, again after it drops with an ssh reconnect): a change made before
 * that was not seen, so the owner looks once. Only then, not when the
 * channel opens: inotifywait -r takes a while to watch a big tree.
 */
export class GuestWatcher extends EventEmitter<{ changed: [paths: string[] | undefined]; established: []; unavailable: [string] }> {
  private ch?: ClientChannel;
  private stopped = false;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly session: GuestSession,
    private readonly root: string,
    private readonly log: Logger,
    /** Whether an event (its path under the root, its %e names) is the echo of the sync's own change: then it is dropped. */
    private readonly isEcho: (path: string, kinds: string) => boolean = () => false,
  ) {
    super();
  }

  start(): void {
    this.stopped = false;
    void this.open();
  }

  private async open(): Promise<void> {
    if (this.stopped) return;
    try {
      const ch = await this.session.openExec(
        sh`command -v inotifywait >/dev/null || { echo 'inotifywait is missing in the guest' >&2; exit 127; }; ` +
          sh`exec inotifywait -m -r -e modify,attrib,close_write,move,create,delete --no-newline --format '%e %w%f%0' ${this.root}`,
      );
      if (this.stopped) return void ch.close();
      this.ch = ch;
      let stderr = '';
      let established = false;
      const fields = new NulFields();
      const prefix = `${this.root}/`;
      ch.on('data', (d: Buffer) => {
        // "EVENTS PATH" per event; only a hint of where to look (the look is
        // the agent's). Anything else (an overflow, a path outside the copy,
        // a field too long) asks for a look at everything.
        const paths: string[] = [];
        let all = false;
        try {
          fields.push(d, (f) => {
            const sp = f.indexOf(' ');
            const file = f.slice(sp + 1);
            const kinds = f.slice(0, sp);
            if (sp < 0 || kinds.includes('OVERFLOW') || !file.startsWith(prefix) || file.length === prefix.length) all = true;
            else {
              const p = file.slice(prefix.length).replace(/\/+$/, '');
              if (!this.isEcho(p, kinds)) paths.push(p);
            }
          });
        } catch {
          all = true;
        }
        if (all) this.emit('changed', undefined);
        else if (paths.length) this.emit('changed', paths);
      });
      ch.stderr.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-1000);
        if (established || !stderr.includes(WATCHES_ESTABLISHED)) return;
        established = true;
        stderr = '';
        this.emit('established');
      });
      ch.on('close', () => {
        if (ch.exitCode === 127) this.emit('unavailable', stderr.trim());
        if (this.ch === ch) this.ch = undefined;
        if (this.stopped) return;
        this.log.debug({ root: this.root, stderr: stderr.trim() }, 'guest watcher ended; watching again');
        this.timer = setTimeout(() => void this.open(), 1000);
      });
    } catch (err) {
      if (this.stopped) return;
      this.log.debug({ err: (err as Error).message }, 'cannot start the guest watcher; trying again');
      this.timer = setTimeout(() => void this.open(), 2000);
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.ch?.close();
    this.ch = undefined;
  }
}
