/**
 * Ir → one self-contained nft script that owns `table inet egress` and
 * nothing else (SPEC §3). Loaded with `nft -f`, it replaces that table in one
 * transaction: `table inet egress {}` + `delete table inet egress` + the new
 * table, so a re-apply never touches another table and never needs
 * `flush ruleset`.
 *
 * Cannot express: nothing. Every selector (to, ports, icmp, user, group, via,
 * family, except), audit mode, IPv6, hostnames and names that follow DNS
 * (`dns.proxy`: dynamic sets, the redirect and the guard, see dns.ts) have a
 * native form, so this backend raises no `unsupported-selector` error.
 *
 * Shape (names: see `nftNames` and docs/backends-linux.md):
 *   - one base chain `output` (hook output, priority filter, policy accept;
 *     our verdicts are explicit): builtins, then every deny rule's match
 *     jumping to its chain `deny_<rule>_<v4|v6>`, then allow rules, then the
 *     default (counter, rate-limited log, verdict);
 *   - each deny chain RETURNs for its `except` alternatives, then counts,
 *     logs and gives the deny verdict (or accepts, in audit mode);
 *   - destinations live in named sets, per rule, family and except
 *     alternative: literal single addresses in a hash set `..._addr`, literal
 *     CIDRs and ranges in an interval set `..._dst` (a hash lookup is
 *     cheaper per packet than an interval tree's, and its cost does not grow
 *     with N: BENCHMARKS.md, "With a C load generator"), hostname addresses
 *     in a hash set `..._hosts` that `egress refresh` can rewrite in place
 *     (`emitNftRefresh`), so the cost per packet never grows with the number
 *     of destinations;
 *   - every policy rule counts into a named counter (`<allow|deny>_<rule>_<v4|v6>`)
 *     placed before any `limit`, so counts stay exact while log lines are
 *     rate-limited;
 *   - with `dns.proxy`: a nat chain `dns_redirect` that hands DNS to the
 *     forwarder, a guard at the top of `output`, and dynamic sets `..._dns`
 *     that the forwarder fills (dns.ts).
 */
import { ALL_CAPABILITIES, ArtifactWriter, type Artifact, type Backend, type Capabilities } from '../types.js';
import { logPrefix, NFT_PREFIX_MAX, type TagVerdict } from '../log-tag.js';
import { formatAddress, formatInterval, type Family } from '../../policy/address.js';
import { ICMPV6_ND_TYPES } from '../../policy/protocols.js';
import type { Result } from '../../diag/diagnostic.js';
import type { Ir, IrDns, IrForward, IrFwdSource, IrL4, IrMatch, IrOwner, IrRule } from '../../ir/types.js';
import { logBurst, type RuleRef } from '../../policy/types.js';
import { nftComment, nftIdent, nftQuote } from './quote.js';
import { DNS_PORTS, dnsCounters, emitDnsGuard, emitDnsRedirect, forwardDnsPort, forwarderConfig, L4 as DNS_L4, NFT_DNS_SET_SIZE, nftDnsNames as dnsNames, nftForwarderNames, type NftDnsName, type NftForwarderConfig } from './dns.js';

/** The table's own comment: the same for every policy (mode and default are in the output chain's). */
export const NFT_TABLE_COMMENT = 'egress: managed by egress (see docs/backends-linux.md)';

export const NFT_TABLE = 'inet egress';

interface FamilySyntax {
  tag: 'v4' | 'v6';
  daddr: string;
  saddr: string;
  addrType: string;
  icmpType: string;
  icmpProto: string;
}

const SYNTAX: Record<Family, FamilySyntax> = {
  ipv4: { tag: 'v4', daddr: 'ip daddr', saddr: 'ip saddr', addrType: 'ipv4_addr', icmpType: 'icmp type', icmpProto: 'icmp' },
  ipv6: { tag: 'v6', daddr: 'ip6 daddr', saddr: 'ip6 saddr', addrType: 'ipv6_addr', icmpType: 'icmpv6 type', icmpProto: 'ipv6-icmp' },
};

/**
 * The naming scheme of everything in `table inet egress`; apply, status,
 * plan and refresh rely on it. `except` is the 1-based index of an `except`
 * alternative of a deny rule.
 */
