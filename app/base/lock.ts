import fs from 'node:fs';
import { BerthError } from '../contract/errors.js';
import { pidAlive, processCommandLine } from './process-util.js';

/**
 * One engine per instance. The lock file holds the owner's pid; a lock whose
 * owner is dead (or whose pid now belongs to something that is not Berth) is
 * stale and taken over. Taking it over renames the stale file away first, so
 * two engines racing for a stale lock cannot both win.
 */
export class InstanceLock {
  private constructor(
    readonly file: string,
    /** The pid of a dead engine whose lock was recovered, if any. */
    readonly recoveredFrom?: number,
  ) {}

  static holder(file: string): number | undefined {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(file, 'utf8').trim());
    } catch {
      return undefined;
    }
    if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return undefined;
    const cmd = processCommandLine(pid);
    if (cmd !== undefined && !/berth|node/i.test(cmd)) return undefined; // pid reused by something else
    return pid;
  }

  static acquire(file: string): InstanceLock {
    let recovered: number | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      const tmp = `${file}.${process.pid}`;
      fs.writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
      try {
        fs.linkSync(tmp, file); // atomic: fails if the lock exists
        fs.rmSync(tmp, { force: true });
        return new InstanceLock(file, recovered);
      } catch (err) {
        fs.rmSync(tmp, { force: true });
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = InstanceLock.holder(file);
      if (holder !== undefined && holder !== process.pid) {
        throw new BerthError(
          'INSTANCE_LOCKED',
          `another Berth engine (pid ${holder}) is running this instance`,
          'Use that engine (`berth status`), or stop it with `berth stop`.',
        );
      }
      try {
        recovered = Number(fs.readFileSync(file, 'utf8').trim()) || undefined;
        fs.renameSync(file, `${file}.stale`);
        fs.rmSync(`${file}.stale`, { force: true });
      } catch {
        /* someone else took it over first: try again */
      }
    }
    throw new BerthError('INSTANCE_LOCKED', `could not take the lock ${file}`, 'Try again; if it persists, delete the file.');
  }

  release(): void {
    try {
      if (Number(fs.readFileSync(this.file, 'utf8').trim()) === process.pid) fs.rmSync(this.file, { force: true });
    } catch {
      /* already gone */
    }
  }
}
