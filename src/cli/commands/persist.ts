/**
 * `egress persist [--off]`: install (or remove) egress-restore.service, which
 * restores the last confirmed policy at boot before the network comes up.
 * `egress _restore-boot` (hidden) is what the unit runs.
 */
import { selfCommand } from '../../kernel/confirm.js';
import { persistOff, persistOn, restoreAtBoot, systemdDirOf } from '../../kernel/persist.js';
import { readState } from '../../kernel/state.js';
import { CommandError, type Io } from '../io.js';
import { writeJson } from '../shared.js';
import { lifecycleCtx, lifecycleFailure, needRoot, type KernelSeams } from '../kernel-flags.js';

export async function persistCommand(io: Io, flags: { off?: boolean; json?: boolean }, seams: KernelSeams = {}): Promise<number> {
  needRoot('persist', seams);
  const ctx = lifecycleCtx(io, seams);
  const dir = systemdDirOf(io.env);
  try {
    if (flags.off) {
      const removed = await persistOff(ctx.w, dir);
      if (flags.json) writeJson(io, { ok: true, persist: false, removed });
      else io.stdout(removed.length ? `persistence off: removed ${removed.join(', ')}; the live ruleset is untouched, but it will not come back after a reboot\n` : 'persistence was not on; nothing to remove\n');
      return 0;
    }
    const confirmed = readState(ctx.stateDir, 'confirmed');
    if (!confirmed || confirmed.kind !== 'ruleset') throw new CommandError('nothing confirmed to restore at boot: apply (and, with --confirm, confirm) a policy first');
    if (confirmed.dns)
      throw new CommandError('the confirmed policy has dns.proxy, and boot cannot start its DNS forwarder yet: restored without it, the host could not resolve names until the next apply; nothing was written');
    const written = await persistOn(ctx.w, dir, seams.self ?? selfCommand(), ctx.stateDir);
    if (flags.json) writeJson(io, { ok: true, persist: true, files: written, policyFile: confirmed.policyFile });
    else io.stdout(`persistence on: ${written[0]} (enabled via ${written[1]}) restores ${confirmed.policyFile} at boot, before the network; if it cannot, egress traffic is locked down\n`);
    return 0;
  } catch (e) {
    if (e instanceof CommandError) throw e;
    return lifecycleFailure(io, e, undefined, !!flags.json);
  }
}

export async function restoreBootCommand(io: Io, seams: KernelSeams = {}): Promise<number> {
  const ctx = lifecycleCtx(io, seams);
  const r = await restoreAtBoot(ctx.w, ctx.stateDir, ctx.now(), ctx.who);
  (r.outcome === 'lockdown' ? io.stderr : io.stdout)(`egress: ${r.message}\n`);
  return r.outcome === 'lockdown' ? 1 : 0;
}
