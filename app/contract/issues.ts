import { z } from 'zod';

/**
 * One human message per validation rule, wherever it is checked: the
 * engine's control server, the dashboard's gateway, the CLI's offline path
 * and the settings file. Rules with a message of their own ("must be a
 * port from 1 to 65535") keep it; zod's generic ones ("Too big: expected
 * number to be <=65535") are said the same plain way.
 */

export const PORT_MESSAGE = 'must be a port from 1 to 65535';

/** A TCP/UDP port number, in the contract and in the settings. */
export function portNumber() {
  return z.number().int(PORT_MESSAGE).min(1, PORT_MESSAGE).max(65535, PORT_MESSAGE);
}

const TYPE_WORDS: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  string: 'text',
  array: 'a list',
  object: 'an object',
};

const UNIT: Record<string, [string, string]> = {
  string: ['character', 'characters'],
  array: ['item', 'items'],
  set: ['item', 'items'],
};

function bound(i: { origin?: string; inclusive?: boolean }, n: number | bigint, at: 'most' | 'least'): string {
  const unit = i.origin ? UNIT[i.origin] : undefined;
  const v = Number(n);
  const what = unit ? ` ${v} ${v === 1 ? unit[0] : unit[1]}` : ` ${v}`;
  if (i.inclusive === false) return at === 'most' ? `must be less than${what}` : `must be more than${what}`;
  return `must ${unit ? 'have' : 'be'} at ${at}${what}`;
}

/** zod's generic messages start so; ours start with a lowercase "must …". */
const GENERIC = /^(Invalid|Too big|Too small|Unrecognized key)/;

/** The plain message of one issue. */
export function humanIssue(i: z.core.$ZodIssue): string {
  if (!GENERIC.test(i.message)) return i.message;
  switch (i.code) {
    case 'invalid_type':
      return `must be ${TYPE_WORDS[i.expected] ?? i.expected}`;
    case 'invalid_value':
      return i.values.length === 1 ? `must be ${JSON.stringify(i.values[0])}` : `must be one of ${i.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_big':
      return bound(i, i.maximum, 'most');
    case 'too_small':
      return i.origin === 'string' && Number(i.minimum) === 1 ? 'must not be empty' : bound(i, i.minimum, 'least');
    case 'unrecognized_keys':
      return `${i.keys.map((k) => `"${k}"`).join(', ')} ${i.keys.length === 1 ? 'is not a known key' : 'are not known keys'}`;
    default:
      return i.message;
  }
}

/** One line per problem: "memoryMiB: must be at least 512 MiB; cpus: must be a whole number" (a key it does not know needs no path). */
export function describeIssues(err: z.ZodError): string {
  return err.issues
    .map((i) => {
      if (i.path.length) return `${i.path.join('.')}: ${humanIssue(i)}`;
      return i.code === 'unrecognized_keys' ? humanIssue(i) : `(top level): ${humanIssue(i)}`;
    })
    .join('; ');
}
