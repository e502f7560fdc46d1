/**
 * Shared set-up for the kernel suite (test/kernel/*.kernel.test.ts).
 *
 * - Fails, does not skip, when the kernel cannot be used (not root, no netns,
 *   a tool missing): the suite is the project's main proof and must not pass
 *   by doing nothing. The one skip rule is test/netns.ts's: the explicit,
 *   loud `EGRESS_SKIP_KERNEL=1`, never in CI.
 * - Snapshots the root namespace's firewall (nft, iptables, ip6tables) before
 *   a file's tests and asserts it is identical afterwards.
 * - One world per file; each policy gets a fresh host namespace, deleted in
 *   `finally` (and on SIGINT/SIGTERM by src/kernel/netns.ts).
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { BACKENDS } from '../../src/backends/registry.js';
import { hasErrors } from '../../src/diag/diagnostic.js';
import { renderText } from '../../src/diag/render.js';
import type { Ir, Loaded } from '../../src/index.js';
import { realExecer, type Execer } from '../../src/kernel/exec.js';
import { preflight } from '../../src/kernel/netns.js';
import type { LinuxTarget } from '../../src/backends/types.js';
import { loadFresh } from '../../src/kernel/backend.js';
import { describeFailure } from '../../src/kernel/exec.js';
import { compareProbes, type Comparison } from '../../src/lab/compare.js';
import type { Probe, ProbeOptions } from '../../src/lab/probe.js';
import { World } from '../../src/lab/world.js';
import type { Accounts } from '../../src/resolve/resolver.js';

export { kernelDescribe } from '../netns.js';

export interface KernelEnv {
  x: Execer;
  world: World;
}

/**
 * Preflight (fail when the kernel cannot be used) and the root namespace's
 * firewall snapshot, compared after the file's tests. Call inside a
 * `kernelDescribe` body.
 */
export function useRootGuard(x: Execer = realExecer()): void {
  let before = '';
  beforeAll(async () => {
    const problems = await preflight(x);
    if (problems.length) throw new Error(`the kernel suite cannot run here (outside CI, EGRESS_SKIP_KERNEL=1 skips it explicitly):\n  ${problems.join('\n  ')}`);
    before = await rootFirewallSnapshot(x);
  }, 120_000);
  afterAll(async () => {
    if (before) expect(await rootFirewallSnapshot(x), "the root namespace's firewall changed during the kernel suite").toBe(before);
  }, 120_000);
}

/**
 * `useRootGuard` plus one world for the file; the returned object is filled
 * in `beforeAll`. Call inside a `kernelDescribe` body.
 */
export function useKernel(): KernelEnv {
  const env = { x: realExecer() } as KernelEnv;
  useRootGuard(env.x);
  beforeAll(async () => {
    env.world = await World.create(env.x);
  }, 120_000);
  afterAll(async () => {
    await env.world?.close();
  }, 120_000);
  return env;
}

/** The registered backends the kernel can load (the suite fails if one is missing). */
export function kernelBackend(target: LinuxTarget) {
  const b = BACKENDS[target];
  if (!b) throw new Error(`backend "${target}" is not registered in src/backends/registry.ts`);
  return b;
}

export function mustLoad(l: Loaded, what: string): NonNullable<Loaded['ir']> {
  if (hasErrors(l.diagnostics) || !l.ir) throw new Error(`${what} did not load:\n${renderText(l.sources, l.diagnostics)}`);
  return l.ir;
}

/**
 * Compile `l` for `target`, load it into a fresh host namespace, run the
 * probes, and compare each with explain. The host is deleted afterwards,
 * also on failure.
 */
export async function probePolicy(env: KernelEnv, l: Loaded, target: LinuxTarget, probes: Probe[], accounts?: Accounts, opts: ProbeOptions = {}): Promise<Comparison[]> {
  const ir = mustLoad(l, 'policy');
  const art = kernelBackend(target).emit(ir);
  if (hasErrors(art.diagnostics) || !art.value) throw new Error(`backend "${target}" refused the policy:\n${renderText(l.sources, art.diagnostics)}`);
  return probeRuleset(env, ir, target, art.value.text, probes, accounts, opts);
}

/** Load ruleset `text` (for `target`) into a fresh host namespace and compare each probe with explain over `ir`. */
export async function probeRuleset(env: KernelEnv, ir: Ir, target: LinuxTarget, text: string, probes: Probe[], accounts?: Accounts, opts: ProbeOptions = {}): Promise<Comparison[]> {
  await env.world.listen({ tcp: probes.filter((p) => p.proto === 'tcp').map((p) => p.port!), udp: probes.filter((p) => p.proto === 'udp').map((p) => p.port!) });
  const host = await env.world.addHost();
  try {
    await loadInto(env.x, host.ns, target, text);
    return await compareProbes(env.x, host.ns, ir, probes, accounts, opts);
  } finally {
    await host.close();
  }
}

/** Load ruleset `text` into namespace `ns` with the loader `apply` ships (kernel/backend.ts), so what the suite proves is that loader. */
export async function loadInto(x: Execer, ns: string, target: LinuxTarget, text: string): Promise<void> {
  const f = await loadFresh({ execer: x, netns: ns }, target, { text, lineMap: new Map() });
  if (f) throw new Error(`${target} ruleset rejected by the kernel: ${f.message}\n${f.output}`);
}

/**
 * The root namespace's firewall as text, with counters and generator
 * timestamps taken out (they change on their own). Read-only commands.
 */
export async function rootFirewallSnapshot(x: Execer): Promise<string> {
  const parts: string[] = [];
  for (const argv of [['nft', 'list', 'ruleset'], ['iptables-save'], ['ip6tables-save']]) {
    const r = await x.run(argv[0]!, argv.slice(1), { timeoutMs: 30_000 });
    const text = r.code === 0 ? r.stdout : `(${describeFailure(argv, r)})`;
    parts.push(`== ${argv.join(' ')}\n${normalizeRuleset(text)}`);
  }
  return parts.join('\n');
}

export function normalizeRuleset(text: string): string {
  return text
    .split('\n')
    .filter((l) => !/^# (Generated by|Completed on)/.test(l))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]').replace(/packets \d+ bytes \d+/g, 'packets 0 bytes 0'))
    .join('\n');
}
