/**
 * What `learn` prints: the learned rules as YAML to review with their
 * evidence as comments, or as `--json`. Pure: the learned rules, the read
 * counts and the verification in, a string or an object out.
 */
import type { ReadCounts } from '../logs/event.js';
import type { Learned, SeenFlow, Verified } from '../observe/learn.js';
import { formatIso } from '../logs/since.js';
import { countsLine, destinationText } from './stats.js';

/**
 * The `--json` form: every rule with its counts and first/last seen (ISO 8601
 * UTC), what was not learned and why, the verification, the YAML; `written`
 * names the policy file when the rules were merged into it.
 */
export function learnJson(policy: string, l: Learned, counts: ReadCounts, v: Verified, yaml: string, written: boolean) {
  return {
    ok: v.stillDenied.length === 0,
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
    verified: { flows: v.flows, stillDenied: v.stillDenied.map(flowJson) },
    yaml,
    ...(written ? { written: policy } : {}),
  };
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
  return `${destinationText(f)} ${svc}${f.uid !== undefined ? ` as ${describeUser(f.uid)}` : ''}`;
}

/** The terminal form: a summary and what was not learned as comments, then the rules as an `allow:` list to review (or as merged). */
export function learnText(l: Learned, items: string, counts: ReadCounts, describeUser: (uid: number) => string, written: boolean): string {
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
