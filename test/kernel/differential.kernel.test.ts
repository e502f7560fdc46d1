/**
 * The differential proof: for random policies and random flows, what the
 * kernel does with each backend's compiled ruleset equals what explain
 * (the indexed evaluator) says, for every flow.
 *
 * A fixed number of policies (EGRESS_KERNEL_RUNS, default 24), each with
 * 21-28 flows on every backend: at least 24 × 21 = 504 flows on nft alone
 * (which refuses nothing). Every run must complete; how long they took is
 * printed, never asserted.
 *
 * Replay a failure with the seed and path it prints:
 *   EGRESS_KERNEL_SEED=<seed> EGRESS_KERNEL_PATH=<path> npx vitest run test/kernel/differential
 * More runs: EGRESS_KERNEL_RUNS=200.
 */
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { loadPolicyText } from '../../src/index.js';
import { LINUX_TARGETS, type LinuxTarget } from '../../src/backends/types.js';
import type { Comparison } from '../../src/lab/compare.js';
import { probeText } from '../../src/lab/probe.js';
import { hasErrors } from '../../src/diag/diagnostic.js';
import { NOW } from '../helpers.js';
import { KERNEL_ACCOUNTS, KERNEL_PORTS, kernelResolver, kPolicyArb, kPolicyYaml, kProbeArb, type KPolicy } from './gen.js';
import { kernelBackend, kernelDescribe, probeRuleset, useKernel } from './harness.js';
import type { Probe } from '../../src/lab/probe.js';

const RUNS = Number(process.env.EGRESS_KERNEL_RUNS ?? 24);
/** Flows per policy: with the default runs, nft alone compares RUNS × MIN_PROBES ≥ 500. */
const MIN_PROBES = 21;
const MAX_PROBES = 28;
/** Once a failure is found, how long shrinking may go on (each step loads rulesets); it never decides pass or fail. */
const SHRINK_BUDGET_MS = 150_000;

/** A probe from `proto dst[:port] uid[/gid]`, for committed examples. */
function probe(text: string): Probe {
  const [proto, to, who] = text.split(' ') as ['tcp' | 'udp' | 'icmp', string, string];
  const [uid, gid = uid] = who.split('/').map(Number) as [number, number?];
  const v6 = to.startsWith('[');
  const dst = v6 ? to.slice(1, to.indexOf(']')) : to.split(':')[0]!;
  const port = proto === 'icmp' ? undefined : Number(to.slice(to.lastIndexOf(':') + 1));
  return { proto, dst, ...(port !== undefined ? { port } : {}), uid, gid: gid! };
}

/**
 * Shrunk counterexamples, run first on every run (fast-check `examples`;
 * they count in the RUNS and have at least MIN_PROBES flows each).
 */
const EXAMPLES: { name: string; args: [KPolicy, Probe[]] }[] = [
  {
    // Caught: the nft backend writing a reject where the policy says drop (every flow came back rejected).
    name: 'default drop and nothing else',
    args: [
      { mode: 'enforce', default: 'drop', allow: [], deny: [] },
      [
        'tcp 192.0.2.1:25 0', 'tcp 203.0.113.200:53 4100001', 'udp 192.0.2.1:25 0/4100010', 'udp 192.0.2.4:54 0', 'tcp 203.0.113.200:123 4100002',
        'tcp [2001:db8:1:ffff::1]:444 4100001/4100010', 'tcp 198.51.100.7:444 4100002', 'tcp [2001:db8::4]:25 0', 'tcp [2001:db8::4]:81 4100001/4100010',
        'tcp [2001:db8::1]:54 0/4100010', 'tcp 192.0.2.4:25 0/4100010', 'udp 203.0.113.200:123 4100001', 'icmp 192.0.2.2 4100001', 'tcp 198.51.100.7:123 4100001/4100010',
        'icmp 203.0.113.200 4100001/4100010', 'udp [2001:db8::1]:80 4100001', 'icmp 203.0.113.200 4100002', 'udp [2001:db8::4]:25 4100001', 'tcp [2001:db8::3]:81 4100001',
        'udp 198.51.100.200:25 0', 'udp 203.0.113.1:54 4100002',
      ].map(probe),
    ],
  },
];

