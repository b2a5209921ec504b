/**
 * Text that a POSIX shell reads back as exactly the string given: the one
 * quoting rule for every command the engine sends to the guest (and for the
 * commands the CLI and the desktop app show or run). Guest paths come from
 * users and guests, so nothing is interpolated unquoted.
 */

/** Always single-quoted: `it's` becomes `'it'\''s'`. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Left bare when only safe characters, else single-quoted (for commands a person reads). */
export function shWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : shq(s);
}

/**
 * A command with every interpolation quoted: sh`mkdir -p ${dir}`. An array
 * becomes one word per element; a number is written as it is.
 */
export function sh(parts: TemplateStringsArray, ...values: (string | number | readonly (string | number)[])[]): string {
  let out = parts[0]!;
  values.forEach((v, i) => {
    const words = Array.isArray(v) ? v : [v];
    out += words.map((w) => (typeof w === 'number' ? String(w) : shq(w))).join(' ') + parts[i + 1]!;
  });
  return out;
}
