/** What `egress lab` prints: a table of every probe per backend (the forwarded ones in their own), a summary, and the lab's assumptions. */
import type { SourceMap } from '../diag/source.js';
import { renderText, toJson, type JsonDiagnostic } from '../diag/render.js';
import type { LinuxTarget } from '../backends/types.js';
import type { Verdict } from '../policy/types.js';
import type { Accounts } from '../resolve/resolver.js';
import type { Builtin, Decision } from '../sim/flow.js';
import type { Comparison, Expected } from '../lab/compare.js';
import type { LabContainer } from '../lab/forward.js';
import type { HostPin, LabIdentity, LabReport } from '../lab/lab.js';
import type { KernelVerdict, Outcome, Probe, ProbeOrigin } from '../lab/probe.js';
import type { NotProbed, ProbeWhy } from '../lab/probes.js';
import { table } from './table.js';

function nameOf(table: Map<string, number>, id: number): string | undefined {
  for (const [n, i] of table) if (i === id) return n;
  return undefined;
}

export function flowText(p: Probe, accounts: Accounts): string {
  const what = p.proto === 'icmp' ? 'icmp echo-request' : `${p.proto}/${p.port}`;
  // A forwarded packet has no owner (its origin is the table's "from" column).
  if (p.from) return `${what} to ${p.host ? `${p.host} (${p.dst})` : p.dst}`;
  const user = nameOf(accounts.users, p.uid);
  const group = nameOf(accounts.groups, p.gid);
  const primary = p.uid === 0 ? p.gid === 0 : accounts.primaryGroup.get(p.uid) === p.gid;
  const who = user ?? `uid ${p.uid}`;
  const to = p.name !== undefined ? `${p.name} (${p.dst.includes(':') ? 'AAAA' : 'A'} ${p.dst})` : p.host ? `${p.host} (${p.dst})` : p.dst;
  return `${what} to ${to} as ${who}${primary ? '' : ` (group ${group ?? p.gid})`}`;
}

/** Where a forwarded probe came from: `docker (198.51.100.1 in br-lab0)`, `no source (192.0.2.1 in lab-unl0)`. */
export function originText(o: ProbeOrigin): string {
  return `${o.source ?? 'no source'} (${o.src} in ${o.in})`;
}

function explainText(c: Comparison): string {
  const d = c.decision;
  const forwarded = c.result.probe.from !== undefined;
  const by =
    d.step === 'allow' || d.step === 'deny'
      ? `${d.step} ${d.rules.map((r) => r.name).join(',')}`
      : d.step === 'builtin'
        ? `builtin ${d.builtin}`
        : d.step === 'unlisted'
          ? 'unlisted (from no source)'
          : forwarded
            ? `forward default${d.sources?.length ? ` of ${d.sources.join(',')}` : ''}`
            : 'default';
  if (c.expected === 'refused') return `refused at DNS by ${by}`;
  return `${d.verdict}${d.audit ? ' (audit)' : ''} by ${by}`;
}

function kernelText(c: Comparison | undefined): string {
  if (!c) return '-';
  return `${c.kernel} (${c.result.detail})`;
}

export interface TargetSummary {
  probes: number;
  through: number;
  blocked: number;
  rejected: number;
  dropped: number;
  /** Name probes answered REFUSED (a deny rule's names under dns.proxy). */
  refused: number;
  errors: number;
  disagreements: number;
}

export function summarize(cs: Comparison[]): TargetSummary {
  return {
    probes: cs.length,
    through: cs.filter((c) => c.kernel === 'accept').length,
    blocked: cs.filter((c) => c.kernel === 'reject' || c.kernel === 'drop' || c.kernel === 'refused').length,
    rejected: cs.filter((c) => c.kernel === 'reject').length,
    dropped: cs.filter((c) => c.kernel === 'drop').length,
    refused: cs.filter((c) => c.kernel === 'refused').length,
    errors: cs.filter((c) => c.kernel === 'error').length,
    disagreements: cs.filter((c) => !c.agree).length,
  };
}

/** Whether the rehearsal passed: every backend ran and the kernel agreed with explain on every probe. */
export function labOk(r: Pick<LabReport, 'targets'>): boolean {
  return r.targets.every((t) => !t.error && t.comparisons.every((c) => c.agree));
}

/** Per rule and reason, the "not probed" entries shown before "… N more" (all of them with --verbose). */
export const NOT_PROBED_SHOWN = 3;

export interface LabTextOptions {
  /** Every "not probed" entry (they are grouped by rule and reason, a few each, otherwise). */
  verbose?: boolean;
  /** The terminal's width: the probe tables are cut to fit it. */
  width?: number;
}