export const nftNames = {
  chain: 'output',
  /** The base chain of forwarded traffic (`forward:`). */
  forwardChain: 'forward',
  /** Counter of a policy rule in one family: what `egress status` reads (`fwd_…` for a forward twin). */
  counter: (r: IrRule): string => nftIdent(`${scope(r)}${r.origin.action}_${r.origin.name}_${SYNTAX[r.family].tag}`),
  /** The chain a deny rule's matches jump to. */
  denyChain: (r: IrRule): string => nftIdent(`${scope(r)}deny_${r.origin.name}_${SYNTAX[r.family].tag}`),
  /** A forward source's deny or allow rules in one family, jumped to once the source has matched. */
  sourceChain: (source: string, action: 'deny' | 'allow', f: Family): string => nftIdent(`fwd_src_${source}_${action}_${SYNTAX[f].tag}`),
  /** Interval set of a forward source's networks in one family. */
  sourceSet: (source: string, f: Family): string => nftIdent(`src_${source}_${SYNTAX[f].tag}`),
  /** Forwarded flows no rule of their sources admits, per family. */
  forwardDefaultCounter: (f: Family): string => `fwd_default_${SYNTAX[f].tag}`,
  /** New forwarded flows from no source (`forward.unlisted`), per family. */
  unlistedCounter: (f: Family): string => `fwd_unlisted_${SYNTAX[f].tag}`,
  forwardBuiltinCounter: (b: 'established' | 'into_source'): string => `builtin_fwd_${b}`,
  /** Interval set of the literal CIDR and range destinations (more than one address each). */
  dstSet: (r: IrRule, except?: number): string => nftIdent(`${setBase(r, except)}_dst`),
  /** Hash set of the literal single-address destinations. */
  addrSet: (r: IrRule, except?: number): string => nftIdent(`${setBase(r, except)}_addr`),
  /** Plain set of the addresses of the rule's hostnames; refreshed in place. */
  hostSet: (r: IrRule, except?: number): string => nftIdent(`${setBase(r, except)}_hosts`),
  /** Timeout set of the addresses the DNS forwarder answered for the rule's names (`dns.proxy`); never flushed by egress. */
  dnsSet: (r: IrRule): string => nftIdent(`${setBase(r)}_dns`),
  defaultCounter: (f: Family): string => `default_${SYNTAX[f].tag}`,
  /** Every log line the rate limit let through (all rules, both families). */
  loggedCounter: 'logged',
  builtinCounter: (b: 'loopback' | 'established' | 'icmpv6_nd'): string => `builtin_${b}`,
};

/** Forward twins' counters and chains are their own; their sets are the host twin's (same rule, same family, same text). */
function scope(r: IrRule): string {
  return r.from ? 'fwd_' : '';
}

function setBase(r: IrRule, except?: number): string {
  return `${r.origin.action}_${r.origin.name}_${SYNTAX[r.family].tag}${except === undefined ? '' : `_x${except}`}`;
}

export const nftCapabilities: Capabilities = ALL_CAPABILITIES;

export const nftBackend: Backend = {
  name: 'nft',
  capabilities: nftCapabilities,
  emit: emitNft,
};

/** A named set this ruleset declares, with its current elements. */
export interface NftSet {
  name: string;
  family: Family;
  /** Interval set of literal CIDRs and ranges, hash set of literal single addresses, hash set of hostname addresses, or timeout set the DNS forwarder fills. */
  kind: 'dst' | 'addr' | 'hosts' | 'dns';
  /** The hostnames feeding a `hosts` set. */
  hosts: string[];
  /** The names feeding a `dns` set. */
  patterns?: string[];
  elements: string[];
  origin: RuleRef;
}

/** One IrMatch's destinations as set references: undefined = any destination. */
interface MatchSets {
  refs: string[];
}

