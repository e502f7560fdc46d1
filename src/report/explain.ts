/**
 * What `explain` prints: a flow's verdict and the rules that decided it, for
 * people (one answer, or a table of `--flows` answers) and as `--json`
 * objects. Pure: decisions in, strings and objects out.
 */
import { locate } from '../diag/render.js';
import type { SourceMap } from '../diag/source.js';
import { FAMILIES, formatAddress, type Family } from '../policy/address.js';
import { icmpTypeName } from '../policy/protocols.js';
import { HOST_SOURCE, type RuleRef } from '../policy/types.js';
import type { ResolvedPolicy, ResolvedRule, ResolvedSelectors } from '../resolve/types.js';
import type { NameOutcome } from '../sim/dns.js';
import type { Decision, Flow } from '../sim/flow.js';
import { matchesSelectors } from '../sim/reference.js';
import { writeTable } from './table.js';

/** A rule as an Answer names it: its action, where it is in the policy (1-based line and column), its reason. */
export interface RuleJson {
  name: string;
  action: string;
  file: string;
  line: number;
  col: number;
  reason?: string;
}

/** Where a place in the policy is: file, 1-based line and column. */
export interface PlaceJson {
  file: string;
  line: number;
  col: number;
}

/** A forwarded flow's origin (SPEC §6): the source named, or its input interface and source address. */
export interface AnswerFrom {
  source?: string;
  in?: string;
  src?: string;
}

/** The flow an Answer is about, as explain read it (names and ids where given). */
export interface AnswerFlow {
  family: string;
  /** The destination address (`dst`, as lab and stats call it; `--to` on the command line). */
  dst: string;
  proto: string;
  port?: number;
  icmp?: string;
  user?: string;
  uid?: number;
  group?: string;
  gid?: number;
  via?: string;
  established?: boolean;
  /** A forwarded flow (SPEC §6): the source named, or its input interface and source address. */
  from?: AnswerFrom;
}

/**
 * `--to NAME` under `dns.proxy`: the forwarder answers it REFUSED (deny rules),
 * publishes its addresses into allow rules' sets before the program gets them
 * (and the verdict is for such an address), or only forwards it.
 */
export interface AnswerDns {
  name: string;
  answer: NameOutcome['answer'];
  rules: RuleJson[];
}

/** A deny rule that matched the flow but did not apply, because one of its `except` entries matches it too: the rule, and where that except is. */
export interface SparedJson {
  rule: RuleJson;
  except: PlaceJson;
}

/** What `explain` says about one flow; also its `--json` form. */
export interface Answer {
  verdict: Decision['verdict'];
  audit: boolean;
  decidedBy: Decision['step'];
  builtin?: string;
  rules: RuleJson[];
  flow: AnswerFlow;
  /** Forwarded flows: the forward sources the flow belongs to ([] = unlisted). */
  sources?: string[];
  line?: number;
  /**
   * `--to NAME` under `dns.proxy`: the forwarder answers it REFUSED (deny rules),
   * publishes its addresses into allow rules' sets before the program gets them
   * (and the verdict is for such an address), or only forwards it.
   */
  dns?: AnswerDns;
  /** Deny rules that matched the flow but did not apply because one of their `except` entries matches it too: the rule, and where that except is. */
  spared?: SparedJson[];
}

/**
 * What answers look up in a policy, gathered once per policy (`answering`)
 * and not per answer: `explain --flows` over a 10,000-rule policy spent
 * nearly all its time rebuilding a map of every rule for each flow
 * (BENCHMARKS.md, "explain --flows").
 */
export interface Answering {
  sources: SourceMap;
  /** Each rule's reason, by rule name. */
  reasons: Map<string, string | undefined>;
  /** The deny rules that have an except (only they can spare a flow) and whose destinations may hold the flow's, in policy order. */
  excepting(f: Flow): readonly ResolvedRule[];
  /** Each rule's RuleJson and each except's SparedJson, made the first time an answer names them (answers share them; nothing changes them). */
  named: WeakMap<object, RuleJson | SparedJson>;
}

export function answering(sources: SourceMap, p: ResolvedPolicy): Answering {
  return {
    sources,
    reasons: new Map([...p.allow, ...p.deny].map((r) => [r.ref.name, r.reason])),
    excepting: byDestination(p.deny.filter((r) => r.except.length > 0)),
    named: new WeakMap(),
  };
}

const NO_RULES: readonly ResolvedRule[] = [];

/**
 * The rules whose destinations contain a flow's address, plus those without
 * destinations ("anywhere"), in their order: a prefilter only, which drops
 * what `matchesSelectors` would refuse for its destination. Per family the
 * intervals are sorted by start with a running maximum of their ends, so a
 * lookup is a binary search and a walk back over the intervals that can
 * still reach the address.
 */
