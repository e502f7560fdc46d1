/**
 * The confirmation watchdog: what restores the previous ruleset when an
 * `apply --confirm SECONDS` is not confirmed in time, whatever happened to
 * the terminal it was applied from.
 *
 * - Under systemd (PID 1 is systemd and we are in its network namespace): a
 *   transient timer, `systemd-run --on-active=SECONDS`, which lives outside
 *   the login session's cgroup, so neither logind's KillUserProcesses nor a
 *   dead SSH session can take it down.
 * - Otherwise: a detached child in its own session (setsid), stdio on a log
 *   file in the state directory, ignoring SIGHUP. Killing the applying
 *   process, its process group or its session (SIGHUP when the SSH
 *   connection drops) does not reach it. It inherits the network namespace
 *   it was started in, which is what the kernel tests rely on.
 *
 * Either way the watchdog runs `egress _auto-rollback --token T`, which
 * rolls back only if that same apply is still pending (a later confirm,
 * rollback or apply makes it a no-op). If the watchdog itself is lost (killed,
 * machine rebooted), the next egress command that sees the overdue
 * confirmation rolls back, and at boot only the last *confirmed* ruleset is
 * restored: an unconfirmed apply never outlives its deadline.
 */
import { existsSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Execer } from './exec.js';
import { onPath } from './netns.js';
import { processStartTime, waitFor } from './lock.js';
import type { Pending } from './state.js';

export const WATCHDOG_LOG = 'watchdog.log';

/** How to run egress itself again: node, its flags (e.g. module hooks), and the entry script. */
export type SelfCommand = string[];

export function selfCommand(): SelfCommand {
  return [process.execPath, ...process.execArgv, process.argv[1]!];
}

export type WatchdogKind = 'systemd' | 'process';

/** systemd is usable when it runs as PID 1 and we share its network namespace (else its timer would act on the wrong one). */
export function systemdUsable(): boolean {
  if (!existsSync('/run/systemd/system') || !onPath('systemd-run')) return false;
  try {
    return readlinkSync('/proc/1/ns/net') === readlinkSync('/proc/self/ns/net');
  } catch {
    return false;
  }
}

export function chooseWatchdog(env: Record<string, string | undefined>): WatchdogKind {
  const want = env.EGRESS_WATCHDOG;
  if (want === 'process' || want === 'systemd') return want;
  return systemdUsable() ? 'systemd' : 'process';
}

export function unitName(token: string): string {
  return `egress-confirm-${token}`;
}

/** Arm the watchdog for `token`; returns how to find it again. */
export async function armWatchdog(
  x: Execer,
  kind: WatchdogKind,
  self: SelfCommand,
  stateDir: string,
  token: string,
  seconds: number,
): Promise<Pending['watchdog']> {
  const args = ['_auto-rollback', '--token', token];
  if (kind === 'systemd') {
    const unit = unitName(token);
    const r = await x.run('systemd-run', [
      `--unit=${unit}`,
      `--on-active=${seconds}s`,
      '--timer-property=AccuracySec=1s',
      `--setenv=EGRESS_STATE_DIR=${stateDir}`,
      '--description=egress: roll back an unconfirmed apply',
      '--',
      ...self,
      ...args,
    ]);
    if (r.code !== 0) throw new Error(`systemd-run failed: ${(r.stderr || r.stdout).trim()}`);
    return { kind: 'systemd', unit };
  }
  const { pid } = x.detach(self[0]!, [...self.slice(1), ...args], {
    logPath: join(stateDir, WATCHDOG_LOG),
    env: { EGRESS_STATE_DIR: stateDir, EGRESS_WATCHDOG_CHILD: '1' },
    cwd: '/',
  });
  if (pid === undefined) throw new Error('cannot start the rollback watchdog');
  const start = await waitStart(pid);
  return { kind: 'process', pid, ...(start ? { start } : {}) };
}

async function waitStart(pid: number): Promise<string | undefined> {
  await waitFor(() => processStartTime(pid) !== undefined, 200);
  return processStartTime(pid);
}

/** Whether the watchdog of a pending apply is still there to act. */
export async function watchdogAlive(x: Execer, w: Pending['watchdog']): Promise<boolean> {
  if (w.kind === 'process') {
    const s = processStartTime(w.pid);
    return s !== undefined && (w.start === undefined || s === w.start);
  }
  const r = await x.run('systemctl', ['is-active', '--quiet', `${w.unit}.timer`]);
  return r.code === 0;
}

/** Stop the watchdog (after confirm, or when a later apply replaces it). Never fails. */
export async function disarmWatchdog(x: Execer, w: Pending['watchdog']): Promise<void> {
  if (w.kind === 'process') {
    if (w.pid === process.pid) return;
    const s = processStartTime(w.pid);
    if (s !== undefined && (w.start === undefined || s === w.start)) {
      try {
        process.kill(w.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    return;
  }
  if (onPath('systemctl')) await x.run('systemctl', ['stop', `${w.unit}.timer`, `${w.unit}.service`]);
}