export function emitNft(ir: Ir): Result<Artifact> {
  const w = new ArtifactWriter();
  const sets: NftSet[] = [];
  const matchSets = new Map<IrMatch, MatchSets | undefined>();
  for (const r of [...ir.rules, ...(ir.forward?.rules ?? [])]) {
    matchSets.set(r, collectSets(r, r, undefined, sets));
    r.except.forEach((e, i) => matchSets.set(e, collectSets(r, e, i + 1, sets)));
  }
  // A rule from [host, docker] has a host and a forward twin with the same sets: declare each once.
  const declared = new Set<string>();
  const unique = sets.filter((x) => (declared.has(x.name) ? false : (declared.add(x.name), true)));

  w.line('# egress: nft ruleset; load with `nft -f FILE` (replaces table inet egress, touches nothing else)');
  w.line(`table ${NFT_TABLE} {}`);
  w.line(`delete table ${NFT_TABLE}`);
  w.line(`table ${NFT_TABLE} {`);
  w.line(`\t${nftComment(NFT_TABLE_COMMENT)}`);
  emitCounters(w, ir);
  for (const s of unique) emitSet(w, s);
  if (ir.forward) emitSourceSets(w, ir.forward);
  if (ir.dns) emitDnsRedirect(w, ir.dns);
  if (ir.dns && ir.forward) emitForwardDns(w, ir.dns, ir.forward);

  w.line('');
  w.line(`\tchain ${nftNames.chain} {`);
  // Mode and default live in the chain, not the table: a reload that keeps the table (and the
  // forwarder's learned sets, kernel/nft.ts keepingLearned) re-creates the chain, while the
  // kernel never updates the comment of an existing table.
  w.line(`\t\t${nftComment(`egress: mode ${ir.mode}, default ${ir.default}`)}`);
  w.line('\t\ttype filter hook output priority filter; policy accept;');
  if (ir.dns) emitDnsGuard(w, ir, ir.dns, (v) => logStatement(ir, v, undefined), verdictStatements(ir, 'reject'));
  emitBuiltins(w, ir);
  for (const r of ir.rules) {
    const verdict = r.origin.action === 'deny' ? `jump ${nftNames.denyChain(r)}` : `counter name ${nftQuote(nftNames.counter(r))} accept`;
    // `expires`: the kernel stops matching the rule at the end of its day (meta time, seconds since the epoch).
    const until = r.untilSec !== undefined ? `meta time < ${r.untilSec} ` : '';
    for (const m of matchRules(r.family, r, matchSets.get(r), true)) w.line(`\t\t${until}${m} ${verdict} ${ruleComment(r)}`, r.origin);
  }
  emitDefault(w, ir);
  w.line('\t}');

  for (const r of ir.rules) if (r.origin.action === 'deny') emitDenyChain(w, ir, r, matchSets);
  if (ir.forward) emitForward(w, ir, ir.forward, matchSets);
  w.line('}');
  return { value: w.artifact(), diagnostics: [] };
}

function emitCounters(w: ArtifactWriter, ir: Ir): void {
  const counters: [string, RuleRef | undefined][] = [];
  for (const b of ['loopback', 'established', 'icmpv6_nd'] as const) if (ir.builtins[b]) counters.push([nftNames.builtinCounter(b), undefined]);
  for (const r of ir.rules) counters.push([nftNames.counter(r), r.origin]);
  for (const f of ['ipv4', 'ipv6'] as const) counters.push([nftNames.defaultCounter(f), undefined]);
  if (ir.log.rate) counters.push([nftNames.loggedCounter, undefined]);
  if (ir.dns) for (const n of dnsCounters()) counters.push([n, undefined]);
  if (ir.dns && ir.forward) counters.push([dnsNames.forwardRedirectCounter, undefined]);
  if (ir.forward) {
    if (ir.builtins.established) counters.push([nftNames.forwardBuiltinCounter('established'), undefined]);
    counters.push([nftNames.forwardBuiltinCounter('into_source'), undefined]);
    for (const r of ir.forward.rules) counters.push([nftNames.counter(r), r.origin]);
    for (const f of ['ipv4', 'ipv6'] as const) counters.push([nftNames.forwardDefaultCounter(f), undefined], [nftNames.unlistedCounter(f), undefined]);
  }
  for (const [name, origin] of counters) w.line(`\tcounter ${nftIdent(name)} {}`, origin);
}

function emitSet(w: ArtifactWriter, s: NftSet): void {
  w.line('');
  w.line(`\tset ${s.name} {`, s.origin);
  w.line(`\t\ttype ${SYNTAX[s.family].addrType}`, s.origin);
  if (s.kind === 'dst') w.line('\t\tflags interval', s.origin);
  if (s.kind === 'dns') {
    w.line('\t\tflags timeout', s.origin);
    w.line(`\t\tsize ${NFT_DNS_SET_SIZE}`, s.origin);
  }
  if (s.elements.length > 0 && s.elements.length <= 4) w.line(`\t\telements = { ${s.elements.join(', ')} }`, s.origin);
  else if (s.elements.length > 4) {
    w.line('\t\telements = {', s.origin);
    for (const e of s.elements) w.line(`\t\t\t${e},`, s.origin);
    w.line('\t\t}', s.origin);
  }
  w.line('\t}', s.origin);
}

