/**
 * Limits on what a client may send across the contract, shared by the
 * control socket, the dashboard's WebSocket and the UI gateway. Beyond
 * them a request is refused with BAD_REQUEST before anything looks at it.
 */

/**
 * How deeply a request's JSON may nest. The contract's deepest params are
 * a few levels; without a bound, a small request nested a hundred thousand
 * levels deep makes JSON.stringify (and anything recursive) overflow the
 * stack when it is passed on.
 */
export const MAX_JSON_DEPTH = 32;

/** True when `value` nests arrays/objects deeper than `max` (checked without recursion). */
export function nestedTooDeep(value: unknown, max = MAX_JSON_DEPTH): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d >= max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push([child, d + 1]);
    }
  }
  return false;
}

export const TOO_DEEP = {
  code: 'BAD_REQUEST' as const,
  message: `the request nests deeper than ${MAX_JSON_DEPTH} levels`,
  hint: "Requests are flat JSON objects; see the contract for each method's params.",
};
