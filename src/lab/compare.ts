/** The kernel as oracle: run probes and hold each outcome against explain's decision for the same flow. */
import type { Ir } from '../ir/types.js';
import type { Verdict } from '../policy/types.js';
import type { Accounts } from '../resolve/resolver.js';
import type { Decision } from '../sim/flow.js';
import { indexedEvaluator } from '../sim/indexed.js';
import type { Execer } from '../kernel/exec.js';
import { DEFAULT_PROBE_TIMEOUT_MS, expectedKernelVerdict, kernelVerdict, probeFlow, runProbes, type KernelVerdict, type Probe, type ProbeOptions, type ProbeResult } from './probe.js';

export interface Comparison {
  result: ProbeResult;
  decision: Decision;
  /** What the kernel must do: explain's verdict, or accept in audit mode. */
  expected: Verdict;
  kernel: KernelVerdict;
  agree: boolean;
}

export function compareOne(evaluate: (f: ReturnType<typeof probeFlow>) => Decision, r: ProbeResult, accounts?: Accounts): Comparison {
  const decision = evaluate(probeFlow(r.probe, accounts));
  const expected = expectedKernelVerdict(decision);
  const kernel = kernelVerdict(r.outcome);
  return { result: r, decision, expected, kernel, agree: kernel === expected };
}

/**
 * Run `probes` and compare each with explain. A drop is read from silence, the
 * weakest evidence there is: a loaded machine can be slower than the timeout.
 * So a probe the kernel seemed to drop where explain expects it through (or
 * rejected) is tried once more with a much longer timeout before it counts as
 * a disagreement. Only disagreements are retried, so this never hides one
 * that a second look confirms, and costs nothing when all agree.
 */
export async function probeAndCompare(
  x: Execer,
  ns: string,
  evaluate: (f: ReturnType<typeof probeFlow>) => Decision,
  probes: readonly Probe[],
  accounts?: Accounts,
  opts: ProbeOptions = {},
): Promise<Comparison[]> {
  const results = await runProbes(x, ns, probes, opts);
  const cs = results.map((r) => compareOne(evaluate, r, accounts));
  const silent = cs.flatMap((c, i) => (!c.agree && c.kernel === 'drop' ? [i] : []));
  if (!silent.length) return cs;
  const timeoutMs = Math.max(3_000, 8 * (opts.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS));
  const again = await runProbes(x, ns, silent.map((i) => probes[i]!), { ...opts, timeoutMs });
  silent.forEach((i, k) => (cs[i] = compareOne(evaluate, again[k]!, accounts)));
  return cs;
}

export async function compareProbes(x: Execer, ns: string, ir: Ir, probes: readonly Probe[], accounts?: Accounts, opts: ProbeOptions = {}): Promise<Comparison[]> {
  return probeAndCompare(x, ns, indexedEvaluator(ir), probes, accounts, opts);
}
