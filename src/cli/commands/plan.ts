/** `egress plan [POLICY] [--backend nft|iptables] [--json|--markdown|-q] [-v]`: exit 0 = nothing would change, 3 = changes pending, 1 = invalid/failed. */
import { resolve as resolvePath } from 'node:path';
import { toJson } from '../../diag/render.js';
import { planAgainstLive, readAhead } from '../../kernel/lifecycle.js';
import { forwardView, scopeOf } from '../../kernel/forward-view.js';
import { planIsEmpty } from '../../plan/diff.js';
import { planJson, planSummary, renderPlanMarkdown, renderPlanText } from '../../report/plan.js';
import type { Io } from '../io.js';
import { writeResult } from '../envelope.js';
import type { PolicyFlags } from '../shared.js';
import { stagesOn, withStages } from '../progress.js';
import { chooseBackend, lifecycleCtx, lifecycleFailure, loadDesired, needRoot, parseBackend, type KernelSeams } from '../kernel-flags.js';

/** Exit code of `plan` when apply would change something (SPEC reserves 1 and 2). */
export const EXIT_PENDING = 3;

export interface PlanFlags extends PolicyFlags {
  backend?: string;
  /** Markdown for a pull request instead of the table. */
  markdown?: boolean;
  /** Every set element and every change (big plans are summarised otherwise). */
  verbose?: boolean;
  /** The summary line alone. */
  quiet?: boolean;
}

export function planCommand(io: Io, file: string, flags: PlanFlags, seams: KernelSeams = {}): Promise<number> {
  return withStages(io, stagesOn(io, flags.quiet), seams, (io) => planPolicy(io, file, flags, seams));
}

async function planPolicy(io: Io, file: string, flags: PlanFlags, seams: KernelSeams): Promise<number> {
  const flag = parseBackend(flags.backend);
  needRoot('plan', seams);
  const ctx = lifecycleCtx(io, seams);
  const backend = chooseBackend(flag, ctx.stateDir);
  const ahead = readAhead(ctx, backend, resolvePath(io.cwd, file)); // nft lists the live table while the policy compiles
  const { loaded, desired, diagnostics } = await loadDesired(io, file, backend, flags, ctx.stateDir);
  if (!desired) {
    if (flags.json) writeResult(io, 'plan', { ok: false, result: null, diagnostics: toJson(loaded.sources, diagnostics) });
    return 1;
  }
  try {
    const plan = await planAgainstLive(ctx, desired, ahead);
    const empty = planIsEmpty(plan);
    const forward = await forwardView(ctx.w, scopeOf(loaded.policy?.forward), backend);
    if (flags.json) writeResult(io, 'plan', { ok: true, result: { file, ...planJson(plan), forward }, diagnostics: toJson(loaded.sources, diagnostics) });
    else if (flags.quiet) io.stdout(`${empty ? renderPlanText(plan).trimEnd() : planSummary(plan)}\n`);
    else if (flags.markdown) {
      io.stdout(renderPlanMarkdown(plan, file, { verbose: !!flags.verbose }));
      for (const l of forward.lines) io.stderr(`egress: ${l}\n`);
    } else {
      io.stdout(renderPlanText(plan, { verbose: !!flags.verbose, colour: !!io.colour?.stdout, ...(io.columns && !flags.verbose ? { width: io.columns } : {}) }));
      for (const l of forward.lines) io.stderr(`egress: ${l}\n`);
    }
    return empty ? 0 : EXIT_PENDING;
  } catch (e) {
    return lifecycleFailure(io, e, loaded, flags.json ? 'plan' : undefined);
  }
}
