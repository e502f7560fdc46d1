import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { locate } from '../../diag/render.js';
import type { SourceMap } from '../../diag/source.js';
import { formatAddress, isHostname, parseAddress } from '../../policy/address.js';
import { icmpTypeName } from '../../policy/protocols.js';
import type { RuleRef } from '../../policy/types.js';
import { systemResolver, type Accounts, type Resolver } from '../../resolve/resolver.js';
import type { ResolvedPolicy } from '../../resolve/types.js';
import type { Decision, Flow } from '../../sim/flow.js';
import { FlowError, parseFlow, parseFlowsFile, type FlowSpec } from '../../sim/flow-parse.js';
import { indexedEvaluator } from '../../sim/indexed.js';
import { CommandError, UsageError, type Io } from '../io.js';
import { table } from '../../report/table.js';
import { failed, load, writeJson, type PolicyFlags } from '../shared.js';

export interface ExplainFlags extends PolicyFlags, Omit<FlowSpec, 'to'> {
  to?: string;
  flows?: string;
}

export async function explainCommand(io: Io, file: string, flags: ExplainFlags, resolver: Resolver = systemResolver()): Promise<number> {
  if (!flags.to && !flags.flows) throw new UsageError('explain needs --to ADDR (or --flows FILE)');
  if (flags.to && flags.flows) throw new UsageError('give --to or --flows, not both');
  const l = await load(io, file, flags, { resolver });
  if (failed(l)) return 1;
  const ir = l.ir!;
  const evaluate = indexedEvaluator(ir);
  const accounts = await resolver.accounts();
  const resolved = l.resolved!;

  if (flags.flows) {
    const text = flags.flows === '-' ? await (io.stdin?.() ?? Promise.resolve('')) : await readFile(resolvePath(io.cwd, flags.flows), 'utf8').catch((e) => {
      throw new CommandError(`cannot read ${flags.flows}: ${(e as Error).message}`);
    });
    const rows = parseFlowsFile(text);
    const answers: Answer[] = [];
    let bad = 0;
    for (const r of rows) {
      if (r.error || !r.spec) {
        bad++;
        io.stderr(`${flags.flows}:${r.line}: error: ${r.error}\n`);
        continue;
      }
      try {
        for (const f of await flowsFor(r.spec, accounts, resolver)) answers.push(answer(l.sources, resolved, f, evaluate(f), r.line));
      } catch (e) {
        bad++;
        io.stderr(`${flags.flows}:${r.line}: error: ${(e as Error).message}\n`);
      }
    }
    if (flags.json) for (const a of answers) io.stdout(JSON.stringify(a) + '\n');
    else printTable(io, answers);
    return bad ? 1 : 0;
  }

  const spec: FlowSpec = { to: flags.to! };
  for (const k of ['port', 'icmp', 'user', 'group', 'via'] as const) if (flags[k] !== undefined) spec[k] = flags[k];
  if (flags.established) spec.established = true;
  let flows: Flow[];
  try {
    flows = await flowsFor(spec, accounts, resolver);
  } catch (e) {
    if (e instanceof FlowError) throw new UsageError(e.message);
    throw e;
  }
  const answers = flows.map((f) => answer(l.sources, resolved, f, evaluate(f)));
  if (flags.json) writeJson(io, answers.length === 1 ? answers[0] : answers);
  else for (const a of answers) io.stdout(describe(a));
  return 0;
}

/** A hostname destination is explained for each of its addresses (as the kernel would see them). */
async function flowsFor(spec: FlowSpec, accounts: Accounts, resolver: Resolver): Promise<Flow[]> {
  if (parseAddress(spec.to.trim()) || !isHostname(spec.to.trim())) return [parseFlow(spec, accounts)];
  let addrs: string[];
  try {
    const a = await resolver.lookupHost(spec.to.trim());
    addrs = [...a.ipv4, ...a.ipv6];
  } catch (e) {
    throw new FlowError(`cannot resolve ${JSON.stringify(spec.to)}: ${(e as Error).message}`);
  }
  if (!addrs.length) throw new FlowError(`${JSON.stringify(spec.to)} has no addresses`);
  return addrs.map((to) => parseFlow({ ...spec, to }, accounts));
}

