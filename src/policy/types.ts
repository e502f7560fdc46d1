/** The checked policy: every value parsed, defaults filled, still carrying spans. */
import type { Span } from '../diag/source.js';
import type { Family } from './address.js';
import type { L4Proto } from './protocols.js';
import type { SelectorName } from './ast.js';

export type Verdict = 'accept' | 'reject' | 'drop';
export type Action = 'allow' | 'deny';

/** A rule's identity wherever it travels: IR, backend output, kernel errors, explain answers. */
export interface RuleRef {
  name: string;
  action: Action;
  span: Span;
}

export type DestRef =
  | { kind: 'addr'; family: Family; lo: bigint; hi: bigint; text: string; span: Span }
  | { kind: 'host'; name: string; text: string; span: Span }
  | { kind: 'set'; name: string; text: string; span: Span }
  /** "*.cdn.example.com" (normalized): addresses only the DNS forwarder learns (`dns.proxy`). */
  | { kind: 'wildcard'; pattern: string; text: string; span: Span };

export type AddrRef = Extract<DestRef, { kind: 'addr' }>;

export interface PortRange {
  proto: L4Proto;
  lo: number;
  hi: number;
  text: string;
  span: Span;
}

export interface IcmpRef {
  /** Canonical family-neutral name, or "any". */
  name: string;
  span: Span;
}

export interface OwnerRef {
  /** Exactly one of name/id is set as written; resolve fills the other from the host's accounts when it can. */
  name?: string;
  id?: number;
  text: string;
  span: Span;
}

export interface IfaceRef {
  name: string;
  span: Span;
}

export interface Selectors {
  span: Span;
  to?: DestRef[];
  ports?: PortRange[];
  icmp?: IcmpRef[];
  users?: OwnerRef[];
  groups?: OwnerRef[];
  via?: IfaceRef[];
  family?: Family;
  keySpans: Partial<Record<SelectorName, Span>>;
}

/** What `from` calls locally generated traffic. */
export const HOST_SOURCE = 'host';

/** One entry of a rule's `from`: "host" (locally generated traffic) or a `forward.sources` name. */
export interface FromRef {
  name: string;
  span: Span;
}

export interface Rule extends Selectors {
  ref: RuleRef;
  /**
   * What traffic the rule governs: "host" and/or forward sources, sorted and
   * unique. Omitted in the file = ["host"] (`fromSpan` absent).
   */
  from: FromRef[];
  fromSpan?: Span;
  reason?: string;
  owner?: string;
  ticket?: string;
  expires?: string;
  except: Selectors[];
  /** Span of the `except` key, for backends that cannot express it. */
  exceptSpan?: Span;
}

export interface SetDef {
  name: string;
  span: Span;
  items?: DestRef[];
  file?: { path: string; span: Span };
}

export interface LogRate {
  count: number;
  unit: 'second' | 'minute' | 'hour' | 'day';
}

/** An upstream DNS server of the forwarder, as written in `dns.upstream`. */
export interface DnsUpstream {
  family: Family;
  /** Canonical address text. */
  address: string;
  port: number;
  text: string;
  span: Span;
}

/** `dns:` with defaults filled in. */
export interface PolicyDns {
  /** Names follow DNS through egress's forwarder (SPEC §5); false = names are resolved when the ruleset loads. */
  proxy: boolean;
  /** As written; absent = the system's (resolv.conf's non-loopback nameservers, else systemd-resolved's), found at apply. */
  upstream?: DnsUpstream[];
  graceSec: number;
  minLifetimeSec: number;
  /** Where each setting was written; absent = defaulted. */
  spans: { key?: Span; proxy?: Span; upstream?: Span; grace?: Span; minLifetime?: Span };
}

export const DEFAULT_DNS_GRACE_SEC = 60;
export const DEFAULT_DNS_MIN_LIFETIME_SEC = 10;
/** Sane bounds (inclusive): a grace beyond an hour or a lifetime beyond one keeps addresses long after any answer meant them. */
export const DNS_GRACE_BOUNDS = { min: 0, max: 3600 } as const;
export const DNS_MIN_LIFETIME_BOUNDS = { min: 1, max: 3600 } as const;

/** A named group of forwarded traffic (`forward.sources`): arrives on one of `interfaces` and, where `networks` are given, comes from one of them. */
export interface ForwardSource {
  name: string;
  span: Span;
  /** Globs: a trailing "*" matches a prefix (as `via`). [] = any input interface. */
  interfaces: IfaceRef[];
  /** Addresses, CIDRs, ranges (kind 'addr' only). Absent = any source address, both families. */
  networks?: AddrRef[];
}

export type Unlisted = 'warn' | 'deny' | 'accept';

/** `forward:` with defaults filled in (SPEC §6). */
export interface PolicyForward {
  sources: ForwardSource[];
  /** Verdict for governed forwarded flows no rule admits (omitted = the policy's default). */
  default: Verdict;
  /** What a deny does for forwarded traffic: `default` if reject or drop, else reject. */
  denyVerdict: 'reject' | 'drop';
  /** New forwarded flows from no source. */
  unlisted: Unlisted;
  spans: { key: Span; default?: Span; unlisted?: Span };
}

export interface Policy {
  file: string;
  mode: 'enforce' | 'audit';
  default: Verdict;
  /** What a deny does: the default if it is reject or drop, reject if the default is accept (SPEC §2). */
  denyVerdict: 'reject' | 'drop';
  log: { prefix: string; rate?: LogRate; uid: boolean };
  builtins: { loopback: boolean; established: boolean; icmpv6_nd: boolean };
  dns: PolicyDns;
  /** `forward:` (SPEC §6); absent = forwarded traffic is not governed. */
  forward?: PolicyForward;
  /** `require_reason: true`: a rule without a reason is an error. */
  requireReason: boolean;
  sets: SetDef[];
  allow: Rule[];
  deny: Rule[];
  /** Where top-level settings were written, for lint messages; absent = defaulted. */
  spans: {
    default?: Span;
    logPrefix?: Span;
    builtins: Partial<Record<'loopback' | 'established' | 'icmpv6_nd', Span>>;
  };
}

export const DEFAULT_LOG_PREFIX = 'EGRESS ';
export const DEFAULT_LOG_RATE: LogRate = { count: 10, unit: 'second' };
/**
 * In audit mode the log is what `learn` reads: a flow whose line the limit
 * dropped is a flow learn never proposes. So audit's default is ten times
 * enforce's (a service starting opens dozens of connections at once).
 */
export const DEFAULT_AUDIT_LOG_RATE: LogRate = { count: 100, unit: 'second' };

/** How many lines may come at once before the rate applies: one unit's worth (at least 5, the kernels' own default; at most iptables' 10000). */
export function logBurst(r: LogRate): number {
  return Math.min(10_000, Math.max(5, r.count));
}
