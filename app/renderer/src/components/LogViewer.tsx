import { useEffect, useId, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { CallError, useApi } from '../api';
import { ansiSegments, plainText, type Segment } from './ansi';
import { downloadText } from './download';
import { ErrorNote } from './ErrorNote';

const MAX_LINES = 5000;

interface Line {
  n: number;
  ts?: string;
  /** Without escape codes: what Search looks in and Download saves. */
  text: string;
  /** As shown, with the colours the container asked for. */
  segs: Segment[];
  err: boolean;
}

function toLine(n: number, raw: string, err: boolean): Line {
  const { ts, text } = splitTimestamp(raw);
  const line: Line = { n, text: plainText(text), segs: ansiSegments(text), err };
  if (ts) line.ts = ts;
  return line;
}

function SegmentSpan({ s }: { s: Segment }) {
  if (!s.fg && !s.bg && !s.bold && !s.dim && !s.italic && !s.underline && !s.strike) return <>{s.text}</>;
  const deco = [s.underline && 'underline', s.strike && 'line-through'].filter(Boolean).join(' ');
  return (
    <span
      className="ansi"
      style={{
        color: s.fg,
        backgroundColor: s.bg,
        fontWeight: s.bold ? 700 : undefined,
        opacity: s.dim ? 0.7 : undefined,
        fontStyle: s.italic ? 'italic' : undefined,
        textDecoration: deco || undefined,
      }}
    >
      {s.text}
    </span>
  );
}

/** Split Docker's "2024-01-01T00:00:00.123456789Z text" into time and text. */
function splitTimestamp(line: string): { ts?: string; text: string } {
  const m = /^(\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:\d\d)) ?(.*)$/s.exec(line);
  return m ? { ts: m[1], text: m[2]! } : { text: line };
}

/**
 * A container's log, streaming: the last 500 lines, then new ones as they
 * come, ANSI colours shown as coloured text. Follow keeps the newest line
 * in view; Timestamps shows each line's time; Search shows only the lines
 * that contain the text; Download saves the lines shown as plain text.
 * `fill`: take the height of the parent (a drawer) instead of a fixed one.
 */
export function LogViewer({ containerId, name, fill = false }: { containerId: string; name: string; fill?: boolean }) {
  const api = useApi();
  const [lines, setLines] = useState<Line[]>([]);
  const [follow, setFollow] = useState(true);
  const [timestamps, setTimestamps] = useState(false);
  const [search, setSearch] = useState('');
  const [ended, setEnded] = useState(false);
  const [error, setError] = useState<CallError | null>(null);
  const boxRef = useRef<HTMLPreElement>(null);
  const ids = useId();

  useEffect(() => {
    let cancelled = false;
    let stream: string | undefined;
    let off: (() => void) | undefined;
    let n = 0;
    const carry = { stdout: '', stderr: '' };
    let pending: Line[] = [];
    let raf = 0;
    const flush = () => {
      raf = 0;
      const add = pending;
      pending = [];
      setLines((old) => {
        const all = old.concat(add);
        return all.length > MAX_LINES ? all.slice(all.length - MAX_LINES) : all;
      });
    };
    const push = (source: 'stdout' | 'stderr', text: string) => {
      const parts = (carry[source] + text).split('\n');
      carry[source] = parts.pop()!;
      for (const p of parts) pending.push(toLine(n++, p.replace(/\r$/, ''), source === 'stderr'));
      if (!raf) raf = requestAnimationFrame(flush);
    };
    setLines([]);
    setEnded(false);
    setError(null);
    api.call('containers.logs', { id: containerId, follow: true, tail: 500, timestamps: true }).then(
      (r) => {
        if (cancelled) {
          void api.call('containers.logs.stop', { stream: r.stream }).catch(() => undefined);
          return;
        }
        stream = r.stream;
        off = api.stream(r.stream, (event, data) => {
          if (event === 'containers.logs.data') {
            const d = data as { source: 'stdout' | 'stderr'; text: string };
            push(d.source, d.text);
          } else if (event === 'containers.logs.end') {
            for (const s of ['stdout', 'stderr'] as const) if (carry[s]) push(s, '\n');
            const e = (data as { error?: { code: string; message: string; hint: string } }).error;
            if (e) setError(CallError.from(e));
            setEnded(true);
            stream = undefined;
          }
        });
      },
      (err) => !cancelled && setError(CallError.from(err)),
    );
    return () => {
      cancelled = true;
      if (raf) cancelAnimationFrame(raf);
      off?.();
      if (stream) void api.call('containers.logs.stop', { stream }).catch(() => undefined);
    };
  }, [api, containerId]);

  const shown = useMemo(() => {
    const q = search.trim().toLowerCase();
    return q ? lines.filter((l) => l.text.toLowerCase().includes(q)) : lines;
  }, [lines, search]);

  useLayoutEffect(() => {
    const b = boxRef.current;
    if (follow && b) b.scrollTop = b.scrollHeight;
  }, [shown, follow, timestamps]);

  return (
    <div className={fill ? 'log-viewer fill' : 'log-viewer'}>
      <div className="toolbar">
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
        </label>
        <label>
          <input type="checkbox" checked={timestamps} onChange={(e) => setTimestamps(e.target.checked)} /> Timestamps
        </label>
        <label htmlFor={`${ids}-search`}>Search</label>
        <input id={`${ids}-search`} type="search" value={search} onChange={(e) => setSearch(e.target.value)} placeholder="Text in the log" />
        <span className="muted" aria-live="polite">
          {search ? `${shown.length} of ${lines.length} lines` : `${lines.length} lines`}
          {ended ? ' · stream ended' : ''}
        </span>
        <button
          type="button"
          onClick={() => downloadText(`${name}.log`, shown.map((l) => (timestamps && l.ts ? `${l.ts} ${l.text}` : l.text)).join('\n') + '\n')}
          disabled={!shown.length}
          aria-label={`Download the log of ${name}`}
        >
          Download
        </button>
        <button type="button" onClick={() => setLines([])} aria-label={`Clear the log view of ${name}`}>
          Clear
        </button>
      </div>
      <ErrorNote error={error} />
      <pre ref={boxRef} className={fill ? 'log-lines fill' : 'log-lines'} role="log" aria-label={`Log of ${name}`} tabIndex={0} data-testid="log-lines">
        {shown.map((l) => (
          <div key={l.n} className={l.err ? 'stderr' : undefined}>
            {timestamps && l.ts ? <span className="ts">{l.ts} </span> : null}
            {l.segs.map((seg, i) => (
              <SegmentSpan key={i} s={seg} />
            ))}
          </div>
        ))}
      </pre>
    </div>
  );
}
