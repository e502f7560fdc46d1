/**
 * `dns.proxy` in `table inet egress`, compiled into the same script (and so
 * the same transaction) as the rules:
 *
 * - **Redirect** (chain `dns_redirect`, `type nat hook output`): a query a
 *   local program sends to port 53 (udp or tcp) of any address that is not
 *   this host's own is DNATed to the forwarder's listen address of its family
 *   (`Ir.dns.listen`: 127.0.0.153:153 and [::1]:153). A query to a local
 *   server (a stub such as 127.0.0.53, or a resolver bound to one of this
 *   host's addresses) is left alone, so a local cache keeps working and its
 *   own upstream queries are what gets redirected. The forwarder's own
 *   queries (`meta skuid 0 meta skgid <egress-dns>`) are never redirected.
 *   Measured on kernel 6.18 in a namespace: DNAT to a 127/8 address and to
 *   ::1 both work for locally generated packets without `route_localnet`,
 *   over udp and tcp, and the program sees the answer come from the address
 *   it asked.
 * - **Guard** (first in chain `output`, before the builtins): accepts the
 *   redirected queries and the forwarder's answers to them, accepts the
 *   forwarder's own DNS (53) and DNS over TLS (853), and rejects, counts
 *   (`dns_bypass`) and logs (tag `B`) every other packet to port 53 or 853
 *   of an address not this host's — e.g. a flow whose conntrack entry
 *   predates the redirect, or DoT. Before the builtins, because the
 *   `established` builtin would otherwise pass such an old flow. The guard
 *   accepts the listener explicitly because after a DNAT in the output hook
 *   the filter chain still sees the original output interface (measured:
 *   `oifname "lo"` does not match a redirected query), so the loopback
 *   builtin would not.
 * - **Dynamic sets** `<allow>_<rule>_<v4|v6>_dns` (`flags timeout`, `size
 *   65536`), which the forwarder fills; the rule matches them like its other
 *   destination sets. Nothing here flushes them: `emitNftRefresh` rewrites
 *   only `_hosts` sets.
 */
import { formatEndpoint } from '../../policy/dns-name.js';
import type { Ir, IrDns, IrOwner } from '../../ir/types.js';
import type { ArtifactWriter } from '../types.js';
import type { TagVerdict } from '../log-tag.js';
import { nftComment, nftQuote } from './quote.js';

/**
 * One name the DNS forwarder handles, and the forwarder's configuration: the
 * shapes of `DnsName` and `ForwarderConfig` in src/dns/types.ts. The
 * forwarder is a later stage than the backends (docs/architecture.md), so
 * they are not imported from there; TypeScript compares shapes, and a test
 * holds the two pairs identical.
 */
export interface NftDnsName {
  pattern: string;
  action: 'allow' | 'deny';
  rule: string;
  sets: { ipv4?: string; ipv6?: string };
}

export interface NftForwarderConfig {
  listen: { address: string; port: number }[];
  /** Forward sources' interfaces, whose addresses the forwarder listens on too (their DNS is redirected there). */
  interfaces?: { globs: string[]; port: number };
  upstream: { address: string; port: number }[];
  graceSec: number;
  minLifetimeSec: number;
  holdMs: number;
  names: NftDnsName[];
  table: string;
}

/** Elements a dynamic set may hold (per rule and family); the forwarder answers SERVFAIL when it is full. */
export const NFT_DNS_SET_SIZE = 65536;
/** DNS (53) and DNS over TLS / over QUIC (853): only the forwarder may send them. */
export const DNS_PORTS = [53, 853] as const;

export const nftDnsNames = {
  redirectChain: 'dns_redirect',
  /** Packets to port 53/853 that did not go through the forwarder: rejected (audit: accepted) and logged. */
  bypassCounter: 'dns_bypass',
  /** Connections the redirect sent to the forwarder. */
  redirectCounter: 'dns_redirect',
  /** Packets of the forwarder's own queries upstream. */
  forwarderCounter: 'dns_forwarder',
  /** Forward sources' DNS (SPEC §6): the nat chain that redirects it to the forwarder, its counter, and the input guard. */
  forwardRedirectChain: 'dns_forward',
  forwardRedirectCounter: 'dns_redirect_forward',
  forwardInputChain: 'dns_input',
};