function byDestination(rules: ResolvedRule[]): (f: Flow) => readonly ResolvedRule[] {
  const anywhere = rules.flatMap((r, i) => (r.to === undefined ? [i] : []));
  const families = new Map<Family, { lo: bigint[]; hi: bigint[]; maxHi: bigint[]; rule: number[] }>();
  for (const fam of FAMILIES) {
    const xs = rules.flatMap((r, i) => (r.to ?? []).filter((d) => d.family === fam).map((d) => ({ lo: d.lo, hi: d.hi, rule: i })));
    xs.sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
    let max = -1n;
    families.set(fam, { lo: xs.map((x) => x.lo), hi: xs.map((x) => x.hi), maxHi: xs.map((x) => (max = x.hi > max ? x.hi : max)), rule: xs.map((x) => x.rule) });
  }
  const anywhereRules = anywhere.map((i) => rules[i]!);
  return (f) => {
    const x = families.get(f.family)!;
    let a = 0;
    let b = x.lo.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (x.lo[m]! <= f.dst) a = m + 1;
      else b = m;
    }
    // Most flows fall in no excepting rule's destinations: nothing is allocated for them.
    let hit: number[] | undefined;
    for (let i = a - 1; i >= 0 && x.maxHi[i]! >= f.dst; i--) if (x.hi[i]! >= f.dst) (hit ??= []).push(x.rule[i]!);
    if (hit === undefined) return anywhere.length ? anywhereRules : NO_RULES;
    if (hit.length === 1 && !anywhere.length) return [rules[hit[0]!]!];
    return [...new Set([...anywhere, ...hit])].sort((i, j) => i - j).map((i) => rules[i]!);
  };
}

/** A rule as an Answer names it: located in its source (line and column), with its reason. */
export function ruleJson(lookup: Answering, r: RuleRef): RuleJson {
  let j = lookup.named.get(r) as RuleJson | undefined;
  if (j === undefined) {
    const loc = locate(lookup.sources, r.span);
    const reason = lookup.reasons.get(r.name);
    j = { name: r.name, action: r.action, file: r.span.file, line: loc?.line ?? 0, col: loc?.col ?? 0, ...(reason !== undefined ? { reason } : {}) };
    lookup.named.set(r, j);
  }
  return j;
}

/** A deny rule spared by one of its excepts, as an Answer names it. */
function sparedJson(lookup: Answering, r: ResolvedRule, e: ResolvedSelectors): SparedJson {
  let j = lookup.named.get(e) as SparedJson | undefined;
  if (j === undefined) {
    const at = locate(lookup.sources, e.span);
    j = { rule: ruleJson(lookup, r.ref), except: { file: e.span.file, line: at?.line ?? 0, col: at?.col ?? 0 } };
    lookup.named.set(e, j);
  }
  return j;
}

/** The deny rules that govern a flow: the host's, or those of the sources a forwarded flow belongs to. */
function governs(r: ResolvedRule, f: Flow, d: Decision): boolean {
  for (const x of r.from) if (f.forwarded ? d.sources?.includes(x.name) : x.name === HOST_SOURCE) return true;
  return false;
}

/** A decision as an Answer: rules located in their source (line and column) with their reasons. */
export function answer(lookup: Answering, f: Flow, d: Decision, line?: number): Answer {
  const flow: AnswerFlow = { family: f.family, dst: formatAddress(f.family, f.dst), proto: f.proto };
  if (f.port !== undefined) flow.port = f.port;
  if (f.icmpType !== undefined) flow.icmp = icmpTypeName(f.family, f.icmpType);
  if (f.user?.name !== undefined) flow.user = f.user.name;
  if (f.user?.id !== undefined) flow.uid = f.user.id;
  if (f.group?.name !== undefined) flow.group = f.group.name;
  if (f.group?.id !== undefined) flow.gid = f.group.id;
  if (f.via !== undefined) flow.via = f.via;
  if (f.established) flow.established = true;
  if (f.forwarded) {
    const fw = f.forwarded;
    const from: AnswerFrom = {};
    if (fw.source !== undefined) from.source = fw.source;
    if (fw.in !== undefined) from.in = fw.in;
    if (fw.src !== undefined) from.src = formatAddress(f.family, fw.src);
    flow.from = from;
  }
  let spared: SparedJson[] | undefined;
  if (d.step !== 'builtin' && d.step !== 'unlisted')
    for (const r of lookup.excepting(f)) {
      if (!governs(r, f, d) || !matchesSelectors(r, f)) continue;
      const e = r.except.find((x) => matchesSelectors(x, f));
      if (e) (spared ??= []).push(sparedJson(lookup, r, e));
    }
  // The fields in this order: it is the order of --json's output.
  const a = { verdict: d.verdict, audit: d.audit, decidedBy: d.step } as Answer;
  if (d.builtin) a.builtin = d.builtin;
  a.rules = d.rules.map((r) => ruleJson(lookup, r));
  a.flow = flow;
  if (d.sources) a.sources = d.sources;
  if (line !== undefined) a.line = line;
  if (spared) a.spared = spared;
  return a;
}

