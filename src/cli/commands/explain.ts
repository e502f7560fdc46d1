import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { Ir } from '../../ir/types.js';
import { FAMILIES, formatAddress, isHostname, parseAddress, type Family } from '../../policy/address.js';
import { answer, answerRow, answering, describeAnswer, ruleJson, writeAnswersTable, type Answer, type Answering } from '../../report/explain.js';
import { colourVerdictLine } from '../../diag/colour.js';
import { systemResolver, type Accounts, type Resolver } from '../../resolve/resolver.js';
import { nameOutcome, unnamedAddress, withAnswer, type NameOutcome } from '../../sim/dns.js';
import type { Decision, Flow } from '../../sim/flow.js';
import { FlowError, parseFlow, parseFlowsFile, type FlowSpec } from '../../sim/flow-parse.js';
import { indexedEvaluator } from '../../sim/indexed.js';
import { CommandError, UsageError, type Io } from '../io.js';
import type { JsonDiagnostic } from '../../diag/render.js';
import { writeResult } from '../envelope.js';
import { diagnosticsJson, failed, load, type PolicyFlags } from '../shared.js';

export interface ExplainFlags extends PolicyFlags, Omit<FlowSpec, 'to'> {
  to?: string;
  flows?: string;
}

export async function explainCommand(io: Io, file: string, flags: ExplainFlags, resolver: Resolver = systemResolver()): Promise<number> {
  if (!flags.to && !flags.flows) throw new UsageError('explain needs --to ADDR (or --flows FILE)');
  if (flags.to && flags.flows) throw new UsageError('give --to or --flows, not both');
  const l = await load(io, file, flags, { resolver });
  if (failed(l)) {
    if (flags.json) writeResult(io, 'explain', { ok: false, result: null, diagnostics: diagnosticsJson(l) });
    return 1;
  }
  const ir = l.ir!;
  const evaluate = indexedEvaluator(ir);
  const accounts = await resolver.accounts();
  // Built once for every flow: what answers look up in the policy, and the index for each name's published answer.
  const answerer = explainer(answering(l.sources, l.resolved!), ir, evaluate);

  if (flags.flows) {
    const text = flags.flows === '-' ? await (io.stdin?.() ?? Promise.resolve('')) : await readFile(resolvePath(io.cwd, flags.flows), 'utf8').catch((e) => {
      throw new CommandError(`cannot read ${flags.flows}: ${(e as Error).message}`);
    });
    const rows = parseFlowsFile(text);
    // With --json every answer goes into the envelope; the table keeps only each answer's row.
    const answers: Answer[] = [];
    const tableRows: string[][] = [];
    // A row that is not a flow: an error at its line (on standard error, or in the envelope's diagnostics with --json); the others are answered.
    const bad: JsonDiagnostic[] = [];
    const rowError = (line: number, message: string) => {
      bad.push({ severity: 'error', code: 'flow', message, file: flags.flows!, line });
      if (!flags.json) io.stderr(`${flags.flows}:${line}: error: ${message}\n`);
    };
    for (const r of rows) {
      if (r.error || !r.spec) {
        rowError(r.line, r.error ?? 'not a flow');
        continue;
      }
      try {
        // A literal address is answered at once, without an await (and its promises) per row.
        const xs = flowsFor(r.spec, accounts, resolver, ir);
        for (const x of Array.isArray(xs) ? xs : await xs) {
          const a = answerer(x, r.line);
          if (flags.json) answers.push(a);
          else tableRows.push(answerRow(a));
        }
      } catch (e) {
        rowError(r.line, (e as Error).message);
      }
    }
    if (flags.json) writeResult(io, 'explain', { ok: !bad.length, result: answers, diagnostics: [...diagnosticsJson(l), ...bad] });
    else writeAnswersTable(io.stdout, tableRows, io.columns);
    return bad.length ? 1 : 0;
  }

  const spec: FlowSpec = { to: flags.to! };
  for (const k of ['port', 'icmp', 'user', 'group', 'via', 'from', 'in'] as const) if (flags[k] !== undefined) spec[k] = flags[k];
  const named = spec.from !== undefined && !parseAddress(spec.from.trim()) ? spec.from.trim() : undefined;
  if (named !== undefined && !ir.forward?.sources.some((s) => s.name === named)) {
    const known = ir.forward?.sources.map((s) => s.name) ?? [];
    throw new UsageError(`--from ${named}: the policy has no forward source of that name${known.length ? ` (it has ${known.join(', ')})` : ' (it has no "forward:" section)'}`);
  }
  if (flags.established) spec.established = true;
  let flows: Explained[];
  try {
    flows = await flowsFor(spec, accounts, resolver, ir);
  } catch (e) {
    if (e instanceof FlowError) throw new UsageError(e.message);
    throw e;
  }
  const answers = flows.map((x) => answerer(x));
  // One flow: its answer's verdict, audit and rules also beside the envelope's fields, as SPEC §3 has them for explain --json.
  const one = answers.length === 1 ? answers[0]! : undefined;
  if (flags.json) writeResult(io, 'explain', { ok: true, result: answers, diagnostics: diagnosticsJson(l), ...(one ? { extra: { verdict: one.verdict, audit: one.audit, rules: one.rules } } : {}) });
  else for (const a of answers) io.stdout(colourVerdictLine(describeAnswer(a), !!io.colour?.stdout));
  return 0;
}

