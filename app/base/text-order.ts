/**
 * Order names (container, volume, label, protocol) case-insensitively, lower
 * case first where only case differs, without the ICU collator behind
 * String#localeCompare: the first localeCompare maps ICU's collation data into the engine, about
 * 2 MiB of resident memory it then keeps at idle (bench/engine-idle.ts).
 * The names sorted here are Docker's and Berth's own, ASCII in practice;
 * for those ([a-zA-Z0-9][a-zA-Z0-9_.-]*) the order is localeCompare's.
 */
export function compareText(a: string, b: string): number {
  const la = key(a);
  const lb = key(b);
  if (la !== lb) return la < lb ? -1 : 1;
  return a > b ? -1 : a < b ? 1 : 0;
}

/** Lower case, and '_' before '-' and '.' as in ICU's root collation (',' sorts there and is not in Docker names). */
function key(s: string): string {
  return s.toLowerCase().replaceAll('_', ',');
}