function emitBuiltins(w: ArtifactWriter, ir: Ir): void {
  const b = ir.builtins;
  const count = (n: 'loopback' | 'established' | 'icmpv6_nd') => `counter name ${nftQuote(nftNames.builtinCounter(n))} accept ${nftComment(`egress builtin: ${n}`)}`;
  if (b.loopback) w.line(`\t\toif "lo" ${count('loopback')}`);
  if (b.established) {
    w.line(`\t\tct state established,related ${count('established')}`);
    // A TCP connection older than connection tracking here (the first apply on a host, or after a flush) is picked
    // up mid-stream: its next packet is "new" but carries ACK and not SYN, which only an existing connection sends.
    // Without this the first apply reset an open SSH session as soon as the host spoke.
    w.line(`\t\tct state new tcp flags & (syn | ack) == ack ${count('established')}`);
  }
  if (b.icmpv6_nd) w.line(`\t\tmeta nfproto ipv6 icmpv6 type { ${ICMPV6_ND_TYPES.join(', ')} } ${count('icmpv6_nd')}`);
}

function emitDefault(w: ArtifactWriter, ir: Ir): void {
  const c = nftComment(`egress default: ${ir.default}`);
  for (const f of ['ipv4', 'ipv6'] as const) {
    const verdict = ir.default === 'accept' ? ' accept' : '';
    w.line(`\t\tmeta nfproto ${f} counter name ${nftQuote(nftNames.defaultCounter(f))}${verdict} ${c}`);
  }
  if (ir.default === 'accept') return;
  w.line(`\t\t${logStatement(ir, ir.mode === 'audit' ? 'p' : 'P', undefined)} ${c}`);
  for (const v of verdictStatements(ir, ir.default)) w.line(`\t\t${v} ${c}`);
}

function emitDenyChain(w: ArtifactWriter, ir: Ir, r: IrRule, matchSets: Map<IrMatch, MatchSets | undefined>, denyVerdict: 'reject' | 'drop' = ir.denyVerdict): void {
  const c = ruleComment(r);
  w.line('', r.origin);
  w.line(`\tchain ${nftNames.denyChain(r)} {`, r.origin);
  r.except.forEach((e, i) => {
    const ec = nftComment(`${r.origin.name}: except ${i + 1}`);
    for (const m of matchRules(r.family, e, matchSets.get(e), false)) w.line(`\t\t${joinParts(m, 'return', ec)}`, r.origin);
  });
  const log = logStatement(ir, ir.mode === 'audit' ? 'd' : 'D', r.origin.name, r.from === undefined);
  w.line(`\t\tcounter name ${nftQuote(nftNames.counter(r))} ${log} ${c}`, r.origin);
  for (const v of verdictStatements(ir, denyVerdict)) w.line(`\t\t${v} ${c}`, r.origin);
  w.line('\t}', r.origin);
}

/** The log statement, rate-limited when the policy says so; placed after the counter so counts stay exact. */
function logStatement(ir: Ir, v: TagVerdict, rule: string | undefined, owned = true): string {
  // The counter after the limit counts the lines logged: a denial's counter less this is what the limit dropped.
  const limit = ir.log.rate ? `limit rate ${ir.log.rate.count}/${ir.log.rate.unit} burst ${logBurst(ir.log.rate)} packets counter name ${nftQuote(nftNames.loggedCounter)} ` : '';
  // A forwarded packet has no socket, so no owner to log.
  const flags = ir.log.uid && owned ? ' flags skuid' : '';
  return `${limit}log prefix ${nftQuote(logPrefix(ir.log.prefix, v, rule, NFT_PREFIX_MAX))}${flags}`;
}

/** Deny = reject (TCP reset, else ICMP/ICMPv6 administratively prohibited) or drop; audit mode accepts. */
function verdictStatements(ir: Ir, v: 'reject' | 'drop'): string[] {
  if (ir.mode === 'audit') return ['accept'];
  if (v === 'drop') return ['drop'];
  return ['meta l4proto tcp reject with tcp reset', 'reject with icmpx admin-prohibited'];
}

