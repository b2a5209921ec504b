import { useVm } from '../vm';

/** What a Docker screen shows while the VM does not run: why, and Start. */
export function NotRunning({ what }: { what: string }) {
  const { status, act, busy } = useVm();
  return (
    <div className="card empty">
      <p>
        The VM is {status?.state ?? 'not reachable'}: {what} live in it.
      </p>
      {(status?.state === 'stopped' || status?.state === 'error') && (
        <button type="button" className="primary" onClick={() => void act('vm.start')} disabled={!!busy}>
          Start the VM
        </button>
      )}
    </div>
  );
}
