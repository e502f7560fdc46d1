/**
 * `egress learn [LOG…] --policy POLICY [--write]`: allow rules that would
 * admit what the logs show denied, as YAML to review; `--write` merges them
 * into the policy file (comments and layout kept). Before anything is
 * printed as ready or written, the merged policy is loaded and every learned
 * flow is checked to be accepted by it.
 */
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { renderText } from '../../diag/render.js';
import { writeFileAtomic } from '../../kernel/atomic.js';
import { Deduper } from '../../observe/dedupe.js';
import { learnedYaml, learnRules, FlowCollector, verifyLearned, type Learned, type SeenFlow } from '../../observe/learn.js';
import { mergeLearned, MergeError } from '../../observe/learn-merge.js';
import type { ReadCounts } from '../../observe/event.js';
import { LogReader } from '../../observe/read.js';
import { accountNames } from '../../observe/replay.js';
import { formatIso } from '../../observe/since.js';
import { countsLine } from '../../report/stats.js';
import { CommandError, UsageError, type Io } from '../io.js';
import { diagnosticsJson, failed, load, writeJson, type PolicyFlags } from '../shared.js';
import { contextOf, readOptionsOf, runReader, sourcesOf, type ObserveSeams, type SourceFlags } from '../log-flags.js';

export interface LearnFlags extends SourceFlags, PolicyFlags {
  policy?: string;
  write?: boolean;
}

export async function learnCommand(io: Io, logs: string[], flags: LearnFlags, seams: ObserveSeams = {}): Promise<number> {
  if (!flags.policy) throw new UsageError('learn needs --policy POLICY (the policy the learned rules are for)');
  if (flags.follow) throw new UsageError('learn reads recorded logs; --follow is for "egress stats"');
  if (!logs.length && !flags.journal && !flags.kmsg) throw new UsageError('learn needs LOG files ("-" for standard input), --journal or --kmsg');
  const policyPath = resolvePath(io.cwd, flags.policy);
  const loaded = await load(io, flags.policy, flags);
  if (failed(loaded)) {
    if (flags.json) writeJson(io, { ok: false, diagnostics: diagnosticsJson(loaded) });
    return 1;
  }
  const ir = loaded.ir!;
  const sources = sourcesOf(io, logs, flags, seams);
  const opts = readOptionsOf(io, flags, seams, flags.prefix);
  const { accounts } = await contextOf(io, loaded);
  const collector = new FlowCollector(ir, accounts);
  const dedupe = new Deduper();
  const reader = new LogReader(sources, opts, (e) => collector.add(e, dedupe.isNew(e)));
  await runReader(reader.run());
  const counts = reader.counts;
  const taken = [...loaded.policy!.allow, ...loaded.policy!.deny].map((r) => r.ref.name);
  const learned = learnRules(collector.seen(), { ir, accounts, taken });
  const names = accountNames(accounts);
  const describeUser = (uid: number) => names.users.get(uid) ?? `uid ${uid}`;
  const items = learnedYaml(learned.rules, describeUser);

  const policyText = await readFile(policyPath, 'utf8').catch((e: Error) => {
    throw new CommandError(`cannot read ${flags.policy}: ${e.message}`);
  });
  let merged: string;
  try {
    merged = mergeLearned(policyText, items);
  } catch (e) {
    if (e instanceof MergeError) throw new CommandError(`cannot merge into ${flags.policy}: ${e.message}`);
    throw e;
  }
  const check = await verifyLearned(learned, accounts, flags.policy, merged, {
    baseDir: resolvePath(policyPath, '..'),
    ...(io.resolver ? { resolver: io.resolver } : {}),
    ...(io.now ? { now: io.now } : {}),
  });
  if (check.broken) {
    io.stderr(`egress: internal error: the policy with the learned rules does not load (please report this):\n${renderText(check.broken.sources, check.broken.diagnostics)}`);
    return 1;
  }

  if (flags.json) {
    writeJson(io, {
      ok: check.stillDenied.length === 0,
      policy: flags.policy,
      lines: counts,
      flows: learned.flows,
      alreadyAllowed: learned.alreadyAllowed,
      rules: learned.rules.map((r) => ({
        name: r.name,
        reason: r.reason,
        to: r.to,
        ports: r.ports,
        icmp: r.icmp,
        users: r.users,
        connections: r.connections,
        first: r.first === undefined ? undefined : formatIso(r.first),
        last: r.last === undefined ? undefined : formatIso(r.last),
        perDestination: r.perDestination,
        collapsed: r.collapsed,
      })),
      notLearned: learned.notLearned.map((n) => ({ ...flowJson(n.flow), why: n.why, ...(n.rules ? { rules: n.rules } : {}) })),
      verified: { flows: check.flows, stillDenied: check.stillDenied.map(flowJson) },
      yaml: items,
      ...(flags.write && learned.rules.length && !check.stillDenied.length ? { written: flags.policy } : {}),
    });
  }

  if (check.stillDenied.length) {
    io.stderr(`egress: error: the learned rules would not admit ${check.stillDenied.length} of the flows they were learned from (hostnames resolving differently?); nothing written\n`);
    return 1;
  }
  if (flags.write && learned.rules.length) {
    writeFileAtomic(policyPath, merged, 0o644);
    if (!flags.json) io.stderr(`egress: added ${learned.rules.length} allow rule${learned.rules.length === 1 ? '' : 's'} to ${flags.policy}; review them, then "egress replay" and apply\n`);
  }
  if (!flags.json) io.stdout(learnText(learned, items, counts, describeUser, !!flags.write));
  return 0;
}