function emitSourceSets(w: ArtifactWriter, fwd: IrForward): void {
  for (const src of fwd.sources) {
    if (!src.networks) continue;
    for (const f of src.families.filter((x) => src.networks![x].length)) {
      const name = nftNames.sourceSet(src.name, f);
      const elements = src.networks[f].map((x) => formatInterval(f, x));
      w.line('');
      w.line(`\tset ${name} {`);
      w.line(`\t\ttype ${SYNTAX[f].addrType}`);
      w.line('\t\tflags interval');
      w.line(`\t\telements = { ${elements.join(', ')} }`);
      w.line('\t}');
    }
  }
}

/** How a forward source is matched in one family: `iifname { … } ip saddr @src_…`; undefined = it has no traffic in this family. */
function sourceMatch(src: IrFwdSource, f: Family): string | undefined {
  if (!src.families.includes(f)) return undefined;
  const parts = [src.interfaces.length ? `iifname ${setOf(src.interfaces.map(nftQuote))}` : '', src.networks?.[f].length ? `${SYNTAX[f].saddr} @${nftNames.sourceSet(src.name, f)}` : `meta nfproto ${f}`];
  return parts.filter((x) => x !== '').join(' ');
}

/**
 * The forward hook (SPEC §6), at priority filter - 5 so every new flow is
 * counted before another table's drop hides it. Only drops, rejects and
 * counts decide anything: an accept here ends only this chain, so Docker's,
 * podman's or firewalld's verdicts still apply after it, whatever their
 * priority. Order: established; into a source (not egress); per source,
 * deny rules, allow rules, the default; then flows from no source (unlisted).
 */
