/**
 * PolicyAst → Policy: every value parsed against its grammar, names unique,
 * `$set`s bound and used, `except` only on deny, families consistent, expired
 * rules dropped (with a warning). Never mutates the AST; the clock is a parameter.
 */
import { error, q, warning, type Diagnostic, type Result } from '../diag/diagnostic.js';
import type { Span } from '../diag/source.js';
import { parseDest, type Family } from './address.js';
import type { DnsAst, ForwardAst, PolicyAst, RuleAst, SelectorsAst, SetAst, Str } from './ast.js';
import { formatDuration, parseDuration, parseUpstream } from './dns-name.js';
import { ICMP_ALIASES, ICMP_TYPES, L4_PROTOS, type L4Proto } from './protocols.js';
import { didYouMean } from './suggest.js';
import {
  DEFAULT_DNS_GRACE_SEC,
  DEFAULT_DNS_MIN_LIFETIME_SEC,
  DEFAULT_LOG_PREFIX,
  DEFAULT_AUDIT_LOG_RATE,
  DEFAULT_LOG_RATE,
  DNS_GRACE_BOUNDS,
  DNS_MIN_LIFETIME_BOUNDS,
  type DestRef,
  type IcmpRef,
  type IfaceRef,
  type LogRate,
  type DnsUpstream,
  type ForwardSource,
  type FromRef,
  type PolicyForward,
  type Unlisted,
  HOST_SOURCE,
  type OwnerRef,
  type Policy,
  type PolicyDns,
  type PortRange,
  type Rule,
  type Selectors,
  type SetDef,
  type Verdict,
} from './types.js';

export const RULE_NAME = /^[a-z0-9_-]{1,32}$/;
const OWNER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;
const IFACE_NAME = /^[A-Za-z0-9_.:@-]{1,15}\*?$/;
/** Log prefixes reach rulesets inside quotes; this allow-list needs no escaping in any backend. */
export const LOG_PREFIX_CHARS = /^[A-Za-z0-9 _.:=/+-]*$/;
export const MAX_LOG_PREFIX = 29;
const EXPIRY_WARNING_DAYS = 14;

export interface CheckOptions {
  /** Today, for `expires`. */
  now: Date;
}

export function checkPolicy(ast: PolicyAst, opts: CheckOptions): Result<Policy> {
  const c = new Checker(opts);
  const value = c.policy(ast);
  return { value, diagnostics: c.diagnostics };
}

class Checker {
  readonly diagnostics: Diagnostic[] = [];
  private usedSets = new Set<string>();
  private setNames = new Map<string, SetAst>();
  private checkedSets = new Map<string, SetDef>();
  /** `dns.proxy`, known before any destination is checked: wildcards need it. */
  private proxy: { on: boolean; span?: Span } = { on: false };
  /** `forward.sources` by name, known before any rule's `from` is checked. */
  private sources = new Map<string, ForwardSource>();
  private forwardKey: Span | undefined;

  constructor(private readonly opts: CheckOptions) {}

  private err(...a: Parameters<typeof error>): void {
    this.diagnostics.push(error(...a));
  }

