/**
 * The policy file's structure: the single source for validation AND for the
 * editor JSON Schema (`schema/policy.schema.json`, written by
 * write-schema.ts). Field descriptions say what *omitted* means.
 *
 * Only structure and types are validated here. Values with a grammar of their
 * own (addresses, ports, names, dates) are checked in check.ts, which can point
 * at the exact value and suggest a fix; their patterns appear below only as
 * `meta` so editors can flag them early.
 */
import { z } from 'zod';

const str = z.string();
const strOrList = (item: z.ZodType, d: string) => z.union([item, z.array(item)]).describe(d);
const ownerId = z.union([z.string(), z.number().int()]);

export const PORT_PATTERN = '^(tcp|udp|sctp)(/[0-9]{1,5}(-[0-9]{1,5})?)?$';
export const NAME_PATTERN = '^[a-z0-9_-]{1,32}$';
export const DATE_PATTERN = '^[0-9]{4}-[0-9]{2}-[0-9]{2}$';

export const ICMP_NAMES_FOR_SCHEMA = [
  'any',
  'echo-request',
  'echo-reply',
  'destination-unreachable',
  'time-exceeded',
  'parameter-problem',
  'packet-too-big',
  'redirect',
  'router-solicitation',
  'router-advertisement',
  'neighbor-solicitation',
  'neighbor-advertisement',
  'timestamp-request',
  'timestamp-reply',
] as const;

const selectorShape = {
  to: strOrList(
    str,
    'Destinations: IPv4/IPv6 addresses, CIDRs, ranges "a-b", hostnames (resolved through the system resolver), wildcard names "*.example.com" (one or more labels before the domain, never the domain itself; need dns.proxy) and "$set" references. Omitted = anywhere, both families.',
  ),
  ports: strOrList(
    str.meta({ pattern: PORT_PATTERN }),
    'Destination ports as "PROTO/PORT", "PROTO/LOW-HIGH" or bare "PROTO" (tcp, udp, sctp). Omitted (and no icmp) = every protocol.',
  ),
  icmp: strOrList(
    str.meta({ enum: [...ICMP_NAMES_FOR_SCHEMA] }),
    'ICMP type names meaning the same thing for IPv4 and IPv6 ("echo-request", "destination-unreachable", …; "any" = every type). Omitted = no ICMP unless ports is omitted too.',
  ),
  user: strOrList(ownerId, 'Socket owner user(s), by name or numeric uid. Omitted = any user.'),
  group: strOrList(ownerId, 'Socket owner group(s), by name or numeric gid. Omitted = any group.'),
  via: strOrList(str, 'Output interface name(s); a trailing "*" matches a prefix. Omitted = any interface.'),
  family: z
    .enum(['ipv4', 'ipv6'])
    .describe('Restrict the rule to one family. Omitted = derived from "to": all-IPv4 destinations make an IPv4-only rule; no "to" = both families.'),
};

export const ExceptSchema = z.strictObject(selectorShape).partial().describe('Selectors that exempt a flow from this deny: the deny does not apply to a flow that matches every one of them.');

export const RuleSchema = z.strictObject({
  name: str.meta({ pattern: NAME_PATTERN }).describe('Unique rule name, [a-z0-9_-]{1,32}. Required.'),
  reason: str.describe('Why this rule exists. Omitted = a "missing-reason" warning.'),
  owner: str.describe('Who is responsible for this rule. Omitted = nobody recorded.'),
  ticket: z.union([str, z.number()]).describe('Change ticket that introduced the rule. Omitted = none recorded.'),
  expires: str
    .meta({ pattern: DATE_PATTERN })
    .describe('YYYY-MM-DD: the rule admits through that day (UTC) and no longer: the kernel stops matching it at the end of the day (nft meta time, iptables -m time) without an apply; later compiles leave it out (with a warning); the Windows backends cannot end a rule and refuse it. Omitted = never expires.'),
  from: strOrList(
    str,
    'What traffic the rule governs: "host" (connections this host makes) and/or names of forward.sources (traffic the host routes for containers and VMs). Omitted = ["host"].',
  ),
  ...selectorShape,
  except: z
    .union([ExceptSchema, z.array(ExceptSchema)])
    .describe('Deny rules only: selectors (or a list of alternatives) that exempt a flow from this deny. Omitted = no exemption.'),
}).partial({ reason: true, owner: true, ticket: true, expires: true, from: true, to: true, ports: true, icmp: true, user: true, group: true, via: true, family: true, except: true });

export const SetFileSchema = z.strictObject({
  file: str.describe('Path (relative to the policy file) of a file with one address/CIDR/range per line; "#" starts a comment.'),
});

export const LogSchema = z.strictObject({
  prefix: str.describe('Base log prefix, at most 20 characters so backend tags fit in 29. Omitted = "EGRESS ".'),
  rate: str
    .meta({ pattern: '^[0-9]+/(second|minute|hour|day)$' })
    .describe('Rate limit on log lines, "N/second|minute|hour|day", with bursts of one unit\'s worth (at least 5); counters stay exact, and what the limit dropped is counted too (`status`, `stats`: "denials not logged"). Omitted = 10/second, or 100/second in audit mode (what learn reads).'),
  uid: z.boolean().describe("Put the socket's UID/GID in log lines. Omitted = true."),
}).partial();

export const BuiltinsSchema = z.strictObject({
  loopback: z.boolean().describe('Accept everything out of lo. Omitted = true.'),
  established: z.boolean().describe('Accept ct state established,related, and TCP connections older than connection tracking (picked up mid-stream: ACK without SYN), so the first apply keeps open sessions. Omitted = true.'),
  icmpv6_nd: z.boolean().describe('Accept IPv6 neighbour/router discovery and MLD (IPv6 dies without it). Omitted = true.'),
}).partial();