function emitForward(w: ArtifactWriter, ir: Ir, fwd: IrForward, matchSets: Map<IrMatch, MatchSets | undefined>): void {
  w.line('');
  w.line(`\tchain ${nftNames.forwardChain} {`);
  w.line(`\t\t${nftComment(`egress: forward, default ${fwd.default}, unlisted ${fwd.unlisted}`)}`);
  w.line('\t\ttype filter hook forward priority filter - 5; policy accept;');
  const count = (n: 'established' | 'into_source') => `counter name ${nftQuote(nftNames.forwardBuiltinCounter(n))} accept ${nftComment(`egress builtin: forward ${n.replace('_', ' ')}`)}`;
  if (ir.builtins.established) {
    w.line(`\t\tct state established,related ${count('established')}`);
    w.line(`\t\tct state new tcp flags & (syn | ack) == ack ${count('established')}`);
  }
  const ifaces = [...new Set(fwd.sources.flatMap((s) => s.interfaces))].sort();
  if (ifaces.length) w.line(`\t\toifname ${setOf(ifaces.map(nftQuote))} ${count('into_source')}`);
  for (const src of fwd.sources)
    if (src.networks) for (const f of src.families.filter((x) => src.networks![x].length)) w.line(`\t\t${SYNTAX[f].daddr} @${nftNames.sourceSet(src.name, f)} ${count('into_source')}`);
  if (ir.dns) {
    // Their DNS (53) went to the forwarder in prerouting; what reaches here on 53 or 853 bypasses it (DNS over TLS).
    const bc = nftComment('egress dns: DNS that bypasses the forwarder');
    for (const src of fwd.sources.filter((s) => s.interfaces.length))
      for (const f of src.families) {
        const m = `${sourceMatch(src, f)!} ${DNS_L4} th dport { ${DNS_PORTS.join(', ')} }`;
        w.line(`\t\t${m} counter name ${nftQuote(dnsNames.bypassCounter)} ${logStatement(ir, ir.mode === 'audit' ? 'b' : 'B', undefined, false)} ${bc}`);
        for (const v of verdictStatements(ir, 'reject')) w.line(`\t\t${m} ${v} ${bc}`);
      }
  }
  // Each source is tested once per pass, not once per rule (bench/forward.mjs: repeating it cost ~0.28 µs a rule):
  // first every source's deny chain, then every source's allow chain, so a deny of any source the flow belongs to
  // wins over an allow of another.
  const subChains: { name: string; rules: IrRule[] }[] = [];
  for (const action of ['deny', 'allow'] as const)
    for (const src of fwd.sources)
      for (const f of src.families) {
        const rules = fwd.rules.filter((r) => r.origin.action === action && r.family === f && (r.from ?? []).includes(src.name));
        if (!rules.length) continue;
        const name = nftNames.sourceChain(src.name, action, f);
        w.line(`\t\t${sourceMatch(src, f)!} jump ${name} ${nftComment(`egress forward: ${action} rules of ${src.name}`)}`);
        subChains.push({ name, rules });
      }
  const dc = nftComment(`egress forward default: ${fwd.default}`);
  for (const src of fwd.sources)
    for (const f of src.families) {
      const from = sourceMatch(src, f)!;
      const verdict = fwd.default === 'accept' ? ' accept' : ` jump ${FWD_DEFAULT_CHAIN[f]}`;
      w.line(`\t\t${from} counter name ${nftQuote(nftNames.forwardDefaultCounter(f))}${verdict} ${dc}`);
    }
  const uc = nftComment(`egress forward unlisted: ${fwd.unlisted}`);
  for (const f of ['ipv4', 'ipv6'] as const) {
    const counter = `meta nfproto ${f} ct state new counter name ${nftQuote(nftNames.unlistedCounter(f))}`;
    if (fwd.unlisted === 'accept') w.line(`\t\t${counter} ${uc}`);
    else w.line(`\t\t${counter} ${logStatement(ir, fwd.unlisted === 'deny' && ir.mode !== 'audit' ? 'U' : 'u', undefined, false)} ${uc}`);
  }
  if (fwd.unlisted === 'deny') for (const v of verdictStatements(ir, fwd.denyVerdict)) w.line(`\t\tct state new ${v} ${uc}`);
  w.line('\t}');
  if (fwd.default !== 'accept')
    for (const f of ['ipv4', 'ipv6'] as const) {
      // One chain per family for the default: log once, then the verdict (a counter in each source's line keeps counts exact).
      w.line('');
      w.line(`\tchain ${FWD_DEFAULT_CHAIN[f]} {`);
      w.line(`\t\t${logStatement(ir, ir.mode === 'audit' ? 'p' : 'P', undefined, false)} ${dc}`);
      for (const v of verdictStatements(ir, fwd.default)) w.line(`\t\t${v} ${dc}`);
      w.line('\t}');
    }
  for (const c of subChains) {
    w.line('');
    w.line(`\tchain ${c.name} {`);
    for (const r of c.rules) {
      const verdict = r.origin.action === 'deny' ? `jump ${nftNames.denyChain(r)}` : `counter name ${nftQuote(nftNames.counter(r))} accept`;
      const until = r.untilSec !== undefined ? `meta time < ${r.untilSec} ` : '';
      for (const m of matchRules(r.family, r, matchSets.get(r), true)) w.line(`\t\t${until}${m} ${verdict} ${ruleComment(r)}`, r.origin);
    }
    w.line('\t}');
  }
  for (const r of fwd.rules) if (r.origin.action === 'deny') emitDenyChain(w, ir, r, matchSets, fwd.denyVerdict);
}

/**
 * Under `dns.proxy`, DNS from forward sources with interfaces goes to the
 * forwarder too (SPEC §5): prerouting redirects it to the forwarder's port
 * on the address of the interface it came in on (the forwarder listens on
 * those, `ForwarderConfig.interfaces`), and an input guard lets only
 * redirected queries reach that port from outside this host. DNS to a
 * server on this host (libvirt's dnsmasq) is left alone: that server asks
 * upstream through the output hook, whose redirect covers it.
 */