function owner(o: IrOwner): string {
  if (o.id !== undefined) return String(o.id);
  if (o.name !== undefined) return nftQuote(o.name);
  throw new Error('forwarder group without id or name');
}

/** `meta skuid 0 meta skgid G`: the forwarder's sockets (root, primary group egress-dns). */
export function forwarderMatch(d: IrDns): string {
  return `meta skuid 0 meta skgid ${owner(d.forwarder)}`;
}

export const L4 = 'meta l4proto { tcp, udp }';

function listenFor(d: IrDns, family: 'ipv4' | 'ipv6'): { address: string; port: number } | undefined {
  return d.listen.find((l) => l.address.includes(':') === (family === 'ipv6'));
}

/** Per family the forwarder listens in: the match of a query to it and of its answer. */
function listeners(d: IrDns): { kw: 'ip' | 'ip6'; address: string; query: string; answer: string }[] {
  return (['ipv4', 'ipv6'] as const).flatMap((fam) => {
    const l = listenFor(d, fam);
    const kw = fam === 'ipv4' ? 'ip' : 'ip6';
    return l ? [{ kw, address: l.address, query: `${kw} daddr ${l.address} ${L4} th dport ${l.port}`, answer: `${kw} saddr ${l.address} ${L4} th sport ${l.port}` }] : [];
  });
}

/**
 * The conntrack zone of the programs' DNS flows (see `emitDnsRedirect`).
 * Any 16-bit number other than 0 would do; this one is the listen port.
 */
export const NFT_DNS_CT_ZONE = 153;

/**
 * The nat chain that hands every other program's DNS to the forwarder, and
 * before it (`type filter hook output priority raw`, ahead of conntrack) the
 * chain that puts those queries, and the forwarder's answers to them, in a
 * conntrack zone of their own. Without the zone a program's query could
 * bypass the redirect: the forwarder asks upstream from a new random port
 * each time and closes it, the kernel may give that port to a program next,
 * and the program's query to the same server then has the tuple of the
 * forwarder's conntrack entry (alive 30 s or more), so nat never sees it as
 * new and the guard rejects it. The DNS kernel test saw 9–15 of ~2,100
 * queries fail so. The forwarder's own queries and their replies stay in
 * zone 0; a program's query and the forwarder's answer over loopback are
 * both output, so no prerouting rule (and no forwarded traffic) is involved.
 */
export function emitDnsRedirect(w: ArtifactWriter, d: IrDns): void {
  const c = (t: string) => nftComment(`egress dns: ${t}`);
  w.line('');
  w.line('\tchain dns_zone {');
  w.line('\t\ttype filter hook output priority raw; policy accept;');
  for (const l of listeners(d)) {
    w.line(`\t\t${l.query} ct zone set ${NFT_DNS_CT_ZONE} ${c('a query to the forwarder')}`);
    w.line(`\t\t${l.answer} ct zone set ${NFT_DNS_CT_ZONE} ${c("the forwarder's answer")}`);
    const icmp = l.kw === 'ip' ? 'icmp type destination-unreachable' : 'icmpv6 type destination-unreachable';
    w.line(`\t\t${l.kw} saddr ${l.address} ${icmp} ct zone set ${NFT_DNS_CT_ZONE} ${c('no forwarder listening: the error reaches the program')}`);
  }
  w.line(`\t\t${forwarderMatch(d)} return ${c("the forwarder's own queries")}`);
  w.line(`\t\t${L4} th dport 53 fib daddr type != local ct zone set ${NFT_DNS_CT_ZONE} ${c('a query to redirect, in a zone apart from the forwarder\'s upstream flows')}`);
  w.line('\t}');
  w.line('');
  w.line(`\tchain ${nftDnsNames.redirectChain} {`);
  w.line('\t\ttype nat hook output priority -100; policy accept;');
  w.line(`\t\t${forwarderMatch(d)} return ${c("the forwarder's own queries")}`);
  w.line(`\t\tfib daddr type local return ${c('a server on this host')}`);
  for (const [fam, nf, kw] of [
    ['ipv4', 'ipv4', 'ip'],
    ['ipv6', 'ipv6', 'ip6'],
  ] as const) {
    const l = listenFor(d, fam);
    if (!l) continue;
    w.line(`\t\tmeta nfproto ${nf} ${L4} th dport 53 counter name ${nftQuote(nftDnsNames.redirectCounter)} dnat ${kw} to ${formatEndpoint(l)} ${c('to the forwarder')}`);
  }
  w.line('\t}');
}

