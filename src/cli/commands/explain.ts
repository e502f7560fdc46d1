import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { isHostname, parseAddress } from '../../policy/address.js';
import { answer, answersTable, describeAnswer, type Answer } from '../../report/explain.js';
import { systemResolver, type Accounts, type Resolver } from '../../resolve/resolver.js';
import type { Flow } from '../../sim/flow.js';
import { FlowError, parseFlow, parseFlowsFile, type FlowSpec } from '../../sim/flow-parse.js';
import { indexedEvaluator } from '../../sim/indexed.js';
import { CommandError, UsageError, type Io } from '../io.js';
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
    else io.stdout(answersTable(answers));
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
  else for (const a of answers) io.stdout(describeAnswer(a));
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
