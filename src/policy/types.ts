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
  | { kind: 'set'; name: string; text: string; span: Span };

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

export interface Rule extends Selectors {
  ref: RuleRef;
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

export interface Policy {
  file: string;
  mode: 'enforce' | 'audit';
  default: Verdict;
  /** What a deny does: the default if it is reject or drop, reject if the default is accept (SPEC §2). */
  denyVerdict: 'reject' | 'drop';
  log: { prefix: string; rate?: LogRate; uid: boolean };
  builtins: { loopback: boolean; established: boolean; icmpv6_nd: boolean };
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
