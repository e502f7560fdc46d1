/**
 * One life-cycle command at a time per state directory: a lock file
 * (`$EGRESS_STATE_DIR/lock`) holding the owner's pid and process start time.
 * Node has no flock(2); this is the same contract with the same crash
 * behaviour: a holder that died (even by SIGKILL) does not block anyone,
 * because a lock whose owner is gone (pid not running, or running with
 * another start time: a reused pid) is stale and taken over.
 *
 * The lock appears complete or not at all: the owner line is written and
 * synced to a private file first, which link(2) then puts in place (it fails
 * with EEXIST if a lock is there, like O_EXCL). So no reader ever sees an
 * empty or half-written lock, and whether a lock is stale never depends on
 * how long ago it was written.
 */
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { errnoText } from '../diag/errno.js';
import { StateError } from './state.js';
import { join } from 'node:path';

export const LOCK_FILE = 'lock';

export class LockBusyError extends Error {
  constructor(readonly pid: number) {
    super(`another egress command holds the lock: ${holderText(pid)} (pid ${pid}); wait for it to finish, or check that process`);
  }
}

/** What the lock holder is, from its command line: the confirm watchdog and boot restore are named, any other egress command by its name. */
export function holderText(pid: number, cmdline: (pid: number) => string[] | undefined = readCmdline): string {
  const argv = cmdline(pid);
  const hidden: Record<string, string> = {
    '_auto-rollback': 'the confirm watchdog, rolling back (egress confirm was not run in time)',
    '_restore-boot': 'the boot-time restore',
  };
  for (const a of argv ?? []) {
    if (hidden[a]) return hidden[a];
    if (/^[a-z]+$/.test(a) && COMMANDS.has(a)) return `egress ${a}`;
  }
  return 'an egress command';
}

const COMMANDS = new Set(['apply', 'confirm', 'rollback', 'remove', 'refresh', 'persist']);

function readCmdline(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

export interface Lock {
  release(): void;
}

/**
 * The start time of a process (field 22 of /proc/PID/stat), or undefined when
 * it is not running — a zombie (state Z, or X) has exited: a killed confirm
 * watchdog waiting to be reaped counted as alive, so status said it was there
 * and an overdue confirmation was not rolled back (for ~2 s here, where PID 1
 * reaps orphans late; for good under a PID 1 that never reaps).
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** Poll `done` every 10 ms until it holds or `ms` pass; whether it held (a process appearing or going away). */
export async function waitFor(done: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

interface Owner {
  pid: number;
  start?: string;
}

function parseOwner(text: string): Owner | undefined {
  const m = /^(\d+)(?: (\S+))?\n?$/.exec(text);
  if (!m) return undefined;
  return { pid: Number(m[1]), ...(m[2] ? { start: m[2] } : {}) };
}

function ownerAlive(o: Owner): boolean {
  const start = processStartTime(o.pid);
  if (start === undefined) return false;
  // egress always records the start time; a bare pid (a hand-made lock) counts only while that pid runs egress.
  return o.start === undefined ? (readCmdline(o.pid) ?? []).some((a) => /egress/.test(a)) : o.start === start;
}

/**
 * Take the lock of `stateDir` or throw LockBusyError naming the holder.
 * Re-entrant for the same process is not supported (nor needed).
 */
export function acquireLock(stateDir: string): Lock {
  const path = join(stateDir, LOCK_FILE);
  const me = `${process.pid} ${processStartTime(process.pid) ?? '0'}\n`;
  const mine = `${path}.new-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    const fd = openSync(mine, 'wx', 0o644);
    try {
      writeSync(fd, me);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    try {
      unlinkSync(mine);
    } catch {
      /* never created */
    }
    throw new StateError(`cannot take the lock in ${stateDir}: ${errnoText(e)}`);
  }
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(mine, path);
        return {
          release() {
            try {
              if (readFileSync(path, 'utf8') === me) unlinkSync(path);
            } catch {
              /* already gone */
            }
          },
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new StateError(`cannot take the lock in ${stateDir}: ${errnoText(e)}`);
      }
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released between our link and read: try again
        // A directory (or anything unreadable) there is no lock egress wrote, and never goes away by itself.
        throw new StateError(`cannot take the lock ${path}: it cannot be read (${errnoText(e)}), so it is no lock egress wrote; move it aside`);
      }
      const owner = parseOwner(text);
      if (owner && ownerAlive(owner)) throw new LockBusyError(owner.pid);
      // Gone, a reused pid, or not a lock we could have written (locks are never empty or partial): stale.
      takeOver(path, text);
    }
  } finally {
    try {
      unlinkSync(mine);
    } catch {
      /* ignore */
    }
  }
  throw new StateError(`cannot take the lock ${path}: other processes kept taking and releasing it; try again`);
}

/**
 * Move a stale lock aside. If two processes race for the same stale lock,
 * one rename wins; the loser may have moved the winner's fresh lock, which it
 * notices (the content differs from the stale one it judged) and puts back.
 */
function takeOver(path: string, staleText: string): void {
  const aside = `${path}.stale-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch {
    return;
  }
  let moved = '';
  try {
    moved = readFileSync(aside, 'utf8');
  } catch {
    /* ignore */
  }
  if (moved !== staleText) {
    try {
      linkSync(aside, path);
    } catch {
      /* someone else took it meanwhile: theirs stands */
    }
  }
  try {
    unlinkSync(aside);
  } catch {
    /* ignore */
  }
}

/**
 * How long a life-cycle command waits for a lock another egress command
 * holds before it gives up naming the holder. The confirm watchdog takes the
 * lock for a moment as it starts (it settles what apply left), right when an
 * operator types `egress confirm`: that must wait, not fail.
 */
export const LOCK_WAIT_MS = 10_000;

/** `acquireLock`, waiting up to `ms` while another live process holds it (then its LockBusyError). */
export async function acquireLockWaiting(stateDir: string, ms: number = LOCK_WAIT_MS): Promise<Lock> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return acquireLock(stateDir);
    } catch (e) {
      if (!(e instanceof LockBusyError) || Date.now() >= end) throw e;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
