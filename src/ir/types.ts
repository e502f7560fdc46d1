/**
 * The IR: one normalized, order-free model that every backend and the
 * indexed evaluator consume. Family-split (each policy rule becomes an ipv4
 * and/or ipv6 twin), destinations merged into minimal sorted intervals, ports
 * merged into ranges per protocol. Every rule carries `origin` (rule name and
 * span) and every interval the indices of the `to` entries it came from.
 * Destinations are also named as sets (`IrSet`): what was written as
 * addresses, and what comes from hostnames (refreshed in place), so no
 * backend ever re-reads address text.
 */
import type { Span } from '../diag/source.js';
import type { Family, Interval } from '../policy/address.js';
import type { L4Proto } from '../policy/protocols.js';
import type { Policy, RuleRef } from '../policy/types.js';
import type { SelectorName } from '../policy/ast.js';
import type { HostEntry } from '../resolve/types.js';

export interface IrInterval {
  lo: bigint;
  hi: bigint;
  /** Indices into the owning IrRule's `sources`. */
  src: number[];
}

export interface IrSource {
  text: string;
  span: Span;
  host?: string;
  sets?: string[];
}

export interface IrPorts {
  proto: L4Proto;
  /** Merged, sorted, inclusive. [1, 65535] (or [0, 65535]) = the whole protocol. */
  ranges: [number, number][];
}

export interface IrL4 {
  ports: IrPorts[];
  /** ICMP (ipv4) or ICMPv6 (ipv6) type numbers of this family, sorted; 'any' = every type. */
  icmp: number[] | 'any';
}

export interface IrOwner {
  id?: number;
  name?: string;
}

/**
 * One family's destinations of a match, by where they come from. The union
 * of a match's sets is exactly its `dst`.
 * - `addresses`: written as addresses, CIDRs and ranges (merged, sorted).
 * - `hostnames`: the current addresses of `hosts` in this family (single
 *   addresses, sorted). A rule's hostname set lists every hostname of the
 *   rule, even one with no address in this family yet, so that a refresh can
 *   fill it in place; it may be empty.
 * - `dns` (allow rules under `dns.proxy`): the addresses the DNS forwarder
 *   answers for `patterns`, filled at run time with a lifetime each. Nobody
 *   knows them when compiling, so `elements` is always empty here and the
 *   evaluators judge flows with the set empty.
 */
export interface IrSet {
  kind: 'addresses' | 'hostnames' | 'dns';
  family: Family;
  elements: Interval[];
  /** The hostnames feeding a `hostnames` set ([] for the other kinds). */
  hosts: string[];
  /** The names (exact and wildcard, sorted) feeding a `dns` set; absent for the other kinds. */
  patterns?: string[];
  origin: RuleRef;
}

/** What a rule (or one `except` alternative) matches; an omitted field matches anything. */
export interface IrMatch {
  dst?: IrInterval[];
  /** `dst` as named sets; present exactly when `dst` is. */
  sets?: IrSet[];
  /** Hostnames with an address in this family feeding `dst`. */
  hosts?: string[];
  l4?: IrL4;
  users?: IrOwner[];
  groups?: IrOwner[];
  via?: string[];
}

export interface IrRule extends IrMatch {
  origin: RuleRef;
  /** Where each selector key of the rule was written, so a backend can say which one it cannot express. */
  keySpans: Partial<Record<SelectorName | 'except' | 'from', Span>>;
  family: Family;
  except: IrMatch[];
  sources: IrSource[];
  reason?: string;
  /**
   * `expires`: the rule stops matching at this instant (seconds since the
   * epoch, exclusive: the end of its expiry day, UTC), in the kernel itself,
   * without anyone running apply. Evaluators ignore it: a policy is loaded
   * at a time, and an expired rule is left out then.
   */
  untilSec?: number;
  /**
   * Forward twins only (in `Ir.forward.rules`): the sources whose forwarded
   * traffic this twin governs, sorted; each exists in the twin's family.
   */
  from?: string[];
}

/** A forward source as the backends need it (`forward.sources`). */
export interface IrFwdSource {
  name: string;
  /** Input interface globs (trailing "*" = prefix), sorted; [] = any interface. */
  interfaces: string[];
  /** Source networks per family, merged; absent, or [] in a family of a source with interfaces = any address of that family. */
  networks?: Record<Family, Interval[]>;
  /** The families the source has traffic in: both with interfaces, else those of its networks. */
  families: Family[];
  span: Span;
}

/** `forward:` (SPEC §6): the forward hook's own rules, judged per source like the host's (deny, allow, default). */
export interface IrForward {
  sources: IrFwdSource[];
  default: Policy['default'];
  denyVerdict: Policy['denyVerdict'];
  unlisted: 'warn' | 'deny' | 'accept';
  /** Deny rules first, then allow; each by name, ipv4 before ipv6 (as `Ir.rules`). */
  rules: IrRule[];
  span: Span;
}

/** A name a deny rule gives under `dns.proxy`: the forwarder answers it REFUSED (no address is denied). */
export interface IrRefusedName {
  pattern: string;
  origin: RuleRef;
}

/** `dns.proxy: true`, as the backends and the forwarder need it. */
export interface IrDns {
  /** The policy's `dns.upstream`; [] = the system's servers, found when the forwarder starts (resolve/dns.ts). */
  upstream: { address: string; port: number }[];
  graceSec: number;
  minLifetimeSec: number;
  /** Where the forwarder listens: the target of the kernel's redirect of DNS. */
  listen: { address: string; port: number }[];
  /** The group the forwarder runs as (with uid 0): its DNS is the only DNS that is not redirected. */
  forwarder: IrOwner;
  /** Deny rules' names, by rule then name. */
  refused: IrRefusedName[];
  /** Where `dns.proxy` was written (for backends that cannot express it). */
  span: Span;
}

export interface Ir {
  mode: Policy['mode'];
  default: Policy['default'];
  denyVerdict: Policy['denyVerdict'];
  log: Policy['log'];
  builtins: Policy['builtins'];
  /** Deny rules first, then allow; each by name, ipv4 before ipv6. */
  rules: IrRule[];
  hosts: HostEntry[];
  /** Present exactly when `dns.proxy` is on. */
  dns?: IrDns;
  /** Present exactly when the policy has `forward:`. */
  forward?: IrForward;
}