function describeMismatch(c: Comparison): string {
  const d = c.decision;
  const by = d.step === 'deny' || d.step === 'allow' ? `${d.step} ${d.rules.map((r) => r.name).join(',')}` : d.step === 'builtin' ? `builtin ${d.builtin}` : 'default';
  return `  ${probeText(c.result.probe)}: explain ${d.verdict}${d.audit ? ' (audit → accept)' : ''} by ${by}; kernel ${c.kernel} (${c.result.detail})`;
}

kernelDescribe('kernel differential (fast-check)', () => {
  const env = useKernel();

  test(`kernel == explain for random policies and flows, on ${LINUX_TARGETS.join(' and ')}`, async () => {
    await env.world.listen({ tcp: KERNEL_PORTS, udp: KERNEL_PORTS });
    let compared = 0;
    let comparedNft = 0;
    const refused: Record<LinuxTarget, number> = { nft: 0, iptables: 0 };
    let failedAt: number | undefined;

    const property = fc.asyncProperty(kPolicyArb, fc.array(kProbeArb, { minLength: MIN_PROBES, maxLength: MAX_PROBES }), async (p: KPolicy, probes: Probe[]) => {
      // Shrinking past its budget: skip the remaining candidates, keeping the smallest failure so far.
      if (failedAt !== undefined && performance.now() - failedAt > SHRINK_BUDGET_MS) fc.pre(false);
      const yaml = kPolicyYaml(p);
      const l = await loadPolicyText('policy.yaml', yaml, { resolver: kernelResolver(), now: NOW });
      if (hasErrors(l.diagnostics) || !l.ir) throw new Error(`generated policy did not load:\n${yaml}\n${l.diagnostics.map((d) => d.message).join('\n')}`);
      const problems: string[] = [];
      await Promise.all(
        LINUX_TARGETS.map(async (target) => {
          const art = kernelBackend(target).emit(l.ir!);
          if (hasErrors(art.diagnostics)) {
            // A backend may refuse what it cannot express (SPEC §2); it must say so with unsupported-selector.
            const codes = art.diagnostics.filter((d) => d.severity === 'error').map((d) => d.code);
            if (codes.some((c) => c !== 'unsupported-selector')) problems.push(`${target} refused with ${codes.join(', ')}`);
            refused[target]++;
            return;
          }
          const cs = await probeRuleset(env, l.ir!, target, art.value!.text, probes, KERNEL_ACCOUNTS);
          compared += cs.length;
          if (target === 'nft') comparedNft += cs.length;
          const bad = cs.filter((c) => !c.agree);
          if (bad.length) problems.push(`${target}: kernel disagrees with explain on ${bad.length} of ${cs.length} flows:\n${bad.map(describeMismatch).join('\n')}`);
        }),
      );
      if (problems.length) {
        failedAt ??= performance.now();
        throw new Error(`${problems.join('\n')}\npolicy:\n${yaml}`);
      }
    });

    const seed = process.env.EGRESS_KERNEL_SEED;
    const path = process.env.EGRESS_KERNEL_PATH;
    const started = performance.now();
    const details = await fc.check(property, {
      numRuns: RUNS,
      ...(seed !== undefined ? { seed: Number(seed) } : {}),
      ...(path !== undefined ? { path } : {}),
      examples: EXAMPLES.map((e) => e.args),
    });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (details.failed) {
      const msg = fc.defaultReportMessage(details) ?? 'property failed';
      const why = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance ?? '');
      throw new Error(`${msg}\n\n${why}\n\nreplay: EGRESS_KERNEL_SEED=${details.seed} EGRESS_KERNEL_PATH=${details.counterexamplePath ?? ''} npx vitest run test/kernel/differential`);
    }
    process.stderr.write(
      `kernel differential: ${details.numRuns} policies, ${compared} flows compared (nft ${comparedNft}) in ${seconds} s (seed ${details.seed}); refused by backend: nft ${refused.nft}, iptables ${refused.iptables}\n`,
    );
    if (path !== undefined) return; // a replay runs the one counterexample
    expect(details.numRuns, 'policies run against the kernel').toBe(RUNS);
    expect(details.numSkips, 'policies skipped').toBe(0);
    // nft refuses nothing (backends/nft/emit.ts): every flow of every policy was compared there.
    expect(refused.nft, 'policies nft refused').toBe(0);
    expect(comparedNft, 'flows compared on nft').toBeGreaterThanOrEqual(RUNS * MIN_PROBES);
  }, 900_000);
});