/**
 * "not probed" lines grouped by rule and reason: a rule with 10,000 addresses
 * outside the documentation ranges printed 10,000 lines (79,440 on a big
 * policy); now one line per rule and reason, with its first few entries.
 */
export function notProbedLines(r: Pick<LabReport, 'notProbed'>, opts: LabTextOptions = {}): string[] {
  const groups = new Map<string, { rule: string; why: string; what: string[] }>();
  for (const n of r.notProbed) {
    const key = JSON.stringify([n.rule, n.why]);
    const g = groups.get(key) ?? { rule: n.rule, why: n.why, what: [] };
    g.what.push(n.what);
    groups.set(key, g);
  }
  const out: string[] = [];
  for (const g of groups.values()) {
    if (opts.verbose || g.what.length <= NOT_PROBED_SHOWN + 1) {
      for (const w of g.what) out.push(`  rule "${g.rule}": ${w}: ${g.why}`);
      continue;
    }
    const more = g.what.length - NOT_PROBED_SHOWN;
    out.push(`  rule "${g.rule}": ${g.what.slice(0, NOT_PROBED_SHOWN).join(', ')} and ${more.toLocaleString('en-US')} more (${g.what.length.toLocaleString('en-US')} in all): ${g.why}`);
  }
  return out;
}

export function renderLabText(file: string, r: LabReport, sources: SourceMap, opts: LabTextOptions = {}): string {
  const out: string[] = [];
  const targets = r.targets.map((t) => t.target);
  const row = (i: number) => {
    const p = r.planned[i]!;
    const cs = r.targets.map((t) => t.comparisons[i]);
    const bad = cs.some((c) => c && !c.agree);
    const first = cs.find((c) => c);
    // A name probe's flow is the address the answer held (the first target's).
    const origin = p.probe.from ? [originText(p.probe.from)] : [];
    return [p.rule, p.why, ...origin, flowText(first?.result.probe ?? p.probe, r.accounts), first ? explainText(first) : '-', ...cs.map(kernelText), bad ? 'DISAGREES' : ''];
  };
  const indices = r.planned.map((_, i) => i);
  const local = indices.filter((i) => !r.planned[i]!.probe.from);
  const forwarded = indices.filter((i) => r.planned[i]!.probe.from);
  out.push(`egress lab: ${file}, rehearsed in network namespaces with ${targets.join(' and ')}`);
  out.push('');
  const fit = opts.width !== undefined ? { width: opts.width } : {};
  out.push(table(['rule', 'probe', 'flow', 'explain', ...targets, ''], local.map(row), fit));
  if (forwarded.length) {
    out.push('', 'forwarded, from containers behind the host (explain --from ADDRESS --in INTERFACE):', '');
    out.push(table(['rule', 'probe', 'from', 'flow', 'explain', ...targets, ''], forwarded.map(row), fit));
  }
  for (const t of r.targets) {
    if (t.error) {
      out.push(`${t.target}: ERROR: ${t.error}`);
      if (t.diagnostics?.length) out.push(renderText(sources, t.diagnostics).trimEnd());
      continue;
    }
    out.push(`${t.target}: ${summaryText(summarize(t.comparisons))}`);
    if (forwarded.length) out.push(`${t.target}, forwarded: ${summaryText(summarize(forwarded.flatMap((i) => t.comparisons[i] ?? [])))}`);
  }
  if (r.notProbed.length) {
    const lines = notProbedLines(r, opts);
    out.push('', `not probed${lines.length < r.notProbed.length ? ` (${r.notProbed.length.toLocaleString('en-US')}, grouped by rule and reason; -v lists each)` : ''}:`, ...lines);
  }
  if (r.containers.length) {
    out.push('', 'containers behind each host namespace (forwarding on there only; the world routes their addresses back while they probe):');
    for (const c of r.containers) out.push(`  ${c.source ?? 'no source (unlisted)'}: ${c.hostIf}, ${Object.values(c.addresses).join(', ')}`);
  }
  if (r.hosts.length) {
    out.push('', 'hostnames pinned to documentation addresses for the rehearsal (in each host namespace\'s /etc/hosts; probes resolve them there first):');
    for (const h of r.hosts) out.push(`  ${h.name} -> ${[...h.ipv4, ...h.ipv6].join(', ')}`);
  }
  const spare = r.identities.filter((i) => i.spare);
  if (spare.length) {
    out.push('', 'not on this machine, rehearsed as a spare id:');
    for (const i of spare) out.push(`  ${i.kind} ${i.name} -> ${i.kind === 'user' ? 'uid' : 'gid'} ${i.id}`);
  }
  return out.join('\n') + '\n';
}

