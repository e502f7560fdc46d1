/**
 * `egress rollback`: restore the ruleset from before the last apply.
 * `egress _auto-rollback --token T` (hidden): the confirmation watchdog —
 * waits for the deadline, then rolls back if that apply is still pending.
 */
import { isoText } from '../../logs/since.js';
import { rollback, settleWaiting } from '../../kernel/lifecycle.js';
import { LockBusyError } from '../../kernel/lock.js';
import { readState, type Snapshot } from '../../kernel/state.js';
import type { Io } from '../io.js';
import { writeResult } from '../envelope.js';
import { lifecycleCtx, lifecycleFailure, needRoot, type KernelSeams } from '../kernel-flags.js';

function describe(s: Snapshot): string {
  return s.kind === 'none' ? 'nothing of egress was live before, so its rules were taken out' : `${s.policyFile} (${s.backend}, ${s.mode}, applied ${isoText(s.appliedAt)} by ${s.appliedBy.user}) is live again`;
}

export async function rollbackCommand(io: Io, flags: { json?: boolean }, seams: KernelSeams = {}): Promise<number> {
  needRoot('rollback', seams);
  const ctx = lifecycleCtx(io, seams);
  try {
    const r = await rollback(ctx);
    const s = r.restored!;
    if (flags.json) writeResult(io, 'rollback', { ok: true, result: { restored: s.kind === 'none' ? null : { policyFile: s.policyFile, policyHash: s.policyHash, backend: s.backend, mode: s.mode, appliedAt: s.appliedAt } } });
    else io.stdout(`rolled back: ${describe(s)}\n`);
    return 0;
  } catch (e) {
    return lifecycleFailure(io, e, undefined, flags.json ? 'rollback' : undefined);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function autoRollbackCommand(io: Io, flags: { token?: string }, seams: KernelSeams = {}): Promise<number> {
  const token = flags.token ?? '';
  process.on('SIGHUP', () => {}); // a dying terminal must not take the watchdog along
  const ctx = lifecycleCtx(io, seams);
  const stamp = () => new Date().toISOString();
  io.stderr(`${stamp()} watchdog ${process.pid}: armed for ${token}\n`);
  // apply starts this watchdog under its lock and records pending.json after: look only once it is done,
  // and once what an apply cut off half-way left is settled (that may record this watchdog's own confirmation).
  try {
    await settleWaiting(ctx);
  } catch (e) {
    io.stderr(`${stamp()} watchdog: ${(e as Error).message}\n`);
  }
  for (;;) {
    let p;
    try {
      p = readState(ctx.stateDir, 'pending');
    } catch (e) {
      io.stderr(`${stamp()} watchdog: ${(e as Error).message}; rolling back to be safe\n`);
      break;
    }
    if (!p || p.token !== token) {
      io.stderr(`${stamp()} watchdog: ${token} was confirmed, rolled back or replaced; nothing to do\n`);
      return 0;
    }
    const left = Date.parse(p.deadline) - Date.now();
    if (left <= 0) break;
    await sleep(Math.min(left, 1000));
  }
  for (;;) {
    try {
      const r = await rollback(ctx, { token });
      io.stderr(`${stamp()} watchdog: ${r.skipped ?? `rolled back: ${describe(r.restored!)}`}\n`);
      return 0;
    } catch (e) {
      if (e instanceof LockBusyError) {
        await sleep(500);
        continue;
      }
      io.stderr(`${stamp()} watchdog: rollback failed: ${(e as Error).message}\n`);
      return 1;
    }
  }
}
