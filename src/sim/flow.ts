/** A flow: one locally generated packet (or connection attempt) as explain/replay see it. */
import type { Family } from '../policy/address.js';
import type { L4Proto } from '../policy/protocols.js';
import type { RuleRef, Verdict } from '../policy/types.js';

export interface Owner {
  id?: number;
  name?: string;
}

export interface Flow {
  family: Family;
  dst: bigint;
  /** 'other' = a protocol that is not tcp/udp/sctp/icmp (matches only rules without ports/icmp). */
  proto: L4Proto | 'icmp' | 'other';
  /** Destination port; undefined with an L4 protocol = "some port" (matches only whole-protocol selectors). */
  port?: number;
  /** ICMP type number in this flow's family (ICMP for ipv4, ICMPv6 for ipv6). */
  icmpType?: number;
  user?: Owner;
  group?: Owner;
  via?: string;
  /** Part of an existing connection (ct state established/related). */
  established?: boolean;
  /**
   * A forwarded packet (SPEC §6), not a locally generated one: the source it
   * is from (named), or its input interface and source address. `via` is
   * then its output interface; `user`/`group` are never set.
   */
  forwarded?: { source?: string; in?: string; src?: bigint };
}

/**
 * The builtins, and the steps of the DNS guard under `dns.proxy`: the
 * forwarder's own DNS (accept), another program's query to port 53
 * (redirected to the forwarder: accept), DNS over TLS (853) from anything else
 * (reject).
 */
export type Builtin = 'loopback' | 'established' | 'icmpv6_nd' | 'dns_forwarder' | 'dns_redirect' | 'dns_bypass' | 'into_source';

export interface Decision {
  verdict: Verdict;
  /** Audit mode: the verdict is what enforce would give; nothing is blocked. */
  audit: boolean;
  /** 'builtin' | 'deny' | 'allow' | 'default': which step of SPEC §2 decided; 'unlisted': a forwarded flow from no source (SPEC §6). */
  step: 'builtin' | 'deny' | 'allow' | 'default' | 'unlisted';
  builtin?: Builtin;
  /** Every rule that decided it: all matching denies, or all matching allows; none for builtin/default. */
  rules: RuleRef[];
  /** Forwarded flows: the sources it belongs to. */
  sources?: string[];
}

export function ownerMatches(want: Owner, have: Owner | undefined): boolean {
  if (!have) return false;
  if (want.id !== undefined && have.id !== undefined) return want.id === have.id;
  if (want.name !== undefined && have.name !== undefined) return want.name === have.name;
  return false;
}

/** Interface match with nft/iptables-style prefix wildcard ("eth*"). */
export function ifaceMatches(pattern: string, name: string | undefined): boolean {
  if (name === undefined) return false;
  return pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

const LOOPBACK4_LO = 0x7f000000n;
const LOOPBACK4_HI = 0x7fffffffn;

/** Packets to 127/8 or ::1 leave through lo whatever --via says. */
export function isLoopbackFlow(f: Flow): boolean {
  if (f.via === 'lo') return true;
  return f.family === 'ipv4' ? f.dst >= LOOPBACK4_LO && f.dst <= LOOPBACK4_HI : f.dst === 1n;
}