function summaryText(s: TargetSummary): string {
  return (
    `${s.probes} probes: ${s.through} got through, ${s.blocked} blocked (${s.rejected} rejected, ${s.dropped} dropped${s.refused ? `, ${s.refused} refused at DNS` : ''})` +
    (s.errors ? `, ${s.errors} probe errors` : '') +
    (s.disagreements ? `; ${s.disagreements} DISAGREE with explain` : '; the kernel agrees with explain on every probe')
  );
}

/** A backend the lab could not rehearse: why (the backend refused the policy, or the kernel the ruleset), with the diagnostics when there are any. */
export interface LabTargetError {
  error: string;
  diagnostics?: JsonDiagnostic[];
}

/** A backend's probes counted by what the kernel did; `forwarded`, under `forward:`, counts the forwarded probes alone. */
export interface LabTargetCounts extends TargetSummary {
  forwarded?: TargetSummary;
}

/** One backend's line of `summary` in lab --json. */
export type LabTargetSummary = LabTargetError | LabTargetCounts;

/** A probe's flow in lab --json: the probe (`dst` the address the answer held, for a name probe), with the user and group names where the host has them. */
export interface LabFlowJson extends Probe {
  user?: string;
  group?: string;
}

/** What explain decided for a probe (the first backend's result; `rules` by name). */
export interface LabExplainJson {
  verdict: Verdict;
  audit: boolean;
  decidedBy: Decision['step'];
  rules: string[];
  builtin?: Builtin;
  sources?: string[];
}

/** What one backend's kernel did with a probe, and whether that agrees with explain; a name probe's `dst` and every address `answered`. */
export interface LabKernelProbe {
  verdict: KernelVerdict;
  outcome: Outcome;
  detail: string;
  dst?: string;
  answered?: string[];
  agree: boolean;
}

/** One planned probe in lab --json; `explain` and `expected` absent when no backend ran it, `kernel` by backend. */
export interface LabProbeJson {
  rule: string;
  why: ProbeWhy;
  flow: LabFlowJson;
  explain?: LabExplainJson;
  expected?: Expected;
  kernel: Record<string, LabKernelProbe>;
}

/** `lab --json`'s result (the envelope's `ok` is labOk: every backend ran and agreed with explain on every probe); `summary` by backend. */
export interface LabJson {
  file: string;
  targets: LinuxTarget[];
  summary: Record<string, LabTargetSummary>;
  probes: LabProbeJson[];
  notProbed: NotProbed[];
  containers: LabContainer[];
  hosts: HostPin[];
  identities: LabIdentity[];
}

export function labJson(file: string, r: LabReport, sources: SourceMap): LabJson {
  return {
    file,
    targets: r.targets.map((t) => t.target),
    summary: Object.fromEntries(
      r.targets.map((t): [string, LabTargetSummary] => {
        if (t.error) return [t.target, { error: t.error, ...(t.diagnostics ? { diagnostics: toJson(sources, t.diagnostics) } : {}) }];
        const fwd = t.comparisons.filter((c, i) => c && r.planned[i]!.probe.from);
        return [t.target, { ...summarize(t.comparisons), ...(r.containers.length ? { forwarded: summarize(fwd) } : {}) }];
      }),
    ),
    probes: r.planned.map((p, i): LabProbeJson => {
      const first = r.targets.map((t) => t.comparisons[i]).find((c) => c);
      const user = nameOf(r.accounts.users, p.probe.uid);
      const group = nameOf(r.accounts.groups, p.probe.gid);
      return {
        rule: p.rule,
        why: p.why,
        // A name probe's destination is the address the answer held (the first target's), as in the table.
        flow: { ...p.probe, ...(first && p.probe.name !== undefined ? { dst: first.result.probe.dst } : {}), ...(user !== undefined ? { user } : {}), ...(group !== undefined ? { group } : {}) },
        ...(first
          ? {
              explain: {
                verdict: first.decision.verdict,
                audit: first.decision.audit,
                decidedBy: first.decision.step,
                rules: first.decision.rules.map((x) => x.name),
                ...(first.decision.builtin ? { builtin: first.decision.builtin } : {}),
                ...(first.decision.sources ? { sources: first.decision.sources } : {}),
              },
              expected: first.expected,
            }
          : {}),
        kernel: Object.fromEntries(
          r.targets.filter((t) => t.comparisons[i]).map((t): [string, LabKernelProbe] => {
            const c = t.comparisons[i]!;
            const named = c.result.probe.name !== undefined ? { dst: c.result.probe.dst, answered: c.result.answered ?? [] } : {};
            return [t.target, { verdict: c.kernel, outcome: c.result.outcome, detail: c.result.detail, ...named, agree: c.agree }];
          }),
        ),
      };
    }),
    notProbed: r.notProbed,
    containers: r.containers,
    hosts: r.hosts,
    identities: r.identities,
  };
}
