import type { ReactNode } from 'react';

/** A list screen's table: a head per column, then one for the row actions that only screen readers name. */
export function ListTable({ label, columns, children }: { label: string; columns: readonly string[]; children: ReactNode }) {
  return (
    <table className="list" aria-label={label}>
      <thead>
        <tr>
          {columns.map((c) => (
            <th key={c} scope="col">
              {c}
            </th>
          ))}
          <th scope="col">
            <span className="visually-hidden">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  );
}

/** A row's Remove button; `label` names what it removes. */
export function RemoveButton({ label, onClick, disabled }: { label: string; onClick: () => void; disabled?: boolean }) {
  return (
    <button type="button" className="danger" onClick={onClick} disabled={disabled} aria-label={label}>
      Remove
    </button>
  );
}
