import type { CallError } from '../api';

/**
 * A contract error where the user acted: the message, the hint, the code.
 * `warning`: Berth goes on despite it (a broken settings file it worked
 * around), so it is a status to read, not an alert.
 */
export function ErrorNote({
  error,
  id,
  onDismiss,
  warning,
  testId,
}: {
  error: CallError | null | undefined;
  id?: string;
  onDismiss?: () => void;
  warning?: boolean;
  testId?: string;
}) {
  if (!error) return null;
  return (
    <div className={warning ? 'error-note warning' : 'error-note'} role={warning ? 'status' : 'alert'} id={id} data-testid={testId}>
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