export const DURATION_PATTERN = '^([0-9]+[hms])+$';

export const DnsSchema = z.strictObject({
  proxy: z
    .boolean()
    .describe(
      "Answer every DNS query that local programs send to port 53 (udp and tcp, any address but this host's own) through egress's forwarder, which puts the addresses it answers for a rule's names into that rule's kernel sets before the program gets the answer; only the forwarder may then send DNS (53) or DNS over TLS (853). Deny rules' names are answered REFUSED instead of denied by address. Needed for wildcard names. Omitted = false: names are resolved when the ruleset loads and by `egress refresh`.",
    ),
  upstream: strOrList(
    str,
    'DNS servers the forwarder asks: "ADDR" (port 53), "IPV4:PORT" or "[IPV6]:PORT"; no names, no loopback addresses. Omitted = the non-loopback nameservers of /etc/resolv.conf, else the upstream servers of systemd-resolved.',
  ),
  grace: str
    .meta({ pattern: DURATION_PATTERN })
    .describe('How long an answered address outlives the TTL handed to the program: it stays in the rule\'s set for max(min_lifetime, TTL + grace). "60s", "2m", "1h", "1m30s"; 0s to 1h. Omitted = 60s.'),
  min_lifetime: str
    .meta({ pattern: DURATION_PATTERN })
    .describe('The shortest time an answered address stays in a rule\'s set, for answers with a TTL of 0 or 1. 1s to 1h. Omitted = 10s.'),
}).partial();

export const ForwardSourceSchema = z
  .strictObject({
    interfaces: strOrList(str, 'Input interfaces the traffic arrives on; a trailing "*" matches a prefix ("br-*"). Omitted = any interface.'),
    networks: strOrList(
      str,
      'Source addresses, CIDRs or ranges "a-b" the traffic comes from (no names). A family none is written for is matched by interface alone (with interfaces). Omitted = any source address.',
    ),
  })
  .partial()
  .describe('A named group of forwarded traffic: a packet belongs to it when it arrives on one of its interfaces and, where networks are given, comes from one of them. At least one of the two.');

export const ForwardSchema = z
  .strictObject({
    sources: z.record(z.string(), ForwardSourceSchema).describe('Named groups of forwarded traffic (containers, VMs), referenced by rules\' "from". Required.'),
    default: z.enum(['reject', 'drop', 'accept']).describe("Verdict for forwarded new flows from a source that no rule admits. Omitted = the policy's default."),
    unlisted: z
      .enum(['warn', 'deny', 'accept'])
      .describe('New forwarded flows from no source (a bridge nobody listed): warn = let through, counted and logged; deny = denied; accept = let through, counted, not logged. Omitted = warn.'),
  })
  .partial({ default: true, unlisted: true })
  .describe('Forwarded traffic (SPEC §6): what containers and VMs behind this host may connect out to.');

export const PolicySchema = z
  .strictObject({
    version: z.literal(1).describe('Policy format version. Required: 1.'),
    mode: z.enum(['enforce', 'audit']).describe('enforce blocks; audit logs and counts what enforce would deny and blocks nothing. Omitted = enforce.'),
    default: z.enum(['reject', 'drop', 'accept']).describe('Verdict for traffic no rule allows. Omitted = reject.'),
    log: LogSchema.describe('Logging of denied packets. Omitted = all defaults.'),
    builtins: BuiltinsSchema.describe('Built-in accepts evaluated before any rule. Omitted = all true.'),
    dns: DnsSchema.describe('Names that follow DNS (SPEC §5): the DNS forwarder and how long answered addresses live. Omitted = proxy off.'),
    forward: ForwardSchema.describe('Forwarded traffic of containers and VMs (SPEC §6). Omitted = only locally generated traffic is governed.'),
    require_reason: z.boolean().describe('true: a rule without a reason is an error (the policy does not load), not a warning; for teams that review every rule. `check --strict` does the same for one run. Omitted = false.'),
    sets: z
      .record(z.string(), z.union([z.array(z.union([str, z.number()])), SetFileSchema]))
      .describe('Named destination sets, referenced as "$name" in "to": a list of addresses/CIDRs/ranges/hostnames/"$set"s, or { file: PATH }. Omitted = none.'),
    allow: z.array(RuleSchema).describe('Rules that accept matching traffic (unless a deny matches). Omitted = none.'),
    deny: z.array(RuleSchema).describe('Rules that deny matching traffic, evaluated before every allow. Omitted = none.'),
  })
  .partial({ mode: true, default: true, log: true, builtins: true, dns: true, forward: true, require_reason: true, sets: true, allow: true, deny: true })
  .describe('egress policy: what this host may connect out to.');

/** Allowed keys per context, for "did you mean" hints on unknown keys. */
export const KEYS = {
  policy: Object.keys(PolicySchema.shape),
  rule: Object.keys(RuleSchema.shape),
  except: Object.keys(ExceptSchema.shape),
  log: Object.keys(LogSchema.shape),
  builtins: Object.keys(BuiltinsSchema.shape),
  dns: Object.keys(DnsSchema.shape),
  forward: Object.keys(ForwardSchema.shape),
  forwardSource: Object.keys(ForwardSourceSchema.shape),
  setFile: Object.keys(SetFileSchema.shape),
};

export function policyJsonSchema(): Record<string, unknown> {
  const s = z.toJSONSchema(PolicySchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...s, title: 'egress policy (version 1)' };
}
