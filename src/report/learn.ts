/**
 * What `learn` prints: the learned rules as YAML to review with their
 * evidence as comments, or as `--json`. Pure: the learned rules, the read
 * counts and the verification in, a string or an object out.
 */
import type { ReadCounts } from '../logs/event.js';
import type { Family } from '../policy/address.js';
import type { ForwardedFrom, Learned, LearnedRule, NotLearned, SeenFlow, UnlistedSource, Verified } from '../observe/learn.js';
import { formatIso } from '../logs/since.js';
import { countsLine, destinationText, type IsoSpan } from './stats.js';

/** A flow seen in the logs, in learn --json: `proto` is tcp, udp, sctp, icmp, or another protocol's number; `uid` absent for forwarded flows and when not logged. */
export interface LearnFlowJson {
  family: Family;
  to: string;
  proto: string;
  port?: number;
  icmpType?: number;
  uid?: number;
  forwarded?: ForwardedFrom;
  connections: number;
}

/** A learned rule in learn --json: LearnedRule without its flows, `from` only when it governs forward sources, first and last seen as ISO 8601 UTC. */
export interface LearnedRuleJson extends Omit<LearnedRule, 'from' | 'first' | 'last' | 'flows'>, IsoSpan {
  from?: string[];
}

/** A flow learn did not turn into a rule, and why (`rules`: the deny rules that catch it). */
export interface NotLearnedJson extends LearnFlowJson {
  why: NotLearned['why'];
  rules?: string[];
}

/** Forwarded flows from no forward source, per input interface, in learn --json. */
export interface UnlistedSourceJson extends Omit<UnlistedSource, 'flows'> {
  flows: LearnFlowJson[];
}

/** The learned rules checked against the merged policy: how many flows were decided, and those it still would not accept. */
export interface VerifiedJson {
  flows: number;
  stillDenied: LearnFlowJson[];
}

/** `learn --json`'s result (the envelope's `ok`: the learned rules admit every flow they came from, `verified.stillDenied` is empty). */
export interface LearnJson {
  policy: string;
  lines: ReadCounts;
  /** Distinct flows seen. */
  flows: number;
  alreadyAllowed: number;
  rules: LearnedRuleJson[];
  notLearned: NotLearnedJson[];
  /** Present when some forwarded flows came from no source. */
  unlisted?: UnlistedSourceJson[];
  verified: VerifiedJson;
  /** The rules as the YAML items of an `allow:` list. */
  yaml: string;
  /** The policy file, when the rules were merged into it. */
  written?: string;
}

/**
 * The `--json` form: every rule with its counts and first/last seen (ISO 8601
 * UTC), what was not learned and why, the verification, the YAML; `written`
 * names the policy file when the rules were merged into it.
 */
export function learnJson(policy: string, l: Learned, counts: ReadCounts, v: Verified, yaml: string, written: boolean): LearnJson {
  return {
    policy,
    lines: counts,
    flows: l.flows,
    alreadyAllowed: l.alreadyAllowed,
    rules: l.rules.map((r) => ({
      name: r.name,
      reason: r.reason,
      to: r.to,
      ports: r.ports,
      icmp: r.icmp,
      users: r.users,
      ...(r.from.length ? { from: r.from } : {}),
      connections: r.connections,
      first: r.first === undefined ? undefined : formatIso(r.first),
      last: r.last === undefined ? undefined : formatIso(r.last),
      perDestination: r.perDestination,
      collapsed: r.collapsed,
      names: r.names,
      wildcards: r.wildcards,
      unnamed: r.unnamed,
    })),
    notLearned: l.notLearned.map((n) => ({ ...flowJson(n.flow), why: n.why, ...(n.rules ? { rules: n.rules } : {}) })),
    ...(l.unlisted.length ? { unlisted: l.unlisted.map((u) => ({ interface: u.interface, addresses: u.addresses, connections: u.connections, unlisted: u.unlisted, source: u.source, default: u.default, flows: u.flows.map(flowJson) })) } : {}),
    verified: { flows: v.flows, stillDenied: v.stillDenied.map(flowJson) },
    yaml,
    ...(written ? { written: policy } : {}),
  };
}

function flowJson(f: SeenFlow): LearnFlowJson {
  return {
    family: f.family,
    to: f.dst,
    proto: f.proto === 'other' ? String(f.protoNum) : f.proto,
    ...(f.port !== undefined ? { port: f.port } : {}),
    ...(f.icmpType !== undefined ? { icmpType: f.icmpType } : {}),
    ...(f.uid !== undefined ? { uid: f.uid } : {}),
    ...(f.forwarded ? { forwarded: f.forwarded } : {}),
    connections: f.connections,
  };
}

