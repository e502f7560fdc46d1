import type { Span } from '../diag/source.js';

/** A scalar from the file with its span; numbers keep their source text. */
export interface Str {
  value: string;
  span: Span;
  /** True when YAML typed it as a number (e.g. `user: 1001`). */
  numeric?: boolean;
}

export interface Bool {
  value: boolean;
  span: Span;
}

export interface SelectorsAst {
  span: Span;
  to?: Str[];
  ports?: Str[];
  icmp?: Str[];
  user?: Str[];
  group?: Str[];
  via?: Str[];
  family?: Str;
  /** Span of each selector's key, for "selector X cannot be expressed" errors. */
  keySpans: Partial<Record<SelectorName, Span>>;
}

export const SELECTOR_NAMES = ['to', 'ports', 'icmp', 'user', 'group', 'via', 'family'] as const;
export type SelectorName = (typeof SELECTOR_NAMES)[number];

export interface RuleAst extends SelectorsAst {
  action: 'allow' | 'deny';
  name?: Str;
  reason?: Str;
  owner?: Str;
  ticket?: Str;
  expires?: Str;
  from?: Str[];
  fromKeySpan?: Span;
  except?: SelectorsAst[];
  exceptKeySpan?: Span;
}

export interface SetAst {
  name: Str;
  span: Span;
  items?: Str[];
  file?: Str;
}

export interface DnsAst {
  keySpan: Span;
  proxy?: Bool;
  upstream?: Str[];
  upstreamKeySpan?: Span;
  grace?: Str;
  minLifetime?: Str;
}

export interface ForwardSourceAst {
  name: Str;
  span: Span;
  interfaces?: Str[];
  networks?: Str[];
  interfacesKeySpan?: Span;
  networksKeySpan?: Span;
}

export interface ForwardAst {
  keySpan: Span;
  sources: ForwardSourceAst[];
  sourcesKeySpan?: Span;
  default?: Str;
  unlisted?: Str;
}

export interface PolicyAst {
  file: string;
  span: Span;
  version?: Str;
  mode?: Str;
  default?: Str;
  log: { prefix?: Str; rate?: Str; uid?: Bool };
  builtins: { loopback?: Bool; established?: Bool; icmpv6_nd?: Bool };
  dns?: DnsAst;
  forward?: ForwardAst;
  requireReason?: Bool;
  sets: SetAst[];
  allow: RuleAst[];
  deny: RuleAst[];
}
