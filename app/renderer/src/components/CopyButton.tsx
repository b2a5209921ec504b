import { useState } from 'react';

/** Copy a text to the clipboard; says so for a moment (and to screen readers). */
export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState<'copied' | 'failed' | ''>('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone('copied');
    } catch {
      // No clipboard permission (plain http in some browsers): select-and-copy fallback.
      const ta = document.createElement('textarea');
      ta.value = text;
      document.body.appendChild(ta);
      ta.select();
      const ok = document.execCommand('copy');
      ta.remove();
      setDone(ok ? 'copied' : 'failed');
    }
    setTimeout(() => setDone(''), 2000);
  };
  return (
    <button type="button" className="copy-button" onClick={() => void copy()} aria-label={label}>
      {done === 'copied' ? 'Copied' : done === 'failed' ? 'Copy failed' : 'Copy'}
      <span className="visually-hidden" role="status">
        {done === 'copied' ? 'Copied to the clipboard' : ''}
      </span>
    </button>
  );
}
