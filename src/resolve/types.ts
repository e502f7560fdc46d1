import type { Span } from '../diag/source.js';
import type { Family } from '../policy/address.js';
import type { Policy, Rule, Selectors } from '../policy/types.js';

/** One destination interval with where it came from. */
export interface ResolvedDest {
  family: Family;
  lo: bigint;
  hi: bigint;
  /** The `to` entry (or set item) as written. */
  text: string;
  span: Span;
  /** The hostname whose resolution gave this address. */
  host?: string;
  /** The `$set` chain it was reached through, outermost first. */
  sets?: string[];
}

export interface ResolvedSelectors extends Omit<Selectors, 'to'> {
  /** Omitted = anywhere. */
  to?: ResolvedDest[];
  /** Hostnames named (directly or through sets) and resolved statically, so refresh knows what feeds the rule. */
  hosts?: string[];
  /**
   * With `dns.proxy`: the names (exact and wildcard, normalized, sorted)
   * whose answers the forwarder handles for this rule — published into an
   * allow rule's dynamic sets, answered REFUSED for a deny rule. Evaluators
   * see no address from them (nobody can know the answers in advance).
   */
  dnsNames?: string[];
  /** Families this selector block can match (SPEC §1 "family"). */
  families: Family[];
}

export interface ResolvedRule extends Omit<Rule, 'to' | 'except'>, ResolvedSelectors {
  except: ResolvedSelectors[];
}

export interface HostEntry {
  name: string;
  ipv4: string[];
  ipv6: string[];
  /** ok: resolved now; stale: resolution failed, last known good kept; unresolved: never resolved (empty, fail closed). */
  status: 'ok' | 'stale' | 'unresolved';
}

export interface ResolvedPolicy extends Omit<Policy, 'allow' | 'deny'> {
  allow: ResolvedRule[];
  deny: ResolvedRule[];
  hosts: HostEntry[];
  /** With `dns.proxy`: the group the forwarder runs as, with its gid where this host knows it. */
  dnsForwarder?: { group: string; gid?: number };
}
