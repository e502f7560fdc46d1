/**
 * iptables side of the life cycle: the chains `EGRESS*` of the filter table
 * of iptables and ip6tables, and the one `OUTPUT -j EGRESS` jump per family.
 *
 * Atomicity: each family is one `iptables-restore --noflush` /
 * `ip6tables-restore --noflush` run, which the kernel commits whole. The two
 * families are two transactions; there is no way to commit them together.
 * Both are checked (`--test`) before either is committed, so a ruleset the
 * kernel refuses changes nothing; the window between the two commits is
 * covered by the intent record (see lifecycle.ts: an apply killed there is
 * undone by the next egress command or at boot).
 */
import { iptablesRemove, iptablesReapply } from '../backends/iptables/reapply.js';
import { iptablesSectionStart, splitIptables } from '../backends/iptables/emit.js';
import type { Artifact } from '../backends/types.js';
import { readIptablesLive as readOwned, readIptablesSaves } from '../backends/iptables/parse-live.js';
import type { LiveRuleset } from '../backends/live.js';
import type { Family } from '../policy/address.js';
import type { LoadFailure } from './nft.js';
import { KernelError, mustRun, runIn, withScratchNetns, type Where } from './where.js';

const TOOLS: Record<Family, { save: string; restore: string }> = {
  ipv4: { save: 'iptables-save', restore: 'iptables-restore' },
  ipv6: { save: 'ip6tables-save', restore: 'ip6tables-restore' },
};
const FAMILIES = ['ipv4', 'ipv6'] as const;

export interface IptablesLive {
  live: LiveRuleset;
  save: Record<Family, string>;
}

export async function readIptables(w: Where): Promise<IptablesLive> {
  const save = { ipv4: '', ipv6: '' };
  for (const f of FAMILIES) save[f] = await mustRun(w, [TOOLS[f].save, '-c', '-t', 'filter']);
  return { live: readIptablesSaves(save), save };
}

/** The two restore inputs that load `art` over what is live (idempotent: see backends/iptables/reapply.ts). */
export function iptablesInputs(art: Artifact, save: Record<Family, string>): Record<Family, string> {
  const sections = splitIptables(art.text);
  const out = { ipv4: '', ipv6: '' };
  for (const f of FAMILIES) out[f] = iptablesReapply(sections[f], readOwned(save[f]));
  return out;
}

/** `--test` both families against what is live. */
export async function checkIptables(w: Where, art: Artifact, save: Record<Family, string>): Promise<LoadFailure | undefined> {
  const inputs = iptablesInputs(art, save);
  for (const f of FAMILIES) {
    const r = await runIn(w, [TOOLS[f].restore, '--test', '--noflush'], inputs[f]);
    if (r.code !== 0) return iptablesFailure(f, r.stderr || r.stdout, art);
  }
  return undefined;
}

/**
 * Load both families, IPv6 first: should the second commit fail or the
 * process die between the two, the host is left with the new IPv6 side and
 * the old IPv4 side, never with a new IPv4 policy whose IPv6 twin is missing
 * — and the intent record makes the next egress run undo it.
 */
export async function loadIptables(w: Where, art: Artifact, save: Record<Family, string>): Promise<LoadFailure | undefined> {
  const inputs = iptablesInputs(art, save);
  for (const f of ['ipv6', 'ipv4'] as const) {
    const r = await runIn(w, [TOOLS[f].restore, '--noflush'], inputs[f]);
    if (r.code !== 0) return iptablesFailure(f, r.stderr || r.stdout, art);
  }
  return undefined;
}

/** Take every chain and jump of egress out of both families. */
export async function removeIptables(w: Where, save: Record<Family, string>): Promise<void> {
  for (const f of ['ipv4', 'ipv6'] as const) {
    const owned = readOwned(save[f]);
    if (!owned.jumps && !owned.chains.length) continue;
    await mustRun(w, [TOOLS[f].restore, '--noflush'], iptablesRemove(owned));
  }
}

/** The kernel's own listing of a ruleset, loaded into a scratch namespace. */
export async function canonicalIptables(w: Where, art: Artifact): Promise<LiveRuleset> {
  return withScratchNetns(w.execer, async (s) => {
    const cur = await readIptables(s);
    const f = await loadIptables(s, art, cur.save);
    if (f) throw new KernelError(f.message, f.output);
    return (await readIptables(s)).live;
  });
}

/** `iptables-restore: line N failed` → the artifact line (each section is a contiguous run of the artifact up to the OUTPUT jump). */
export function iptablesFailure(f: Family, output: string, art: Artifact): LoadFailure {
  const rules: LoadFailure['rules'] = [];
  const lines = art.text.split('\n');
  const start = iptablesSectionStart(art.text, f);
  for (const m of output.matchAll(/(?:line:? (\d+) failed|Error occurred at line: (\d+))/g)) {
    const n = start + Number(m[1] ?? m[2]) - 1;
    const rule = art.lineMap.get(n);
    if (rule && !rules.some((r) => r.rule === rule)) rules.push({ rule, line: lines[n - 1]?.trim() ?? '' });
  }
  const first = output.trim().split('\n')[0] ?? '';
  return { message: `${TOOLS[f].restore} rejected the ruleset: ${first}`, output: output.trim(), rules };
}