  policy(ast: PolicyAst): Policy {
    const def = (ast.default?.value ?? 'reject') as Verdict;
    const dns = this.dns(ast.dns);
    for (const s of ast.sets) {
      if (!/^[a-z0-9_-]{1,32}$/.test(s.name.value))
        this.err('bad-set-name', `bad set name ${q(s.name.value)}`, s.name.span, { hint: 'set names are 1-32 characters of a-z, 0-9, "_" and "-"' });
      this.setNames.set(s.name.value, s);
    }
    const forward = ast.forward ? this.forward(ast.forward, def) : undefined;
    const sets = ast.sets.map((s) => this.set(s));
    for (const s of sets) this.checkedSets.set(s.name, s);
    this.checkSetCycles(sets);
    // Rules are checked in file order, so a duplicate name is reported at its second appearance.
    const names = new Map<string, Span>();
    const checked = new Map<RuleAst, Rule | undefined>();
    for (const r of [...ast.allow, ...ast.deny].sort((a, b) => a.span.start - b.span.start)) checked.set(r, this.rule(r, names));
    const rules = (list: RuleAst[]) => list.map((r) => checked.get(r)).filter((r): r is Rule => r !== undefined);
    const deny = rules(ast.deny);
    const allow = rules(ast.allow);
    for (const s of ast.sets)
      if (!this.usedSets.has(s.name.value))
        this.err('unused-set', `set ${q(s.name.value)} is defined but no rule uses it`, s.name.span, {
          hint: `reference it as "$${s.name.value}" in a rule's "to", or delete it`,
        });
    return {
      file: ast.file,
      mode: (ast.mode?.value ?? 'enforce') as Policy['mode'],
      requireReason: ast.requireReason?.value ?? false,
      default: def,
      denyVerdict: def === 'drop' ? 'drop' : 'reject',
      log: {
        prefix: this.logPrefix(ast.log.prefix),
        ...(this.logRate(ast.log.rate, ast.mode?.value === 'audit') ?? {}),
        uid: ast.log.uid?.value ?? true,
      },
      builtins: {
        loopback: ast.builtins.loopback?.value ?? true,
        established: ast.builtins.established?.value ?? true,
        icmpv6_nd: ast.builtins.icmpv6_nd?.value ?? true,
      },
      dns,
      ...(forward ? { forward } : {}),
      sets,
      allow,
      deny,
      spans: {
        ...(ast.default ? { default: ast.default.span } : {}),
        ...(ast.log.prefix ? { logPrefix: ast.log.prefix.span } : {}),
        builtins: Object.fromEntries(Object.entries(ast.builtins).map(([k, v]) => [k, v.span])),
      },
    };
  }

  private logPrefix(p: Str | undefined): string {
    if (!p) return DEFAULT_LOG_PREFIX;
    if (!LOG_PREFIX_CHARS.test(p.value))
      this.err('bad-log-prefix', `log prefix ${q(p.value)} has characters a ruleset cannot carry safely`, p.span, {
        hint: 'use letters, digits, space and _ . : = / + -',
      });
    else if (p.value.length > MAX_LOG_PREFIX)
      this.err('bad-log-prefix', `log prefix ${q(p.value)} is ${p.value.length} characters; iptables allows at most ${MAX_LOG_PREFIX}`, p.span, {
        hint: 'keep it to 20 characters so the verdict and rule tag fit too',
      });
    return p.value;
  }

