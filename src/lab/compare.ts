/** The kernel as oracle: run probes and hold each outcome against explain's decision for the same flow. */
import type { Ir } from '../ir/types.js';
import type { Verdict } from '../policy/types.js';
import type { Accounts } from '../resolve/resolver.js';
import type { Decision } from '../sim/flow.js';
import { indexedEvaluator } from '../sim/index.js';
import type { Execer } from '../kernel/exec.js';
import { expectedKernelVerdict, kernelVerdict, probeFlow, runProbes, type KernelVerdict, type Probe, type ProbeOptions, type ProbeResult } from './probe.js';

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

export async function compareProbes(x: Execer, ns: string, ir: Ir, probes: readonly Probe[], accounts?: Accounts, opts: ProbeOptions = {}): Promise<Comparison[]> {
  const evaluate = indexedEvaluator(ir);
  const results = await runProbes(x, ns, probes, opts);
  return results.map((r) => compareOne(evaluate, r, accounts));
}