function flowText(f: SeenFlow, describeUser: (uid: number) => string, withSource = true): string {
  const svc = f.proto === 'icmp' ? `icmp type ${f.icmpType}` : f.proto === 'other' ? `protocol ${f.protoNum}` : `${f.proto}/${f.port}`;
  const who = f.forwarded ? (withSource ? ` forwarded from ${f.forwarded.src} on ${f.forwarded.in}` : '') : f.uid !== undefined ? ` as ${describeUser(f.uid)}` : '';
  return `${destinationText(f)} ${svc}${who}`;
}

const UNLISTED_NOW: Record<UnlistedSource['unlisted'], string> = {
  warn: 'let through and logged (forward.unlisted: warn)',
  accept: 'let through (forward.unlisted: accept)',
  deny: 'denied (forward.unlisted: deny)',
  none: 'not governed: the policy has no forward scope',
};

/**
 * Comment lines for forwarded flows from no source: no rule can name them,
 * so what to add is a source; learn proposes the rules once it is there.
 */
function unlistedText(u: UnlistedSource): string[] {
  const addrs = `${u.addresses.slice(0, 6).join(', ')}${u.addresses.length > 6 ? `, and ${u.addresses.length - 6} more` : ''}`;
  const src = `${u.source.name}: { interfaces: [${u.source.interfaces.map((i) => JSON.stringify(i)).join(', ')}] }`;
  // One entry per destination and service, whichever workload addresses made them.
  const per = new Map<string, number>();
  for (const f of u.flows) per.set(flowText(f, () => '', false), (per.get(flowText(f, () => '', false)) ?? 0) + f.connections);
  const shown = [...per].sort((a, b) => b[1] - a[1]);
  const flows = shown.slice(0, 6).map(([t, n]) => `${t} (${n})`);
  return [
    `# forwarded from no source: interface ${u.interface} (address${u.addresses.length === 1 ? '' : 'es'} ${addrs}), ${u.connections} connection${u.connections === 1 ? '' : 's'}, ${UNLISTED_NOW[u.unlisted]}`,
    `#   no forward source covers this interface, so no rule can admit or deny its traffic; to govern it, add`,
    u.unlisted === 'none' ? `#     forward: { sources: { ${src} } }` : `#     ${src}`,
    `#   ${u.unlisted === 'none' ? 'to the policy' : 'under forward.sources'} (what no rule admits is then decided by forward.default: ${u.default}), and learn again for rules from: [${u.source.name}]`,
    `#   flows: ${flows.join(', ')}${shown.length > 6 ? `, and ${shown.length - 6} more` : ''}`,
  ];
}

/** The terminal form: a summary and what was not learned as comments, then the rules as an `allow:` list to review (or as merged). */
export function learnText(l: Learned, items: string, counts: ReadCounts, describeUser: (uid: number) => string, written: boolean): string {
  const out: string[] = [];
  const conns = l.rules.reduce((n, r) => n + r.connections, 0);
  out.push(`# egress learn: ${l.rules.length} allow rule${l.rules.length === 1 ? '' : 's'} for ${conns} denied connection${conns === 1 ? '' : 's'} (${l.flows} distinct flows)`);
  out.push(`# ${countsLine(counts)}`);
  if (l.alreadyAllowed) out.push(`# ${l.alreadyAllowed} connections are already allowed by the policy as it is now`);
  for (const n of l.notLearned.slice(0, 20)) {
    const why = n.why === 'denied-by-rule' ? `denied by deny rule ${n.rules!.map((r) => `"${r}"`).join(', ')} (an allow cannot override a deny)` : n.why === 'icmp-type' ? 'this ICMP type has no name in policies' : n.why === 'port-0' ? 'port 0 cannot be allowed (a policy\'s ports are 1-65535)' : 'only tcp, udp, sctp and icmp can be allowed without allowing every protocol';
    out.push(`# not learned: ${flowText(n.flow, describeUser)} (${n.flow.connections} connections): ${why}`);
  }
  if (l.notLearned.length > 20) out.push(`# not learned: ${l.notLearned.length - 20} more flows`);
  for (const u of l.unlisted) out.push(...unlistedText(u));
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