  private logRate(r: Str | undefined, audit: boolean): { rate: LogRate } | undefined {
    if (!r) return { rate: audit ? DEFAULT_AUDIT_LOG_RATE : DEFAULT_LOG_RATE };
    const m = /^\s*(\d+)\s*\/\s*(second|minute|hour|day)s?\s*$/.exec(r.value);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 1_000_000) {
      this.err('bad-log-rate', `bad log rate ${q(r.value)}`, r.span, { hint: 'write it as "N/second", "N/minute", "N/hour" or "N/day" with N ≥ 1' });
      return undefined;
    }
    return { rate: { count: Number(m[1]), unit: m[2] as LogRate['unit'] } };
  }

  private set(s: SetAst): SetDef {
    const def: SetDef = { name: s.name.value, span: s.name.span };
    if (s.file) def.file = { path: s.file.value, span: s.file.span };
    else if (s.items) def.items = s.items.map((i) => this.dest(i, undefined)).filter((d): d is DestRef => d !== undefined);
    return def;
  }

  private checkSetCycles(sets: SetDef[]): void {
    const byName = new Map(sets.map((s) => [s.name, s]));
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (s: SetDef, via: DestRef | undefined): void => {
      const st = state.get(s.name);
      if (st === 'done') return;
      if (st === 'visiting') {
        if (via) this.err('set-cycle', `set ${q(s.name)} includes itself`, via.span);
        return;
      }
      state.set(s.name, 'visiting');
      for (const it of s.items ?? []) if (it.kind === 'set') {
        const t = byName.get(it.name);
        if (t) visit(t, it);
      }
      state.set(s.name, 'done');
    };
    for (const s of sets) visit(s, undefined);
  }

  private dest(s: Str, family: Family | undefined): DestRef | undefined {
    const d = parseDest(s.value);
    switch (d.kind) {
      case 'error':
        this.err(d.code ?? 'bad-address', d.message, s.span, d.hint ? { hint: d.hint } : {});
        return undefined;
      case 'wildcard':
        if (!this.proxy.on) {
          this.err('wildcard-needs-proxy', `wildcard ${q(s.value)} needs "dns: { proxy: true }"`, s.span, {
            hint: 'only the DNS forwarder can know which addresses a wildcard stands for: turn it on with "dns: { proxy: true }"',
            ...(this.proxy.span ? { notes: [{ message: 'dns.proxy is off here', span: this.proxy.span }] } : {}),
          });
          return undefined;
        }
        return { kind: 'wildcard', pattern: d.pattern, text: s.value, span: s.span };
      case 'set': {
        const known = this.setNames.has(d.name);
        this.usedSets.add(d.name);
        if (!known) {
          const hint = didYouMean(d.name, this.setNames.keys());
          this.err('unknown-set', `unknown set ${q('$' + d.name)}`, s.span, {
            hint: hint ? hint.replace('"', '"$') : this.setNames.size ? `defined sets: ${[...this.setNames.keys()].map((n) => '$' + n).join(', ')}` : 'define it under "sets:"',
          });
          return undefined;
        }
        return { kind: 'set', name: d.name, text: s.value, span: s.span };
      }
      case 'host':
        return { kind: 'host', name: d.name, text: s.value, span: s.span };
      case 'addr':
        if (d.hostBitsFix)
          this.diagnostics.push(warning('host-bits-set', `host bits set in ${q(s.value)}`, s.span, { hint: `did you mean ${d.hostBitsFix}?` }));
        // ::ffff:a.b.c.d never appears on the wire as such: a reader of a deny rule would take it to cover a.b.c.d.
        // Only a destination wholly inside ::ffff:0:0/96 is that; "::/0" merely contains it.
        if (d.family === 'ipv6' && d.lo >= MAPPED_LO && d.hi <= MAPPED_HI)
          this.diagnostics.push(
            warning('special-address', `${q(s.value)} is IPv4-mapped IPv6: no packet carries such an address, so it matches nothing (and does not cover the IPv4 address)`, s.span, {
              hint: 'write the IPv4 address (or range) itself',
            }),
          );
        if (family && d.family !== family) {
          this.err('family-conflict', `${q(s.value)} is an ${d.family} destination but the rule's family is ${family}`, s.span);
          return undefined;
        }
        return { kind: 'addr', family: d.family, lo: d.lo, hi: d.hi, text: s.value, span: s.span };
    }
  }

  private port(s: Str): PortRange | undefined {
    const m = /^([A-Za-z][A-Za-z0-9]*)(?:\/(\d+)(?:-(\d+))?)?$/.exec(s.value.trim());
    const proto = m?.[1];
    if (!m || !proto) {
      const bare = /^\d+(-\d+)?$/.test(s.value.trim());
      this.err('bad-port', `bad port ${q(s.value)}`, s.span, {
        hint: bare ? `write the protocol too, e.g. "tcp/${s.value.trim()}"` : 'write "PROTO/PORT", "PROTO/LOW-HIGH" or a bare "PROTO" (tcp, udp, sctp)',
      });
      return undefined;
    }
    if (!(L4_PROTOS as readonly string[]).includes(proto)) {
      const lower = proto.toLowerCase();
      const hint = (L4_PROTOS as readonly string[]).includes(lower)
        ? `did you mean "${s.value.trim().replace(proto, lower)}"?`
        : lower === 'icmp' || lower === 'icmpv6'
          ? 'ICMP goes in "icmp:", e.g. icmp: [echo-request]'
          : didYouMean(lower, L4_PROTOS) ?? 'protocols with ports are tcp, udp and sctp';
      this.err('bad-protocol', `unknown protocol ${q(proto)} in ${q(s.value)}`, s.span, { hint });
      return undefined;
    }
    const lo = m[2] === undefined ? 0 : Number(m[2]);
    const hi = m[3] === undefined ? (m[2] === undefined ? 65535 : lo) : Number(m[3]);
    if (m[2] !== undefined && (lo < 1 || lo > 65535 || hi < 1 || hi > 65535)) {
      this.err('bad-port', `port out of range in ${q(s.value)}`, s.span, { hint: 'ports are 1-65535' });
      return undefined;
    }
    if (lo > hi) {
      this.err('bad-port', `port range ${q(s.value)} ends before it starts`, s.span, { hint: `did you mean "${proto}/${hi}-${lo}"?` });
      return undefined;
    }
    return { proto: proto as L4Proto, lo, hi, text: s.value.trim(), span: s.span };
  }

  private icmp(s: Str): IcmpRef | undefined {
    const raw = s.value.trim().toLowerCase();
    const name = ICMP_ALIASES[raw] ?? raw;
    if (name === 'any' || ICMP_TYPES[name]) return { name, span: s.span };
    const hint = didYouMean(raw, [...Object.keys(ICMP_TYPES), 'any']);
    this.err('bad-icmp', `unknown ICMP type ${q(s.value)}`, s.span, { hint: hint ?? `known types: ${Object.keys(ICMP_TYPES).join(', ')}, any` });
    return undefined;
  }

  private owner(s: Str, what: 'user' | 'group'): OwnerRef | undefined {
    const t = s.value.trim();
    if (/^\d+$/.test(t)) {
      const id = Number(t);
      if (id > 0xfffffffe) {
        this.err('bad-user', `${what} id ${t} is out of range`, s.span);
        return undefined;
      }
      return { id, text: t, span: s.span };
    }
    if (!OWNER_NAME.test(t)) {
      this.err('bad-user', `bad ${what} name ${q(s.value)}`, s.span, { hint: `a ${what} is a name like "postfix" or a number` });
      return undefined;
    }
    return { name: t, text: t, span: s.span };
  }

  private iface(s: Str): IfaceRef | undefined {
    if (!IFACE_NAME.test(s.value)) {
      this.err('bad-interface', `bad interface name ${q(s.value)}`, s.span, { hint: 'interface names are 1-15 characters; a trailing "*" matches a prefix' });
      return undefined;
    }
    return { name: s.value, span: s.span };
  }

  private selectors(a: SelectorsAst, exceptOf?: string): Selectors {
    const out: Selectors = { span: a.span, keySpans: a.keySpans };
    let family: Family | undefined;
    if (a.family) {
      if (a.family.value === 'ipv4' || a.family.value === 'ipv6') family = out.family = a.family.value;
    }
    const pick = <T>(xs: Str[] | undefined, f: (s: Str) => T | undefined): T[] | undefined =>
      xs === undefined ? undefined : xs.map(f).filter((x): x is T => x !== undefined);
    const to = pick(a.to, (s) => this.dest(s, family));
    if (to) out.to = exceptOf === undefined ? to : to.filter((d) => this.exceptDest(d, exceptOf));
    const ports = pick(a.ports, (s) => this.port(s));
    if (ports) out.ports = ports;
    const icmp = pick(a.icmp, (s) => this.icmp(s));
    if (icmp) out.icmp = icmp;
    const users = pick(a.user, (s) => this.owner(s, 'user'));
    if (users) out.users = users;
    const groups = pick(a.group, (s) => this.owner(s, 'group'));
    if (groups) out.groups = groups;
    const via = pick(a.via, (s) => this.iface(s));
    if (via) out.via = via;
    for (const [k, list] of [['to', a.to], ['ports', a.ports], ['icmp', a.icmp], ['user', a.user], ['group', a.group], ['via', a.via]] as const)
      if (list && list.length === 0 && a.keySpans[k])
        this.diagnostics.push(
          warning('empty-rule', `selector ${q(k)} is an empty list, so it matches nothing`, a.keySpans[k], { hint: `omit "${k}" to match any` }),
        );
    return out;
  }

  /**
   * An except is matched by address, resolved when the ruleset loads: a
   * wildcard (written there or reached through a set) cannot be, so it is an
   * error rather than an except that silently matches nothing.
   */
  private exceptDest(d: DestRef, rule: string): boolean {
    const found = d.kind === 'wildcard' ? d : d.kind === 'set' ? this.wildcardIn(d.name, new Set()) : undefined;
    if (!found) return true;
    this.err('wildcard-in-except', `rule ${q(rule)}: except names the wildcard ${q(found.text)}`, d.span, {
      hint: 'an except is matched by address when the ruleset loads; name exact hosts there, or narrow the deny rule instead',
      ...(found !== d ? { notes: [{ message: `the wildcard is in set ${q(d.text.trim().slice(1))} here`, span: found.span }] } : {}),
    });
    return false;
  }

  private wildcardIn(set: string, seen: Set<string>): DestRef | undefined {
    if (seen.has(set)) return undefined;
    seen.add(set);
    for (const it of this.checkedSets.get(set)?.items ?? []) {
      if (it.kind === 'wildcard') return it;
      if (it.kind === 'set') {
        const w = this.wildcardIn(it.name, seen);
        if (w) return w;
      }
    }
    return undefined;
  }

  /** `forward:` (SPEC §6): sources checked and named, defaults filled. */
  private forward(a: ForwardAst, policyDefault: Verdict): PolicyForward {
    this.forwardKey = a.keySpan;
    const def = a.default && ['reject', 'drop', 'accept'].includes(a.default.value) ? (a.default.value as Verdict) : policyDefault;
    const unlisted = a.unlisted && ['warn', 'deny', 'accept'].includes(a.unlisted.value) ? (a.unlisted.value as Unlisted) : 'warn';
    const sources: ForwardSource[] = [];
    for (const s of a.sources) {
      const name = s.name.value;
      if (!RULE_NAME.test(name)) {
        this.err('bad-source-name', `bad forward source name ${q(name)}`, s.name.span, { hint: 'source names are 1-32 characters of a-z, 0-9, "_" and "-"' });
        continue;
      }
      if (name === HOST_SOURCE) {
        this.err('bad-source-name', `"host" is not a forward source: it is what "from" calls this host's own traffic`, s.name.span, { hint: 'give the source another name, such as "docker" or "vms"' });
        continue;
      }
      const src: ForwardSource = { name, span: s.name.span, interfaces: [] };
      for (const i of s.interfaces ?? []) {
        const f = this.iface(i);
        if (f) src.interfaces.push(f);
      }
      if (s.networks) {
        src.networks = [];
        for (const n of s.networks) {
          const d = parseDest(n.value);
          if (d.kind !== 'addr') {
            this.err('bad-source-network', `${q(n.value)} is not an address, CIDR or range`, n.span, {
              hint: d.kind === 'error' ? d.hint ?? d.message : 'a source network is written as addresses: "172.17.0.0/16", "fd00::/64", "10.0.0.5"; no names or sets',
            });
            continue;
          }
          if (d.hostBitsFix) this.diagnostics.push(warning('host-bits-set', `host bits set in ${q(n.value)}`, n.span, { hint: `did you mean ${d.hostBitsFix}?` }));
          src.networks.push({ kind: 'addr', family: d.family, lo: d.lo, hi: d.hi, text: n.value, span: n.span });
        }
      }
      for (const [k, list, ks] of [['interfaces', s.interfaces, s.interfacesKeySpan], ['networks', s.networks, s.networksKeySpan]] as const)
        if (list && list.length === 0 && ks)
          this.err('empty-source', `forward source ${q(name)}: ${q(k)} is an empty list, so the source matches nothing`, ks, { hint: `omit "${k}" to match any` });
      if (!s.interfaces && !s.networks) {
        this.err('empty-source', `forward source ${q(name)} names neither interfaces nor networks`, s.name.span, {
          hint: 'say where its traffic comes from: interfaces: ["docker0", "br-*"] and/or networks: [172.17.0.0/16]',
        });
        continue;
      }
      this.sources.set(name, src);
      sources.push(src);
    }
    if (a.sources.length === 0)
      this.diagnostics.push(
        warning('no-sources', '"forward" names no sources: every forwarded flow is unlisted', a.sourcesKeySpan ?? a.keySpan, {
          hint: 'add sources: { docker: { interfaces: ["docker0", "br-*"] } }',
        }),
      );
    return {
      sources,
      default: def,
      denyVerdict: def === 'drop' ? 'drop' : 'reject',
      unlisted,
      spans: { key: a.keySpan, ...(a.default ? { default: a.default.span } : {}), ...(a.unlisted ? { unlisted: a.unlisted.span } : {}) },
    };
  }

  /** A rule's `from`: "host" and known sources, sorted and unique; owners cannot match forwarded packets. */
  private from(r: RuleAst, rule: string, selectors: Selectors[]): FromRef[] {
    if (!r.from) return [{ name: HOST_SOURCE, span: r.name?.span ?? r.span }];
    if (r.from.length === 0 && r.fromKeySpan)
      this.diagnostics.push(warning('empty-rule', 'selector "from" is an empty list, so the rule governs no traffic', r.fromKeySpan, { hint: 'omit "from" to govern this host\'s own traffic' }));
    const out = new Map<string, FromRef>();
    for (const f of r.from) {
      const name = f.value.trim();
      if (name !== HOST_SOURCE && !this.sources.has(name)) {
        const known = [HOST_SOURCE, ...this.sources.keys()];
        const hint = didYouMean(name, known) ?? (this.forwardKey ? `known: ${known.map((k) => q(k)).join(', ')}` : 'define it under "forward: { sources: … }"');
        this.err('unknown-source', `rule ${q(rule)}: unknown source ${q(name)} in "from"`, f.span, { hint });
        continue;
      }
      if (!out.has(name)) out.set(name, { name, span: f.span });
    }
    const list = [...out.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const forwarded = list.find((f) => f.name !== HOST_SOURCE);
    if (forwarded)
      for (const sel of selectors)
        for (const k of ['user', 'group'] as const) {
          if (!(k === 'user' ? sel.users : sel.groups)) continue;
          this.err('unsupported-selector', `rule ${q(rule)}: ${q(k)} cannot match forwarded packets (from ${q(forwarded.name)}): they have no socket owner`, sel.keySpans[k] ?? r.span, {
            hint: `split the rule: one with "from: [host]" and the ${k}, one for the forward sources with their "networks"`,
            notes: [{ message: `${q(forwarded.name)} is named here`, span: forwarded.span }],
          });
        }
    return list;
  }

  private dns(a: DnsAst | undefined): PolicyDns {
    const out: PolicyDns = { proxy: a?.proxy?.value ?? false, graceSec: DEFAULT_DNS_GRACE_SEC, minLifetimeSec: DEFAULT_DNS_MIN_LIFETIME_SEC, spans: {} };
    this.proxy = { on: out.proxy, ...(a?.proxy ? { span: a.proxy.span } : {}) };
    if (!a) return out;
    out.spans.key = a.keySpan;
    if (a.proxy) out.spans.proxy = a.proxy.span;
    if (a.upstream) {
      if (a.upstreamKeySpan) out.spans.upstream = a.upstreamKeySpan;
      const ups: DnsUpstream[] = [];
      for (const s of a.upstream) {
        const u = parseUpstream(s.value);
        if (u.kind === 'error') this.err('bad-upstream', u.message, s.span, u.hint ? { hint: u.hint } : {});
        else if (!ups.some((x) => x.address === u.address && x.port === u.port)) ups.push({ family: u.family, address: u.address, port: u.port, text: s.value, span: s.span });
      }
      if (a.upstream.length === 0 && a.upstreamKeySpan)
        this.err('bad-upstream', '"upstream" is an empty list: the forwarder would have no server to ask', a.upstreamKeySpan, {
          hint: "omit it to use /etc/resolv.conf's nameservers",
        });
      out.upstream = ups;
    }
    const dur = (s: Str | undefined, what: string, bounds: { min: number; max: number }): number | undefined => {
      if (!s) return undefined;
      const sec = parseDuration(s.value);
      if (sec === undefined) {
        this.err('bad-duration', `bad duration ${q(s.value)} for ${q(what)}`, s.span, { hint: 'write a number with a unit: "60s", "2m", "1h" or "1m30s"' });
        return undefined;
      }
      if (sec < bounds.min || sec > bounds.max) {
        this.err('duration-out-of-range', `${q(what)} of ${formatDuration(sec)} is out of range`, s.span, {
          hint: `use ${formatDuration(bounds.min)} to ${formatDuration(bounds.max)}`,
        });
        return undefined;
      }
      return sec;
    };
    const grace = dur(a.grace, 'grace', DNS_GRACE_BOUNDS);
    if (grace !== undefined) out.graceSec = grace;
    if (a.grace) out.spans.grace = a.grace.span;
    const min = dur(a.minLifetime, 'min_lifetime', DNS_MIN_LIFETIME_BOUNDS);
    if (min !== undefined) out.minLifetimeSec = min;
    if (a.minLifetime) out.spans.minLifetime = a.minLifetime.span;
    return out;
  }

  private rule(r: RuleAst, names: Map<string, Span>): Rule | undefined {
    const name = r.name?.value ?? '';
    if (r.name) {
      if (!RULE_NAME.test(name))
        this.err('bad-rule-name', `bad rule name ${q(name)}`, r.name.span, {
          hint: 'rule names are 1-32 characters of a-z, 0-9, "_" and "-"',
        });
      else {
        const first = names.get(name);
        if (first)
          this.err('duplicate-rule-name', `duplicate rule name ${q(name)}`, r.name.span, {
            notes: [{ message: `first defined here`, span: first }],
          });
        else names.set(name, r.name.span);
      }
    }
    const sel = this.selectors(r);
    const except = (r.except ?? []).map((e) => this.selectors(e, name));
    if (r.action === 'allow' && r.except)
      this.err('except-on-allow', `rule ${q(name)}: "except" is only allowed on deny rules`, r.exceptKeySpan ?? r.span, {
        hint: 'narrow the allow rule itself, or add a deny rule with this except',
      });
    const from = this.from(r, name, [sel, ...except]);
    const rule: Rule = { ...sel, ref: { name, action: r.action, span: r.name?.span ?? r.span }, from, except };
    if (r.fromKeySpan) rule.fromSpan = r.fromKeySpan;
    if (r.exceptKeySpan) rule.exceptSpan = r.exceptKeySpan;
    // Text every backend must carry the same way: NUL and unpaired UTF-16 surrogates are refused here,
    // not turned into a space by one backend and refused by another (D19).
    for (const [key, v] of [['reason', r.reason], ['owner', r.owner], ['ticket', r.ticket]] as const) {
      const why = v && uncarriable(v.value);
      if (why) this.err('bad-value', `the ${key} of rule ${q(name)} contains ${why}`, v.span, { hint: 'no firewall backend can carry it as written' });
    }
    if (r.reason) rule.reason = r.reason.value;
    if (r.owner) rule.owner = r.owner.value;
    if (r.ticket) rule.ticket = r.ticket.value;
    if (r.expires) {
      const d = parseDate(r.expires.value);
      if (!d) {
        this.err('bad-date', `bad expiry date ${q(r.expires.value)}`, r.expires.span, { hint: 'write it as YYYY-MM-DD' });
      } else {
        rule.expires = r.expires.value;
        const today = Date.UTC(this.opts.now.getUTCFullYear(), this.opts.now.getUTCMonth(), this.opts.now.getUTCDate());
        const days = Math.round((d.getTime() - today) / 86_400_000);
        if (days < 0) {
          this.diagnostics.push(
            warning('expired-rule', `rule ${q(name)} expired on ${r.expires.value} and is left out`, r.expires.span, {
              hint: 'delete the rule, or move its expiry date',
            }),
          );
          return undefined;
        }
        if (days <= EXPIRY_WARNING_DAYS)
          this.diagnostics.push(
            warning('expiring-rule', `rule ${q(name)} expires ${days === 0 ? 'today' : `in ${days} day${days === 1 ? '' : 's'}`} (${r.expires.value})`, r.expires.span),
          );
      }
    }
    return rule;
  }
}

const MAPPED_LO = 0xffff00000000n;
const MAPPED_HI = 0xffffffffffffn;

/** A real calendar date "YYYY-MM-DD" (UTC), or undefined; the rule lives through that whole day. */
export function parseDate(s: string): Date | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s.trim());
  if (!m) return undefined;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3]) ? d : undefined;
}

/** What in `s` no backend carries faithfully: a NUL, or an unpaired UTF-16 surrogate (undefined when none). */
export function uncarriable(s: string): string | undefined {
  if (s.includes('\0')) return 'a NUL character';
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s) ? 'an unpaired UTF-16 surrogate' : undefined;
}