function flowJson(f: SeenFlow) {
  return {
    family: f.family,
    to: f.dst,
    proto: f.proto === 'other' ? String(f.protoNum) : f.proto,
    ...(f.port !== undefined ? { port: f.port } : {}),
    ...(f.icmpType !== undefined ? { icmpType: f.icmpType } : {}),
    ...(f.uid !== undefined ? { uid: f.uid } : {}),
    connections: f.connections,
  };
}

function flowText(f: SeenFlow, describeUser: (uid: number) => string): string {
  const svc = f.proto === 'icmp' ? `icmp type ${f.icmpType}` : f.proto === 'other' ? `protocol ${f.protoNum}` : `${f.proto}/${f.port}`;
  return `${f.family === 'ipv6' ? `[${f.dst}]` : f.dst} ${svc}${f.uid !== undefined ? ` as ${describeUser(f.uid)}` : ''}`;
}

function learnText(l: Learned, items: string, counts: ReadCounts, describeUser: (uid: number) => string, written: boolean): string {
  const out: string[] = [];
  const conns = l.rules.reduce((n, r) => n + r.connections, 0);
  out.push(`# egress learn: ${l.rules.length} allow rule${l.rules.length === 1 ? '' : 's'} for ${conns} denied connection${conns === 1 ? '' : 's'} (${l.flows} distinct flows)`);
  out.push(`# ${countsLine(counts)}`);
  if (l.alreadyAllowed) out.push(`# ${l.alreadyAllowed} connections are already allowed by the policy as it is now`);
  for (const n of l.notLearned.slice(0, 20)) {
    const why = n.why === 'denied-by-rule' ? `denied by deny rule ${n.rules!.map((r) => `"${r}"`).join(', ')} (an allow cannot override a deny)` : n.why === 'icmp-type' ? 'this ICMP type has no name in policies' : 'only tcp, udp, sctp and icmp can be allowed without allowing every protocol';
    out.push(`# not learned: ${flowText(n.flow, describeUser)} (${n.flow.connections} connections): ${why}`);
  }
  if (l.notLearned.length > 20) out.push(`# not learned: ${l.notLearned.length - 20} more flows`);
  if (!l.rules.length) {
    out.push('# nothing to learn: no denied connection in these logs goes to the default');
    return out.join('\n') + '\n';
  }
  out.push(written ? '# merged into the policy file:' : '# review, then merge by hand or with --write:');
  out.push('allow:');
  out.push(
    items
      .trimEnd()
      .split('\n')
      .map((x) => (x ? `  ${x}` : x))
      .join('\n'),
  );
  return out.join('\n') + '\n';
}