function emitForwardDns(w: ArtifactWriter, d: IrDns, fwd: IrForward): void {
  const c = (t: string) => nftComment(`egress dns: ${t}`);
  const port = forwardDnsPort(d);
  w.line('');
  w.line(`\tchain ${dnsNames.forwardRedirectChain} {`);
  w.line('\t\ttype nat hook prerouting priority -100; policy accept;');
  for (const src of fwd.sources.filter((s) => s.interfaces.length))
    for (const f of src.families)
      w.line(`\t\t${sourceMatch(src, f)!} ${DNS_L4} th dport 53 fib daddr type != local counter name ${nftQuote(dnsNames.forwardRedirectCounter)} redirect to :${port} ${c(`${src.name}'s DNS to the forwarder`)}`);
  w.line('\t}');
  w.line('');
  w.line(`\tchain ${dnsNames.forwardInputChain} {`);
  w.line('\t\ttype filter hook input priority filter; policy accept;');
  w.line(`\t\tiif != "lo" ${DNS_L4} th dport ${port} ct status dnat accept ${c('a forward source\'s query, redirected')}`);
  w.line(`\t\tiif != "lo" ${DNS_L4} th dport ${port} drop ${c('nothing else reaches the forwarder from outside')}`);
  w.line('\t}');
}

const FWD_DEFAULT_CHAIN: Record<Family, string> = { ipv4: 'fwd_default_v4', ipv6: 'fwd_default_v6' };

function joinParts(...parts: string[]): string {
  return parts.filter((p) => p !== '').join(' ');
}

function ruleComment(r: IrRule): string {
  return nftComment(r.reason ? `${r.origin.name}: ${r.reason}` : r.origin.name);
}

/**
 * The rule bodies (without verdict) that together match exactly `m`: one per
 * destination set × L4 alternative, everything else in each. No body = the
 * match can match nothing (e.g. only an empty hostname set), which emits no rule.
 */
export function matchRules(f: Family, m: IrMatch, sets: MatchSets | undefined, guardFamily: boolean): string[] {
  const syn = SYNTAX[f];
  const dst = sets ? sets.refs.map((s) => `${syn.daddr} @${s}`) : [guardFamily ? `meta nfproto ${f}` : ''];
  const l4 = l4Alternatives(f, m.l4);
  const rest = [m.users ? ownerMatch('skuid', m.users) : '', m.groups ? ownerMatch('skgid', m.groups) : '', m.via ? viaMatch(m.via) : ''];
  const out: string[] = [];
  for (const d of dst) for (const l of l4) out.push([d, l, ...rest].filter((x) => x !== '').join(' '));
  return out;
}

function l4Alternatives(f: Family, l4: IrL4 | undefined): string[] {
  if (!l4) return [''];
  const out: string[] = [];
  const whole = l4.ports.filter((p) => p.ranges.length === 1 && p.ranges[0]![0] === 0 && p.ranges[0]![1] === 65535).map((p) => p.proto as string);
  if (l4.icmp === 'any') whole.push(SYNTAX[f].icmpProto);
  if (whole.length) out.push(`meta l4proto ${setOf(whole)}`);
  const ported = l4.ports.filter((p) => !whole.includes(p.proto));
  const range = ([a, b]: [number, number]) => (a === b ? `${a}` : `${a}-${b}`);
  if (ported.length === 1) out.push(`${ported[0]!.proto} dport ${setOf(ported[0]!.ranges.map(range))}`);
  else if (ported.length > 1) out.push(`meta l4proto . th dport { ${ported.flatMap((p) => p.ranges.map((x) => `${p.proto} . ${range(x)}`)).join(', ')} }`);
  if (l4.icmp !== 'any' && l4.icmp.length) out.push(`${SYNTAX[f].icmpType} ${setOf(l4.icmp.map(String))}`);
  return out;
}

function setOf(xs: string[]): string {
  return xs.length === 1 ? xs[0]! : `{ ${xs.join(', ')} }`;
}

/** Numeric ids when known (exact, no lookup at load); names otherwise, resolved by nft when the ruleset loads. */
function ownerMatch(key: 'skuid' | 'skgid', os: IrOwner[]): string {
  const vs = os.map((o) => {
    if (o.id !== undefined) return String(o.id);
    if (o.name !== undefined) return nftQuote(o.name);
    throw new Error('owner without id or name');
  });
  return `meta ${key} ${setOf(vs)}`;
}

function viaMatch(via: string[]): string {
  return `oifname ${setOf(via.map(nftQuote))}`;
}

/** Declare the named sets of one IrMatch (IrSet, named here) and return its references. */
function collectSets(r: IrRule, m: IrMatch, except: number | undefined, out: NftSet[]): MatchSets | undefined {
  if (!m.sets) return undefined;
  const refs: string[] = [];
  const fam = r.family;
  for (const s of m.sets) {
    if (s.kind === 'dns') {
      const name = nftNames.dnsSet(r);
      out.push({ name, family: fam, kind: 'dns', hosts: [], patterns: s.patterns ?? [], elements: [], origin: s.origin });
      refs.push(name);
      continue;
    }
    if (s.kind === 'hostnames') {
      const name = nftNames.hostSet(r, except);
      out.push({ name, family: fam, kind: 'hosts', hosts: s.hosts, elements: s.elements.map((x) => formatAddress(fam, x.lo)), origin: s.origin });
      refs.push(name);
      continue;
    }
    // Literal destinations: single addresses in a hash set, CIDRs and ranges in an interval set; a rule with both matches either.
    const singles = s.elements.filter((x) => x.lo === x.hi);
    const spans = s.elements.filter((x) => x.lo !== x.hi);
    if (singles.length || !spans.length) {
      const name = nftNames.addrSet(r, except);
      out.push({ name, family: fam, kind: 'addr', hosts: [], elements: singles.map((x) => formatAddress(fam, x.lo)), origin: s.origin });
      refs.push(name);
    }
    if (spans.length) {
      const name = nftNames.dstSet(r, except);
      out.push({ name, family: fam, kind: 'dst', hosts: [], elements: spans.map((x) => formatInterval(fam, x)), origin: s.origin });
      refs.push(name);
    }
  }
  return { refs };
}

/** Every hostname set of the ruleset with its elements under `ir.hosts`: what `egress refresh` rewrites. */
export function nftHostSets(ir: Ir): NftSet[] {
  const sets: NftSet[] = [];
  for (const r of ir.rules) {
    collectSets(r, r, undefined, sets);
    r.except.forEach((e, i) => collectSets(r, e, i + 1, sets));
  }
  return sets.filter((s) => s.kind === 'hosts');
}

/**
 * What the DNS forwarder handles (`ForwarderConfig.names`, src/dns/types.ts): each allow rule's
 * names with the `_dns` sets of its families, each deny rule's names to
 * answer REFUSED. Empty without `dns.proxy`.
 */
export function nftDnsNames(ir: Ir): NftDnsName[] {
  return nftForwarderNames(ir, nftNames.dnsSet);
}

/**
 * Everything the DNS forwarder needs for this ruleset, given the upstream
 * servers the caller chose (`dnsUpstream` in resolve/dns.ts: the policy's,
 * else the system's) and its hold budget (how long it may wait for the
 * kernel's confirmation before it answers SERVFAIL). undefined without
 * `dns.proxy`.
 */
export function nftForwarderConfig(ir: Ir, upstream: { address: string; port: number }[], holdMs: number): NftForwarderConfig | undefined {
  return forwarderConfig(ir, nftDnsNames(ir), upstream, holdMs, NFT_TABLE);
}

/** The dynamic sets of the ruleset (`..._dns`): what apply carries over with their live elements, and what refresh never touches. */
export function nftDnsSets(ir: Ir): NftSet[] {
  const sets: NftSet[] = [];
  for (const r of ir.rules) collectSets(r, r, undefined, sets);
  return sets.filter((s) => s.kind === 'dns');
}

/**
 * The emitted text without the elements of hostname sets: what must be equal
 * for a refresh to be done in place.
 */
export function nftStructure(text: string): string {
  const out: string[] = [];
  let inHostSet = false;
  for (const line of text.split('\n')) {
    if (/^\tset [A-Za-z0-9_-]+_hosts \{$/.test(line)) inHostSet = true;
    else if (inHostSet && line === '\t}') inHostSet = false;
    else if (inHostSet && !line.startsWith('\t\ttype ')) continue;
    out.push(line);
  }
  return out.join('\n');
}

/**
 * `egress refresh` for nft: a script that replaces the elements of every
 * hostname set in place, in one transaction, without touching rules or
 * counters — or undefined when re-resolving changed more than set elements
 * (a rule gained or lost a family, an `except` alternative appeared or
 * vanished), which needs a full apply. `applied` is the text last loaded.
 * Comparing whole structures, not just set names, is what keeps the sets of
 * `except` alternatives (named by position) from being filled with another
 * alternative's addresses.
 */
export function emitNftRefresh(ir: Ir, applied: string): string | undefined {
  const want = emitNft(ir).value!.text;
  if (nftStructure(want) !== nftStructure(applied)) return undefined;
  const lines: string[] = [];
  for (const s of nftHostSets(ir)) {
    lines.push(`flush set ${NFT_TABLE} ${s.name}`);
    if (s.elements.length) lines.push(`add element ${NFT_TABLE} ${s.name} { ${s.elements.join(', ')} }`);
  }
  return lines.join('\n') + '\n';
}