/** The guard at the top of the output chain; `log` is the policy's log statement for tag B (b in audit mode). */
export function emitDnsGuard(w: ArtifactWriter, ir: Ir, d: IrDns, log: (v: TagVerdict) => string, verdicts: string[]): void {
  const c = (t: string) => nftComment(`egress dns: ${t}`);
  for (const l of listeners(d)) {
    w.line(`\t\t${l.query} accept ${c('a query to the forwarder')}`);
    w.line(`\t\t${l.answer} accept ${c("the forwarder's answer")}`);
  }
  const dns = `${L4} th dport { ${DNS_PORTS.join(', ')} }`;
  w.line(`\t\t${forwarderMatch(d)} ${dns} counter name ${nftQuote(nftDnsNames.forwarderCounter)} accept ${c("the forwarder's own queries")}`);
  const bypass = `${dns} fib daddr type != local`;
  const bc = c('DNS that bypasses the forwarder');
  w.line(`\t\t${bypass} counter name ${nftQuote(nftDnsNames.bypassCounter)} ${log(ir.mode === 'audit' ? 'b' : 'B')} ${bc}`);
  for (const v of verdicts) w.line(`\t\t${bypass} ${v} ${bc}`);
}

/** Where forward sources' DNS is redirected to (on the address of the interface it came in on): the forwarder's port. */
export function forwardDnsPort(d: IrDns): number {
  return d.listen[0]!.port;
}

export function dnsCounters(): string[] {
  return [nftDnsNames.redirectCounter, nftDnsNames.forwarderCounter, nftDnsNames.bypassCounter];
}

/**
 * The names the forwarder handles, from the IR: an allow rule's names with
 * the dynamic sets (per family) their answers go into, and a deny rule's
 * names, answered REFUSED (no sets). Allow rules by name, then deny rules;
 * names sorted within a rule.
 */
export function nftForwarderNames(ir: Ir, setName: (r: Ir['rules'][number]) => string): NftDnsName[] {
  const out: NftDnsName[] = [];
  const byRule = new Map<string, NftDnsName[]>();
  // A forward twin fills the same sets as its host twin: the rule's, by name.
  for (const r of [...ir.rules, ...(ir.forward?.rules ?? [])]) {
    const s = r.sets?.find((x) => x.kind === 'dns');
    if (!s || r.origin.action !== 'allow') continue;
    let names = byRule.get(r.origin.name);
    if (!names) {
      names = (s.patterns ?? []).map((pattern) => ({ pattern, action: 'allow' as const, rule: r.origin.name, sets: {} }));
      byRule.set(r.origin.name, names);
      out.push(...names);
    }
    for (const n of names) n.sets[r.family] = setName(r);
  }
  for (const x of ir.dns?.refused ?? []) out.push({ pattern: x.pattern, action: 'deny', rule: x.origin.name, sets: {} });
  return out;
}

/** The forwarder's configuration from its parts; `nftForwarderConfig` (emit.ts) fills them for this backend. */
export function forwarderConfig(
  ir: Ir,
  names: NftDnsName[],
  upstream: { address: string; port: number }[],
  holdMs: number,
  table: string,
): NftForwarderConfig | undefined {
  if (!ir.dns) return undefined;
  const globs = [...new Set(ir.forward?.sources.flatMap((s) => s.interfaces) ?? [])].sort();
  return {
    listen: ir.dns.listen.map((l) => ({ ...l })),
    ...(globs.length ? { interfaces: { globs, port: forwardDnsPort(ir.dns) } } : {}),
    upstream: upstream.map((u) => ({ address: u.address, port: u.port })),
    graceSec: ir.dns.graceSec,
    minLifetimeSec: ir.dns.minLifetimeSec,
    holdMs,
    names,
    table,
  };
}