/** A flow to explain, and for a name under `dns.proxy` what the forwarder does with it. */
interface Explained {
  flow: Flow;
  dns?: { name: string; outcome: NameOutcome; addresses: { family: Family; value: bigint }[]; placeholder: boolean };
}

/**
 * A name under `dns.proxy` is explained as a program sees it: its lookup goes
 * through the forwarder, which refuses it (a deny rule names it) or publishes
 * the answer into the allow rules that name it before the program connects.
 * The index with a published answer is built once per name and answer, not
 * per flow.
 */
function explainer(lookup: Answering, ir: Ir, evaluate: (f: Flow) => Decision): (x: Explained, line?: number) => Answer {
  const published = new Map<string, (f: Flow) => Decision>();
  const publishedEvaluator = (name: string, addresses: { family: Family; value: bigint }[]) => {
    const key = `${name} ${addresses.map((a) => `${a.family}:${a.value}`).join(' ')}`;
    let e = published.get(key);
    if (!e) published.set(key, (e = indexedEvaluator(withAnswer(ir, name, addresses))));
    return e;
  };
  return (x, line) => {
    if (!x.dns) return answer(lookup, x.flow, evaluate(x.flow), line);
    const o = x.dns.outcome;
    const d: Decision =
      o.answer === 'refused'
        ? { verdict: ir.denyVerdict, audit: ir.mode === 'audit', step: 'deny', rules: o.rules }
        : o.answer === 'published'
          ? publishedEvaluator(x.dns.name, x.dns.addresses)(x.flow)
          : evaluate(x.flow);
    const a = answer(lookup, x.flow, d, line);
    if (x.dns.placeholder) a.flow.dst = `(an address answered for ${x.dns.name})`;
    a.dns = { name: x.dns.name, answer: o.answer, rules: o.rules.map((r) => ruleJson(lookup, r)) };
    return a;
  };
}

/**
 * The flows a spec stands for: a literal address's one flow at once, a hostname's (resolved) later.
 * No literal address is a hostname (an IPv4 address's last label is all digits, an IPv6 one has ':'), so an
 * address is parsed once, by parseFlow, and what is neither gets its "bad destination" error.
 */
function flowsFor(spec: FlowSpec, accounts: Accounts, resolver: Resolver, ir?: Ir): Explained[] | Promise<Explained[]> {
  const to = spec.to.trim();
  return isHostname(to) ? nameFlows(to, spec, accounts, resolver, ir) : [{ flow: parseFlow(spec, accounts) }];
}

/**
 * A hostname destination is explained for each of its addresses (as the kernel would see them). Under
 * `dns.proxy`, a name the forwarder refuses or publishes and that cannot be resolved here is explained
 * once per family with an address no rule names, standing for whatever the forwarder answers.
 */
async function nameFlows(to: string, spec: FlowSpec, accounts: Accounts, resolver: Resolver, ir?: Ir): Promise<Explained[]> {
  const outcome = ir ? nameOutcome(ir, to) : undefined;
  let addrs: string[] = [];
  let failure: string | undefined;
  try {
    const a = await resolver.lookupHost(to);
    addrs = [...a.ipv4, ...a.ipv6];
    if (!addrs.length) failure = `${JSON.stringify(spec.to)} has no addresses`;
  } catch (e) {
    failure = `cannot resolve ${JSON.stringify(spec.to)}: ${(e as Error).message}`;
  }
  const name = to.toLowerCase().replace(/\.$/, '');
  if (failure) {
    if (!ir || !outcome || outcome.answer === 'forwarded') throw new FlowError(failure);
    const fams = outcome.answer === 'published' ? outcome.families : FAMILIES;
    const out: Explained[] = [];
    for (const family of fams) {
      const v = unnamedAddress(ir, family);
      if (v === undefined) continue;
      const flow = parseFlow({ ...spec, to: formatAddress(family, v) }, accounts);
      out.push({ flow, dns: { name, outcome, addresses: [{ family, value: v }], placeholder: true } });
    }
    if (!out.length) throw new FlowError(failure);
    return out;
  }
  const flows = addrs.map((a) => parseFlow({ ...spec, to: a }, accounts));
  if (!outcome) return flows.map((flow) => ({ flow }));
  const addresses = flows.map((f) => ({ family: f.family, value: f.dst }));
  return flows.map((flow) => ({ flow, dns: { name, outcome, addresses, placeholder: false } }));
}