function flowText(a: Answer): string {
  const f = a.flow;
  const what = f.proto === 'icmp' ? `icmp ${f.icmp ?? ''}`.trim() : f.proto === 'other' ? 'any other protocol' : f.port !== undefined ? `${f.proto}/${f.port}` : `${f.proto} (any port)`;
  const est = f.established ? ' (established)' : '';
  if (f.from) {
    const where = [f.from.in !== undefined ? `in ${f.from.in}` : '', f.from.src ?? ''].filter((x) => x !== '').join(', ');
    const src = f.from.source !== undefined ? `from ${f.from.source}${where ? ` (${where})` : ''}` : `forwarded${where ? ` (${where})` : ''}`;
    return `${f.dst} ${what} ${src}${f.via ? ` out ${f.via}` : ''}${est}`;
  }
  const who = f.user !== undefined ? `${f.user}${f.uid !== undefined ? ` (uid ${f.uid})` : ''}` : f.uid !== undefined ? `uid ${f.uid}` : 'unknown user';
  return `${f.dst} ${what} as ${who}${f.via ? ` via ${f.via}` : ''}${est}`;
}

const DNS_BUILTIN: Record<string, string> = {
  dns_forwarder: "the DNS guard: the forwarder's own DNS",
  dns_redirect: 'the DNS guard: redirected to the forwarder, which answers it',
  dns_bypass: 'the DNS guard: only the forwarder may send DNS over TLS (853)',
  into_source: 'into a forward source: traffic to a container or VM is not egress (other firewalls judge it)',
};

function because(a: Answer): string {
  switch (a.decidedBy) {
    case 'builtin':
      return DNS_BUILTIN[a.builtin!] ?? `builtin "${a.builtin}"`;
    case 'default':
      return a.spared?.length ? `no rule matched (${sparedText(a)}): the default` : 'no rule matched: the default';
    case 'deny':
      return `deny rule${a.rules.length > 1 ? 's' : ''} ${a.rules.map((r) => `"${r.name}"`).join(', ')}`;
    case 'allow':
      return `allow rule${a.rules.length > 1 ? 's' : ''} ${a.rules.map((r) => `"${r.name}"`).join(', ')}`;
    case 'unlisted':
      return 'no forward source ("unlisted")';
  }
}

function sparedText(a: Answer): string {
  const names = a.spared!.map((s) => `"${s.rule.name}"`).join(', ');
  return `deny rule${a.spared!.length > 1 ? 's' : ''} ${names} excepted it`;
}

function dnsText(a: Answer): string | undefined {
  const d = a.dns;
  if (!d) return undefined;
  const rules = d.rules.map((r) => `"${r.name}"`).join(', ');
  switch (d.answer) {
    case 'refused':
      return `dns: the forwarder answers "${d.name}" REFUSED (deny rule${d.rules.length > 1 ? 's' : ''} ${rules}): programs never learn its addresses`;
    case 'published':
      return `dns: the forwarder puts each address it answers for "${d.name}" into the sets of allow rule${d.rules.length > 1 ? 's' : ''} ${rules} before the program gets it; the verdict is for such an address`;
    case 'forwarded':
      return `dns: "${d.name}" is answered through the forwarder; no rule names it, so its addresses are judged as they are`;
  }
}

/** One answer for people: the flow, the verdict and why, each deciding rule with its place in the policy; for a name under dns.proxy, what the forwarder does with it. */
export function describeAnswer(a: Answer): string {
  const lines = [`${flowText(a)} [${a.flow.family}]`];
  if (a.sources?.length) lines.push(`  forward source${a.sources.length > 1 ? 's' : ''}: ${a.sources.join(', ')}`);
  lines.push(`  verdict: ${a.verdict}${a.audit ? ' (audit mode: logged, not blocked)' : ''} by ${because(a)}`);
  for (const r of a.rules) lines.push(`    ${r.action} ${r.name}  ${r.file}:${r.line}:${r.col}${r.reason ? `  (${r.reason})` : ''}`);
  for (const s of a.spared ?? []) lines.push(`    spared from deny ${s.rule.name}  ${s.rule.file}:${s.rule.line}:${s.rule.col} by its except at ${s.except.file}:${s.except.line}:${s.except.col}`);
  const dns = dnsText(a);
  if (dns) lines.push(`  ${dns}`);
  return lines.join('\n') + '\n';
}

const TABLE_HEADERS = ['line', 'flow', 'verdict', 'decided by'];

/** One answer's row of the `--flows` table: all that the table keeps of it. */
export function answerRow(a: Answer): string[] {
  return [String(a.line ?? ''), flowText(a), a.verdict + (a.audit ? ' (audit)' : ''), because(a)];
}

/** `--flows` answers as one table, a row per flow with its line in the flows file (answerRow), handed to `write` in pieces. */
export function writeAnswersTable(write: (s: string) => void, rows: readonly string[][], width?: number): void {
  writeTable(write, TABLE_HEADERS, rows, width !== undefined ? { width } : {});
}
