/**
 * Flows as people write them: `--to 192.0.2.1 --port tcp/443 --user www-data`,
 * or one per line in a flows file (CSV with a header, or JSON lines).
 */
import { parseAddress } from '../policy/address.js';
import { ICMP_ALIASES, ICMP_TYPES, L4_PROTOS, icmpTypeNumber } from '../policy/protocols.js';
import type { Accounts } from '../resolve/resolver.js';
import type { Flow, Owner } from './flow.js';

export interface FlowSpec {
  to: string;
  port?: string;
  icmp?: string;
  user?: string;
  group?: string;
  via?: string;
  established?: boolean;
  /** A forwarded flow (SPEC §6): a forward source's name, or the source address. */
  from?: string;
  /** With `from`: the interface the forwarded packet arrives on. */
  in?: string;
}

export const FLOW_FIELDS = ['to', 'port', 'icmp', 'user', 'group', 'via', 'established', 'from', 'in'] as const;

/** The owner a flow gets when none is named: root, as from an operator's shell. */
export const DEFAULT_USER = 'root';

export class FlowError extends Error {}

function owner(v: string, table: Map<string, number>, what: string): Owner {
  if (/^\d+$/.test(v)) {
    const id = Number(v);
    const name = nameOf(table, id);
    return name === undefined ? { id } : { id, name };
  }
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/.test(v)) throw new FlowError(`bad ${what} ${JSON.stringify(v)}`);
  const id = table.get(v);
  return id === undefined ? { name: v } : { name: v, id };
}

/** A flow spec → a Flow (literal destination only; hostnames are resolved by the caller). */
export function parseFlow(s: FlowSpec, accounts: Accounts): Flow {
  const a = parseAddress(s.to.trim());
  if (!a) throw new FlowError(`bad destination ${JSON.stringify(s.to)}: expected an IPv4 or IPv6 address`);
  const f: Flow = { family: a.family, dst: a.value, proto: 'other' };
  if (s.port && s.icmp) throw new FlowError('give --port or --icmp, not both');
  if (s.port) {
    const m = /^([a-z]+)(?:\/(\d+))?$/.exec(s.port.trim());
    if (!m || !(L4_PROTOS as readonly string[]).includes(m[1]!)) throw new FlowError(`bad port ${JSON.stringify(s.port)}: expected "tcp/443", "udp/53", "sctp/PORT" or a bare protocol`);
    f.proto = m[1] as Flow['proto'];
    if (m[2] !== undefined) {
      const p = Number(m[2]);
      if (p > 65535) throw new FlowError(`port out of range in ${JSON.stringify(s.port)}`);
      f.port = p;
    }
  }
  if (s.icmp) {
    const raw = s.icmp.trim().toLowerCase();
    const name = ICMP_ALIASES[raw] ?? raw;
    f.proto = 'icmp';
    if (/^\d+$/.test(name)) f.icmpType = Number(name);
    else {
      if (!ICMP_TYPES[name]) throw new FlowError(`unknown ICMP type ${JSON.stringify(s.icmp)}`);
      const t = icmpTypeNumber(name, a.family);
      if (t === undefined) throw new FlowError(`ICMP type ${JSON.stringify(name)} does not exist in ${a.family}`);
      f.icmpType = t;
    }
  }
  if (s.in !== undefined && s.from === undefined) throw new FlowError('--in needs --from: it is the interface a forwarded packet arrives on');
  if (s.from !== undefined) {
    if (s.user !== undefined || s.group !== undefined) throw new FlowError('a forwarded flow (--from) has no socket owner: leave out --user and --group');
    const from = s.from.trim();
    const src = parseAddress(from);
    if (src && src.family !== a.family) throw new FlowError(`--from ${from} is ${src.family} but --to ${s.to.trim()} is ${a.family}`);
    if (!src && !/^[a-z0-9_-]{1,32}$/.test(from)) throw new FlowError(`bad --from ${JSON.stringify(s.from)}: expected a forward source name or an address`);
    if (s.in !== undefined && !/^[A-Za-z0-9_.:@-]{1,15}$/.test(s.in)) throw new FlowError(`bad interface ${JSON.stringify(s.in)}`);
    f.forwarded = { ...(src ? { src: src.value } : { source: from }), ...(s.in !== undefined ? { in: s.in } : {}) };
    if (s.via) f.via = s.via;
    if (s.established) f.established = true;
    return f;
  }
  f.user = owner(s.user ?? DEFAULT_USER, accounts.users, 'user');
  if (s.user === undefined && f.user.id === undefined) f.user.id = 0;
  if (s.group) f.group = owner(s.group, accounts.groups, 'group');
  else {
    // A process runs with its user's primary group unless told otherwise.
    const gid = f.user.id === undefined ? undefined : f.user.id === 0 ? 0 : accounts.primaryGroup.get(f.user.id);
    if (gid !== undefined) {
      const name = nameOf(accounts.groups, gid);
      f.group = name === undefined ? { id: gid } : { id: gid, name };
    }
  }
  if (s.via) f.via = s.via;
  if (s.established) f.established = true;
  return f;
}

/**
 * Each accounts table's first name for an id, built once per table (a flows file asks for every row; a scan of
 * /etc/group's names per row was a third of parseFlow), and again if the table grew since (lab adds spare ids).
 */
const namesById = new WeakMap<Map<string, number>, { size: number; byId: Map<number, string> }>();

function nameOf(t: Map<string, number>, id: number): string | undefined {
  let c = namesById.get(t);
  if (!c || c.size !== t.size) {
    const byId = new Map<number, string>();
    for (const [n, i] of t) if (!byId.has(i)) byId.set(i, n);
    namesById.set(t, (c = { size: t.size, byId }));
  }
  return c.byId.get(id);
}

/** Parse a flows file: JSON lines (`{"to": …}`) or CSV with a header naming FLOW_FIELDS columns. */
export function parseFlowsFile(text: string): { line: number; spec?: FlowSpec; error?: string }[] {
  const lines = text.split(/\r?\n/);
  const out: { line: number; spec?: FlowSpec; error?: string }[] = [];
  let header: string[] | undefined;
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    if (line.startsWith('{')) {
      try {
        const o = JSON.parse(line) as Record<string, unknown>;
        if (typeof o.to !== 'string') throw new Error('"to" must be a string');
        const spec: FlowSpec = { to: o.to };
        for (const k of ['port', 'icmp', 'user', 'group', 'via', 'from', 'in'] as const) if (o[k] !== undefined) spec[k] = String(o[k]);
        if (o.established === true) spec.established = true;
        out.push({ line: i + 1, spec });
      } catch (e) {
        out.push({ line: i + 1, error: `bad JSON flow: ${(e as Error).message}` });
      }
      return;
    }
    const cells = line.split(',').map((c) => c.trim());
    if (!header) {
      if (cells.every((c) => (FLOW_FIELDS as readonly string[]).includes(c))) {
        header = cells;
        return;
      }
      header = ['to', 'port', 'user'];
    }
    const spec: FlowSpec = { to: '' };
    header.forEach((h, k) => {
      const v = cells[k];
      if (v === undefined || v === '') return;
      if (h === 'established') spec.established = v === 'true' || v === 'yes' || v === '1';
      else (spec as unknown as Record<string, string>)[h] = v;
    });
    if (!spec.to) out.push({ line: i + 1, error: 'missing destination ("to" column)' });
    else out.push({ line: i + 1, spec });
  });
  return out;
}
