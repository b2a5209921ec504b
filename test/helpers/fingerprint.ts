import fs from 'node:fs';
import path from 'node:path';

/** Everything under `dir` with its content, mode, size and mtime: to prove nothing there changed. */
export function fingerprint(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const n of fs.readdirSync(d).sort()) {
      const p = path.join(d, n);
      const st = fs.lstatSync(p);
      const r = rel ? `${rel}/${n}` : n;
      out.push(`${r} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs}${st.isFile() ? ` ${fs.readFileSync(p, 'hex')}` : ''}`);
      if (st.isDirectory()) walk(p, r);
    }
  };
  walk(dir, '');
  return out;
}
