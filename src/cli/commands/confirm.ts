/** `egress confirm`: keep the apply that awaits confirmation. */
import { confirm } from '../../kernel/lifecycle.js';
import { persistEnabled } from '../../kernel/persist.js';
import { systemdDirOf } from '../../kernel/units.js';
import type { Io } from '../io.js';
import { writeResult } from '../envelope.js';
import { lifecycleCtx, lifecycleFailure, needRoot, type KernelSeams } from '../kernel-flags.js';

export async function confirmCommand(io: Io, flags: { json?: boolean }, seams: KernelSeams = {}): Promise<number> {
  needRoot('confirm', seams);
  const ctx = lifecycleCtx(io, seams);
  try {
    const { snapshot: s } = await confirm(ctx);
    // Only with `persist` on does anything restore it at boot; say which (it said "restored at boot" either way).
    const atBoot = persistEnabled(systemdDirOf(io.env));
    if (flags.json) writeResult(io, 'confirm', { ok: true, result: { confirmed: { policyFile: s.policyFile, policyHash: s.policyHash, backend: s.backend, mode: s.mode, appliedAt: s.appliedAt }, restoredAtBoot: atBoot } });
    else {
      const boot = atBoot
        ? 'and this is the ruleset restored at boot'
        : 'and it is recorded as confirmed; nothing restores it at boot until "egress persist"';
      io.stdout(`confirmed: ${s.policyFile} (${s.backend}, ${s.mode}) stays live; the rollback watchdog is stopped, ${boot}\n`);
    }
    return 0;
  } catch (e) {
    return lifecycleFailure(io, e, undefined, flags.json ? 'confirm' : undefined);
  }
}
