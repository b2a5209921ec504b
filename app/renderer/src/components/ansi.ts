import Anser from 'anser';

/**
 * A log line with ANSI colour codes as styled segments of plain text, for
 * React to render as text (never as HTML: the line comes from a
 * container). anser reads the SGR codes (16, 256 and 24-bit colours, bold,
 * italic, ...); every other escape sequence and control character is
 * dropped, so no raw escape code ever reaches the screen.
 */
export interface Segment {
  text: string;
  /** CSS colours ("rgb(…)"), when the line set one. */
  fg?: string;
  bg?: string;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
  strike?: boolean;
}

// OSC (titles, hyperlinks) and other string sequences anser would leave in the text.
const STRING_SEQ = /\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?/g;
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f\x9b]/g;
const RGB = /^(\d{1,3}), ?(\d{1,3}), ?(\d{1,3})$/;

/**
 * The 16 standard colours, as anser names them (rgb), in a palette
 * readable on the log's dark background (anser's own blue and black are
 * not).
 */
const PALETTE: Record<string, string> = {
  '0, 0, 0': '#8b949e',
  '187, 0, 0': '#ff7b72',
  '0, 187, 0': '#3fb950',
  '187, 187, 0': '#d29922',
  '0, 0, 187': '#58a6ff',
  '187, 0, 187': '#bc8cff',
  '0, 187, 187': '#39c5cf',
  '255, 255, 255': '#f0f6fc',
  '85, 85, 85': '#b1bac4',
  '255, 85, 85': '#ffa198',
  '0, 255, 0': '#56d364',
  '255, 255, 85': '#e3b341',
  '0, 0, 255': '#79c0ff',
  '255, 85, 255': '#d2a8ff',
  '85, 255, 255': '#56d4dd',
};

function colour(v: string | null | undefined, background: boolean): string | undefined {
  if (!v) return undefined;
  if (!background && PALETTE[v]) return PALETTE[v];
  const m = RGB.exec(v);
  return m ? `rgb(${m[1]}, ${m[2]}, ${m[3]})` : undefined;
}

/** The text without any escape sequence or control character (for search and download). */
export function plainText(line: string): string {
  if (!/[\x00-\x08\x0b-\x1f\x7f\x9b]/.test(line)) return line;
  return ansiSegments(line)
    .map((s) => s.text)
    .join('');
}

export function ansiSegments(line: string): Segment[] {
  if (!/[\x00-\x08\x0b-\x1f\x7f\x9b]/.test(line)) return line ? [{ text: line }] : [];
  const out: Segment[] = [];
  for (const e of Anser.ansiToJson(line.replace(STRING_SEQ, ''), { json: true, remove_empty: true })) {
    const text = e.content.replace(CONTROL, '');
    if (!text) continue;
    const s: Segment = { text };
    const fg = colour(e.fg_truecolor || e.fg, false);
    const bg = colour(e.bg_truecolor || e.bg, true);
    if (fg) s.fg = fg;
    if (bg) s.bg = bg;
    for (const d of e.decorations ?? []) {
      if (d === 'bold') s.bold = true;
      else if (d === 'dim') s.dim = true;
      else if (d === 'italic') s.italic = true;
      else if (d === 'underline') s.underline = true;
      else if (d === 'strikethrough') s.strike = true;
    }
    out.push(s);
  }
  return out;
}
