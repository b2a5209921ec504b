import type { CallError } from '../api';

/** A contract error where the user acted: the message, the hint, the code. */
export function ErrorNote({ error, id, onDismiss }: { error: CallError | null | undefined; id?: string; onDismiss?: () => void }) {
  if (!error) return null;
  return (
    <div className="error-note" role="alert" id={id}>
      <div className="error-message">{error.message}</div>
      {error.hint && <div className="error-hint">{error.hint}</div>}
      <div className="error-code">{error.code}</div>
      {error.details && (
        <details>
          <summary>Details</summary>
          <pre>{error.details}</pre>
        </details>
      )}
      {onDismiss && (
        <button type="button" className="link-button" onClick={onDismiss} aria-label="Dismiss this error">
          Dismiss
        </button>
      )}
    </div>
  );
}
