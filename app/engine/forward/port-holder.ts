import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { decodeAddress } from './proc-net.js';

export interface PortHolder {
  pid?: number;
  command?: string;
}

/**
 * Which host process holds a port, where the OS can tell: Linux from
 * /proc/net and /proc/<pid>/fd (only processes this user may look into),
 * macOS from lsof. Undefined when unknown; never throws.
 */
export async function findPortHolder(proto: 'tcp' | 'udp', port: number): Promise<PortHolder | undefined> {
  try {
    if (process.platform === 'linux') return linuxHolder(proto, port);
    if (process.platform === 'darwin') return await lsofHolder(proto, port);
  } catch {
    /* unknown */
  }
  return undefined;
}

function linuxHolder(proto: 'tcp' | 'udp', port: number): PortHolder | undefined {
  const inodes = new Set<string>();
  for (const f of proto === 'tcp' ? ['/proc/net/tcp', '/proc/net/tcp6'] : ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length < 10) continue;
      const a = decodeAddress(c[1]!);
      const listening = proto === 'tcp' ? c[3] === '0A' : c[3] === '07';
      if (a?.port === port && listening) inodes.add(c[9]!);
    }
  }
  if (!inodes.size) return undefined;
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1]!)) {
        let command: string | undefined;
        try {
          command = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 200);
        } catch {
          /* gone */
        }
        return { pid: Number(pid), command };
      }
    }
  }
  return {};
}

function lsofHolder(proto: 'tcp' | 'udp', port: number): Promise<PortHolder | undefined> {
  const args = proto === 'tcp' ? ['-nP', `-iTCP:${port}`, '-sTCP:LISTEN', '-Fpc'] : ['-nP', `-iUDP:${port}`, '-Fpc'];
  return new Promise((resolve) => {
    execFile('lsof', args, { timeout: 3000 }, (err, stdout) => {
      if (err && !stdout) return resolve(undefined);
      const pid = /^p(\d+)$/m.exec(stdout);
      const cmd = /^c(.+)$/m.exec(stdout);
      resolve(pid ? { pid: Number(pid[1]), command: cmd?.[1] } : undefined);
    });
  });
}