export interface Answer {
  verdict: Decision['verdict'];
  audit: boolean;
  decidedBy: Decision['step'];
  builtin?: string;
  rules: { name: string; action: string; file: string; line: number; col: number; reason?: string }[];
  flow: { family: string; to: string; proto: string; port?: number; icmp?: string; user?: string; uid?: number; group?: string; gid?: number; via?: string; established?: boolean };
  line?: number;
}

export function answer(sources: SourceMap, p: ResolvedPolicy, f: Flow, d: Decision, line?: number): Answer {
  const reasons = new Map([...p.allow, ...p.deny].map((r) => [r.ref.name, r.reason]));
  const ref = (r: RuleRef) => {
    const loc = locate(sources, r.span);
    const reason = reasons.get(r.name);
    return { name: r.name, action: r.action, file: r.span.file, line: loc?.line ?? 0, col: loc?.col ?? 0, ...(reason !== undefined ? { reason } : {}) };
  };
  const flow: Answer['flow'] = { family: f.family, to: formatAddress(f.family, f.dst), proto: f.proto };
  if (f.port !== undefined) flow.port = f.port;
  if (f.icmpType !== undefined) flow.icmp = icmpTypeName(f.family, f.icmpType);
  if (f.user?.name !== undefined) flow.user = f.user.name;
  if (f.user?.id !== undefined) flow.uid = f.user.id;
  if (f.group?.name !== undefined) flow.group = f.group.name;
  if (f.group?.id !== undefined) flow.gid = f.group.id;
  if (f.via !== undefined) flow.via = f.via;
  if (f.established) flow.established = true;
  return {
    verdict: d.verdict,
    audit: d.audit,
    decidedBy: d.step,
    ...(d.builtin ? { builtin: d.builtin } : {}),
    rules: d.rules.map(ref),
    flow,
    ...(line !== undefined ? { line } : {}),
  };
}

function flowText(a: Answer): string {
  const f = a.flow;
  const what = f.proto === 'icmp' ? `icmp ${f.icmp ?? ''}`.trim() : f.proto === 'other' ? 'any other protocol' : f.port !== undefined ? `${f.proto}/${f.port}` : `${f.proto} (any port)`;
  const who = f.user !== undefined ? `${f.user}${f.uid !== undefined ? ` (uid ${f.uid})` : ''}` : f.uid !== undefined ? `uid ${f.uid}` : 'unknown user';
  return `${f.to} ${what} as ${who}${f.via ? ` via ${f.via}` : ''}${f.established ? ' (established)' : ''}`;
}

function because(a: Answer): string {
  switch (a.decidedBy) {
    case 'builtin':
      return `builtin "${a.builtin}"`;
    case 'default':
      return 'no rule matched: the default';
    case 'deny':
      return `deny rule${a.rules.length > 1 ? 's' : ''} ${a.rules.map((r) => `"${r.name}"`).join(', ')}`;
    case 'allow':
      return `allow rule${a.rules.length > 1 ? 's' : ''} ${a.rules.map((r) => `"${r.name}"`).join(', ')}`;
  }
}

function describe(a: Answer): string {
  const lines = [`${flowText(a)} [${a.flow.family}]`, `  verdict: ${a.verdict}${a.audit ? ' (audit mode: logged, not blocked)' : ''} by ${because(a)}`];
  for (const r of a.rules) lines.push(`    ${r.action} ${r.name}  ${r.file}:${r.line}:${r.col}${r.reason ? `  (${r.reason})` : ''}`);
  return lines.join('\n') + '\n';
}

function printTable(io: Io, answers: Answer[]): void {
  io.stdout(
    table(
      ['line', 'flow', 'verdict', 'decided by'],
      answers.map((a) => [String(a.line ?? ''), flowText(a), a.verdict + (a.audit ? ' (audit)' : ''), because(a)]),
    ),
  );
}
