/** The kernel as oracle: run probes and hold each outcome against explain's decision for the same flow. */
import type { Ir } from '../ir/types.js';
import { parseAddress } from '../policy/address.js';
import type { Verdict } from '../policy/types.js';
import type { Accounts } from '../resolve/resolver.js';
import { nameOutcome, withAnswer } from '../sim/dns.js';
import type { Decision } from '../sim/flow.js';
import { indexedEvaluator } from '../sim/indexed.js';
import type { Execer } from '../kernel/exec.js';
import { DEFAULT_PROBE_TIMEOUT_MS, expectedKernelVerdict, kernelVerdict, probeFlow, runProbes, type KernelVerdict, type Probe, type ProbeOptions, type ProbeResult } from './probe.js';

/** What the kernel (and, for a name probe, the forwarder) must do: a verdict, or REFUSED at DNS for a deny rule's name. */
export type Expected = Verdict | 'refused';

export interface Comparison {
  result: ProbeResult;
  decision: Decision;
  /** What the kernel must do: explain's verdict, or accept in audit mode; `refused` for a deny rule's name under `dns.proxy`. */
  expected: Expected;
  kernel: KernelVerdict;
  agree: boolean;
}

/** explain's decision for a probe's result, and what the lab therefore expects. */
export type Oracle = (r: ProbeResult) => { decision: Decision; expected: Expected };

export interface OracleOptions {
  /** Forwarded probes: the interface they leave the host through (explain's --via). */
  via?: string;
}

/**
 * explain as the lab asks it. A forwarded probe is `explain --from SRC --in
 * IN --via VIA`. A plain probe is the flow to its address.
 * A name probe is what `explain --to NAME` says (sim/dns.ts): a deny rule's
 * name is refused at DNS; a name an allow rule covers is judged with the
 * answered addresses published into those rules' sets; any other name is
 * the flow to the address answered.
 */
export function oracleFor(ir: Ir, accounts?: Accounts, opts: OracleOptions = {}): Oracle {
  const plain = indexedEvaluator(ir);
  return (r) => {
    const flow = probeFlow(r.probe, accounts, opts.via);
    const name = r.probe.name;
    const o = name !== undefined ? nameOutcome(ir, name) : undefined;
    if (!o || o.answer === 'forwarded') return expecting(plain(flow));
    if (o.answer === 'refused') return { decision: { verdict: ir.denyVerdict, audit: ir.mode === 'audit', step: 'deny', rules: o.rules }, expected: 'refused' };
    const answered = (r.answered?.length ? r.answered : [r.probe.dst]).map((a) => parseAddress(a)).filter((a) => a !== undefined);
    return expecting(indexedEvaluator(withAnswer(ir, name!, answered))(flow));
  };
}

function expecting(decision: Decision): { decision: Decision; expected: Expected } {
  return { decision, expected: expectedKernelVerdict(decision) };
}

export function compareOne(oracle: Oracle, r: ProbeResult): Comparison {
  const { decision, expected } = oracle(r);
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
export async function probeAndCompare(x: Execer, ns: string, oracle: Oracle, probes: readonly Probe[], opts: ProbeOptions = {}): Promise<Comparison[]> {
  const results = await runProbes(x, ns, probes, opts);
  const cs = results.map((r) => compareOne(oracle, r));
  const silent = cs.flatMap((c, i) => (!c.agree && c.kernel === 'drop' ? [i] : []));
  if (!silent.length) return cs;
  const timeoutMs = Math.max(3_000, 8 * (opts.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS));
  const again = await runProbes(x, ns, silent.map((i) => probes[i]!), { ...opts, timeoutMs });
  silent.forEach((i, k) => (cs[i] = compareOne(oracle, again[k]!)));
  return cs;
}

export async function compareProbes(x: Execer, ns: string, ir: Ir, probes: readonly Probe[], accounts?: Accounts, opts: ProbeOptions = {}): Promise<Comparison[]> {
  return probeAndCompare(x, ns, oracleFor(ir, accounts), probes, opts);
}
