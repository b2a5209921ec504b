import { EventEmitter } from 'node:events';
import net from 'node:net';

/**
 * A minimal QMP (QEMU Machine Protocol) client: JSON lines over a unix
 * socket. Used for power-off requests and as the VM's liveness signal: the
 * socket closes when QEMU exits.
 */
export class QmpClient extends EventEmitter<{ event: [string, unknown]; close: [] }> {
  private buf = '';
  private nextId = 1;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private closed = false;

  private constructor(private readonly sock: net.Socket) {
    super();
  }

  static connect(path: string, timeoutMs = 3000): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(path);
      const client = new QmpClient(sock);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`QMP greeting timed out on ${path}`));
      }, timeoutMs);
      let greeted = false;
      sock.setEncoding('utf8');
      sock.on('data', (chunk: string) => {
        client.buf += chunk;
        let nl: number;
        while ((nl = client.buf.indexOf('\n')) >= 0) {
          const line = client.buf.slice(0, nl).trim();
          client.buf = client.buf.slice(nl + 1);
          if (!line) continue;
          let msg: Record<string, unknown>;
          try {
            msg = JSON.parse(line);
          } catch {
            continue;
          }
          if (!greeted && 'QMP' in msg) {
            greeted = true;
            client
              .execute('qmp_capabilities')
              .then(() => {
                clearTimeout(timer);
                resolve(client);
              })
              .catch((e: Error) => {
                clearTimeout(timer);
                reject(e);
              });
            continue;
          }
          client.onMessage(msg);
        }
      });
      sock.on('error', (err) => {
        clearTimeout(timer);
        if (!greeted) reject(err);
      });
      sock.on('close', () => client.onClose());
    });
  }

  private onMessage(msg: Record<string, unknown>): void {
    if (typeof msg.event === 'string') {
      this.emit('event', msg.event, msg.data);
      return;
    }
    const id = msg.id as number | undefined;
    if (id === undefined) return;
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (msg.error) {
      const e = msg.error as { desc?: string };
      p.reject(new Error(e.desc ?? 'QMP error'));
    } else {
      p.resolve(msg.return);
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new Error('QMP connection closed'));
    this.pending.clear();
    this.emit('close');
  }

  get isClosed(): boolean {
    return this.closed;
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('QMP connection closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.sock.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n');
    });
  }

  close(): void {
    this.sock.destroy();
  }
}
