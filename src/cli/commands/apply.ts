/**
 * `egress apply POLICY [--backend nft|iptables] [--confirm SECONDS] [--force]`.
 */
import { visible } from '../../diag/diagnostic.js';
import { error } from '../../diag/diagnostic.js';
import { locate, renderText, toJson } from '../../diag/render.js';
import { apply } from '../../kernel/lifecycle.js';
import { forwardView, scopeOf } from '../../kernel/forward-view.js';
import { lintLockout } from '../../lint/lockout.js';
import { planJson, planSummary, renderPlanText } from '../../report/plan.js';
import { isoText } from '../../logs/since.js';
import { UsageError, type Io } from '../io.js';
import { stagesOn, withStages } from '../progress.js';
import { chooseBackend, lifecycleCtx, lifecycleFailure, loadDesired, needRoot, parseBackend, type KernelSeams } from '../kernel-flags.js';
import { writeResult } from '../envelope.js';
import type { PolicyFlags } from '../shared.js';

export interface ApplyFlags extends PolicyFlags {
  backend?: string;
  confirm?: string;
  force?: boolean;
  reload?: boolean;
  /** Every change of a big apply (summarised otherwise). */
  verbose?: boolean;
  /** No table of changes. */
  quiet?: boolean;
}

export function parseSeconds(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 5 || Number(v) > 86_400) throw new UsageError(`--confirm takes whole seconds from 5 to 86400, not ${JSON.stringify(v)}`);
  return Number(v);
}

export function applyCommand(io: Io, file: string, flags: ApplyFlags, seams: KernelSeams = {}): Promise<number> {
  return withStages(io, stagesOn(io, flags.quiet), seams, (io) => applyPolicy(io, file, flags, seams));
}

async function applyPolicy(io: Io, file: string, flags: ApplyFlags, seams: KernelSeams): Promise<number> {
  const confirmSeconds = parseSeconds(flags.confirm);
  const flag = parseBackend(flags.backend);
  needRoot('apply', seams);
  const ctx = lifecycleCtx(io, seams);
  const backend = chooseBackend(flag, ctx.stateDir);
  const json = !!flags.json;
  const { loaded, desired, diagnostics } = await loadDesired(io, file, backend, flags, ctx.stateDir);
  if (!desired) {
    if (json) writeResult(io, 'apply', { ok: false, result: null, diagnostics: toJson(loaded.sources, diagnostics) });
    else io.stderr(`${visible(file)}: invalid; nothing was changed\n`);
    return 1;
  }
  const { risk } = lintLockout(desired.ir, io.env, loaded.policy);
  if (risk && !flags.force) {
    // Shown like a diagnostic, at the rule that would cut the session when there is one (code "ssh-lockout", as the lint warning).
    const d = error('ssh-lockout', risk.message, risk.span, { hint: risk.hint });
    if (json) writeResult(io, 'apply', { ok: false, result: null, diagnostics: toJson(loaded.sources, [d]) });
    else io.stderr(renderText(loaded.sources, [d]) + 'egress: refused to apply (you are connected over SSH); nothing was changed\n');
    return 1;
  }
  if (risk) io.stderr(`egress: warning: ${risk.message} (applying anyway: --force)\n`);
  try {
    const scope = scopeOf(loaded.policy?.forward);
    // The iptables forward jump sits in a chain Docker rewrites: when it has drifted, the same policy is reloaded to put it back.
    const jumpDrift = backend === 'iptables' && scope ? (await forwardView(ctx.w, scope, backend)).drift.length > 0 : false;
    const reload = !!flags.reload || jumpDrift;
    const r = await apply(ctx, desired, { ...(confirmSeconds !== undefined ? { confirmSeconds } : {}), ...(flags.force ? { force: true } : {}), ...(reload ? { reload } : {}) });
    for (const w of r.warnings) io.stderr(`egress: warning: ${w}\n`);
    const forward = await forwardView(ctx.w, scope, backend);
    if (!json) for (const l of forward.lines) io.stderr(`egress: ${l}\n`);
    if (json) {
      writeResult(io, 'apply', { ok: true, result: { file, backend, mode: desired.ir.mode, policyHash: desired.policyHash, changed: r.changed, plan: planJson(r.plan), pending: r.pending ?? null, warnings: r.warnings, forward }, diagnostics: toJson(loaded.sources, diagnostics) });
      return 0;
    }
    if (!r.changed) {
      io.stdout(
        `nothing to change: ${visible(file)} is live as applied (${backend}, ${desired.ir.mode}, default ${desired.ir.default}); counters and the rollback target are kept${confirmSeconds !== undefined ? ', and there is nothing to confirm' : ''} (--reload loads it again)\n`,
      );
      return 0;
    }
    // The plan's table (summarised unless --verbose) without its "pending" line: the line below says what was made.
    if (!flags.quiet) io.stdout(renderPlanText(r.plan, { verbose: !!flags.verbose, colour: !!io.colour?.stdout, ...(io.columns && !flags.verbose ? { width: io.columns } : {}) }).replace(/\n[^\n]* pending(: [^\n]*)?\n$/, '\n'));
    io.stdout(`applied ${visible(file)} with ${backend} (${desired.ir.mode}, default ${desired.ir.default}): ${planSummary(r.plan, 'made')}\n`);
    if (r.pending)
      io.stdout(
        `waiting for confirmation until ${isoText(r.pending.deadline)} (${confirmSeconds} s): run "egress confirm" to keep it; otherwise the previous ruleset is restored (watchdog: ${r.pending.watchdog}), even if this shell is gone\n`,
      );
    return 0;
  } catch (e) {
    return lifecycleFailure(io, e, loaded, json ? 'apply' : undefined);
  }
}
