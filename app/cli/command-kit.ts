import { Command, InvalidArgumentError } from 'commander';
import type { EventData, MethodName, Params, Result, VmStatus } from '../contract/contract.js';
import { isBerthError } from '../contract/errors.js';
import type { ControlClient } from '../client/control-client.js';
import { offlineCall } from '../client/offline.js';
import { instancePaths, type InstancePaths } from '../base/paths.js';
import { ProgressLines } from '../base/progress-lines.js';
import { connectEngine } from './engine-link.js';
import { nearest } from './suggest.js';
import { onStderr as e, printError } from './output.js';

/**
 * What every berth command is built with: its global options, how an action
 * runs (exit codes: 0, 1 for an error with a hint, 2 for usage), JSON and
 * progress output, and the call that goes to the engine or, with none
 * running, to the instance's files.
 */

/** The arguments `main` was called with (shell needs to know where `--` was). */
export const invocation: { argv: string[] } = { argv: [] };

export interface Globals {
  instance: string;
  json?: boolean;
}

export { parseInstance } from './program.js';

export function globals(cmd: Command): Globals {
  return cmd.optsWithGlobals() as Globals;
}

/** Run an action; a BerthError prints message and hint and exits 1. */
export function action<A extends unknown[]>(fn: (g: Globals, paths: InstancePaths, ...args: A) => Promise<number | void>) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const g = globals(cmd);
    try {
      const code = await fn(g, instancePaths(g.instance), ...(args.slice(0, -1) as A));
      process.exitCode = code ?? 0;
    } catch (err) {
      if (err instanceof UsageError) {
        process.stderr.write(`error: ${err.message}\n${cmd.helpInformation()}`);
        process.exitCode = 2;
        return;
      }
      printError(err, !!g.json);
      process.exitCode = 1;
    }
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/**
 * Stream start progress while `call` runs. A counter or timer (the image
 * build's packages) updates one line in place on a terminal.
 */
export async function withProgress(client: ControlClient, json: boolean, call: () => Promise<VmStatus>): Promise<VmStatus> {
  const t0 = Date.now();
  if (json) return call();
  const lines = new ProgressLines({
    write: (t) => process.stderr.write(t),
    tty: process.stderr.isTTY === true,
    columns: () => process.stderr.columns,
    prefix: () => ({ text: `${e.dim(`${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s`)}  `, width: 9 }),
  });
  await client.subscribe((event, data) => {
    if (event !== 'vm.progress') return;
    const p = data as EventData<'vm.progress'>;
    lines.say(p.message, p.step);
  });
  try {
    return await call();
  } finally {
    lines.end();
  }
}

/** A problem that does not stop the command (a broken settings file): on stderr, so --json output stays clean. */
export function printWarning(p: { code: string; message: string; hint: string }): void {
  process.stderr.write(`${e.yellow('warning:')} ${p.message} ${e.dim(`[${p.code}]`)}\n${e.yellow('hint:')} ${p.hint}\n`);
}

/**
 * Through the engine when it runs, else on the instance's files (same
 * validation): the offline path the dashboard uses too (client/offline.ts).
 */
export async function callOrOffline<M extends MethodName>(paths: InstancePaths, m: M, p: Params<M>): Promise<Result<M>> {
  let client: ControlClient | undefined;
  try {
    client = await connectEngine(paths, false);
  } catch (err) {
    if (!isBerthError(err, 'ENGINE_NOT_RUNNING')) throw err;
  }
  try {
    if (client) return await client.call(m, p);
    return (await offlineCall(paths, m, p as Record<string, unknown>, () => connectEngine(paths, true))) as Result<M>;
  } finally {
    client?.close();
  }
}

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number');
  return n;
}

/** Wrong arguments that commander cannot see (exit 2, like its own). */
export class UsageError extends Error {}
export function usage(message: string): UsageError {
  return new UsageError(message);
}

/**
 * A command that does something alone and has subcommands (`berth port`
 * lists, `berth port add` adds): a stray word after it is a mistyped
 * subcommand, said so with a suggestion, not "too many arguments".
 */
export function listsAlone(group: Command): Command {
  return group.allowExcessArguments(true).hook('preAction', (_hooked, actionCmd) => {
    if (actionCmd !== group || !group.args.length) return;
    const word = group.args[0]!;
    const near = nearest(
      word,
      group.commands.map((c) => c.name()),
    );
    group.error(`error: unknown command '${word}'${near ? `\n(Did you mean ${near}?)` : ''}`, { exitCode: 2, code: 'commander.unknownCommand' });
  });
}
