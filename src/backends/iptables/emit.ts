/**
 * Ir → iptables-restore input for IPv4 and ip6tables-restore input for IPv6,
 * in one text with two sections, each opened by a marker line
 * (`# egress: ipv4`, `# egress: ipv6`) and running from `*filter` to
 * `COMMIT`; `splitIptables` cuts them apart. Each section is loaded with
 * `--noflush`, so only what it names changes.
 *
 * What it owns in the filter table of each family: chain `EGRESS`, jumped to
 * from `OUTPUT` by exactly one rule (`OUTPUT_JUMP`), and one sub-chain per
 * deny rule, `EGRESS-<rule>` (see `iptablesChainNames`). SPEC §3 names only
 * `EGRESS`; the sub-chains are a documented extension, needed because
 * `except` has no iptables form: a deny rule's matches jump to its chain,
 * which RETURNs for each `except` alternative and only then counts, logs and
 * denies. Every owned chain starts with `EGRESS`, is declared and flushed by
 * every load, and nothing else is touched.
 *
 * Order in `EGRESS`: builtins, deny dispatch, allow rules, default. What the
 * policy accepts RETURNs to `OUTPUT` instead of ACCEPTing, so the operator's
 * own OUTPUT rules after the jump still apply, as every other table still
 * does under nft: egress is one layer, a packet leaves only if every layer
 * lets it. (Audit mode's would-be denials are the exception: they are decided
 * in a sub-chain, from which only ACCEPT can end `EGRESS`.) Counts: an allow
 * rule's is the sum of its RETURN rules in `EGRESS` (comment `<rule>: …`); a
 * deny rule's is the first rule of its chain that is not a RETURN, a
 * target-less rule, so the count is exact while the LOG after it is
 * rate-limited.
 *
 * Cannot express: a log rate above what `-m limit` can measure (10000/second,
 * i.e. 600000/minute) is a `bad-log-rate` error; `dns.proxy` (names that
 * follow DNS) is an `unsupported-selector` error naming the setting and each
 * rule with such names (`unsupportedDns`), never a fallback to names resolved
 * at load. Every selector (to, ports,
 * icmp, user, group, via, family, except), audit mode and IPv6 have a form;
 * hostnames are plain rules here (ipset is not assumed), so `egress refresh`
 * reloads the chains (atomically per family) instead of updating sets.
 */
import { error, warning, type Diagnostic, type Result } from '../../diag/diagnostic.js';
import type { Ir, IrForward, IrFwdSource, IrL4, IrMatch, IrOwner, IrRule } from '../../ir/types.js';
import { intervalToCidrs, formatAddress, type Family } from '../../policy/address.js';
import { ICMPV6_ND_TYPES } from '../../policy/protocols.js';
import { logBurst, type LogRate } from '../../policy/types.js';
import { IPTABLES_PREFIX_MAX, logPrefix, shortHash, type TagVerdict } from '../log-tag.js';
import { ALL_CAPABILITIES, ArtifactWriter, IPTABLES_LINEAR_WARN, unsupportedDns, type Artifact, type Backend, type Capabilities } from '../types.js';
import { IPT_CHAIN_MAX, iptChain, iptComment, iptQuote, iptWord } from './quote.js';

export const EGRESS_CHAIN = 'EGRESS';
/** The one rule egress adds outside its chains. apply leaves it out when it is already live (see reapply.ts). */
export const OUTPUT_JUMP = '-I OUTPUT 1 -j EGRESS';
/** The forward scope's chain (SPEC §6), jumped to first from DOCKER-USER where Docker made it, else first from FORWARD. */
export const FORWARD_CHAIN = 'EGRESS-FWD';
/** Forward deny rules' chains are `EGRESS-FWD-<rule>`; the default's is this (upper case: no rule name can meet it). */
export const FORWARD_DEFAULT_CHAIN = 'EGRESS-FWD-DEFAULT';
/** The jump as emitted; apply moves it into DOCKER-USER where that chain exists (reapply.ts). */
export const FORWARD_JUMP = '-I FORWARD 1 -j EGRESS-FWD';
export const SECTION_MARKER: Record<Family, string> = { ipv4: '# egress: ipv4', ipv6: '# egress: ipv6' };
/**
 * Comments of the builtin and default rules. They cannot be read as
 * `<rule>: …` (a space before the colon), so a rule named "default" or
 * "builtin" is never confused with them.
 */
export const BUILTIN_COMMENT = 'egress builtin:';
export const DEFAULT_COMMENT = 'egress default:';

interface FamilySyntax {
  icmpProto: string;
  icmpType: (type: number) => string;
  reject: string;
}

const SYNTAX: Record<Family, FamilySyntax> = {
  ipv4: { icmpProto: '-p icmp', icmpType: (t) => `-m icmp --icmp-type ${t}`, reject: 'icmp-admin-prohibited' },
  ipv6: { icmpProto: '-p ipv6-icmp', icmpType: (t) => `-m icmp6 --icmpv6-type ${t}`, reject: 'icmp6-adm-prohibited' },
};

/** Largest count per unit `-m limit` accepts (XT_LIMIT_SCALE = 10000 per second). */
const LIMIT_MAX: Record<LogRate['unit'], number> = { second: 10_000, minute: 600_000, hour: 36_000_000, day: 864_000_000 };
const LIMIT_UNIT: Record<LogRate['unit'], string> = { second: 'sec', minute: 'min', hour: 'hour', day: 'day' };
/** multiport takes at most 15 ports, a range counting as two. */
const MULTIPORT_SLOTS = 15;

export const iptablesCapabilities: Capabilities = {
  ...ALL_CAPABILITIES,
  // Later, perhaps: ipset sets with per-element timeouts (hash:ip timeout N) that the forwarder fills, matched with -m set.
  dns: 'names that follow DNS need sets with per-element timeouts that the DNS forwarder fills, and a redirect of DNS to it; this backend matches fixed addresses only',
};

export const iptablesBackend: Backend = {
  name: 'iptables',
  capabilities: iptablesCapabilities,
  emit: emitIptables,
};

/**
 * Chain name of each deny rule (same in both families): `EGRESS-<rule>`,
 * or, when that would pass iptables' 28 characters, the rule name cut and
 * ended with `~` and 3 hex digits of its hash (as log tags are cut), with a
 * digit added in the unlikely case two cut names meet.
 */
export function iptablesChainNames(ir: Ir, base = EGRESS_CHAIN, rules: IrRule[] = ir.rules): Map<string, string> {
  const names = [...new Set(rules.filter((r) => r.origin.action === 'deny').map((r) => r.origin.name))].sort();
  const out = new Map<string, string>();
  const used = new Set<string>();
  for (const n of names) {
    let c = `${base}-${n}`;
    if (c.length > IPT_CHAIN_MAX) {
      const tail = `~${shortHash(n)}`;
      c = `${base}-${n.slice(0, IPT_CHAIN_MAX - base.length - 1 - tail.length)}${tail}`;
      for (let k = 2; used.has(c); k++) c = `${base}-${n.slice(0, IPT_CHAIN_MAX - base.length - 1 - tail.length - String(k).length)}${k}${tail}`;
    }
    used.add(iptChain(c));
    out.set(n, c);
  }
  return out;
}

export function emitIptables(ir: Ir): Result<Artifact> {
  const diagnostics: Diagnostic[] = unsupportedDns(ir, 'iptables', iptablesCapabilities.dns);
  if (ir.log.rate && ir.log.rate.count > LIMIT_MAX[ir.log.rate.unit])
    diagnostics.push(
      error('bad-log-rate', `log rate "${ir.log.rate.count}/${ir.log.rate.unit}" is faster than backend "iptables" can limit`, undefined, {
        hint: `-m limit measures at most ${LIMIT_MAX[ir.log.rate.unit]}/${ir.log.rate.unit}`,
      }),
    );
  if (diagnostics.length) return { diagnostics };
  const chains = iptablesChainNames(ir);
  const w = new ArtifactWriter();
  w.line('# egress: iptables ruleset; load the ipv4 section with `iptables-restore --noflush` and the ipv6 section with `ip6tables-restore --noflush`');
  for (const f of ['ipv4', 'ipv6'] as const) emitSection(w, ir, f, chains);
  const artifact = w.artifact();
  const cost = linearCost(artifact.text);
  if (cost) diagnostics.push(cost);
  return { value: artifact, diagnostics };
}

/**
 * iptables has no sets (egress does not use ipset): every destination
 * interval is a rule of its own, and a new connection, or any packet
 * conntrack does not carry, is tried against them one after another. Said
 * plainly, with what BENCHMARKS.md ("Kernel") measured, once a ruleset has
 * IPTABLES_LINEAR_WARN rules or more.
 */
function linearCost(text: string): Diagnostic | undefined {
  // Counted in place: a 100,000-destination ruleset is megabytes of text, not worth an array of its lines.
  let rules = text.startsWith('-A ') ? 1 : 0;
  for (let at = text.indexOf('\n-A '); at !== -1; at = text.indexOf('\n-A ', at + 1)) rules++;
  if (rules < IPTABLES_LINEAR_WARN) return undefined;
  return warning(
    'iptables-linear',
    `on iptables this policy is ${rules.toLocaleString('en-US')} rules, tried one after another for every new connection (iptables has no sets): measured, new connections run at 0.45× of no firewall with 1,000 destinations, 0.08× with 10,000 and 0.008× with 100,000; with nft's sets they run at 0.86–0.97× whatever the number`,
    undefined,
    { hint: 'use the nft backend (apply --backend nft), or fewer and wider destinations (prefixes instead of single addresses)' },
  );
}

function emitSection(w: ArtifactWriter, ir: Ir, f: Family, chains: Map<string, string>): void {
  const rules = ir.rules.filter((r) => r.family === f);
  const denies = rules.filter((r) => r.origin.action === 'deny');
  const allows = rules.filter((r) => r.origin.action === 'allow');
  const chainOf = (r: IrRule) => chains.get(r.origin.name)!;
  w.line(SECTION_MARKER[f]);
  w.line('*filter');
  w.line(`:${EGRESS_CHAIN} - [0:0]`);
  for (const r of denies) w.line(`:${chainOf(r)} - [0:0]`, r.origin);
  w.line(`-F ${EGRESS_CHAIN}`);
  for (const r of denies) w.line(`-F ${chainOf(r)}`, r.origin);

  emitBuiltins(w, ir, f);
  for (const r of denies) for (const m of matchArgs(f, r)) w.line(rule(EGRESS_CHAIN, withUntil(r, m), iptComment(ruleText(r)), `-j ${chainOf(r)}`), r.origin);
  for (const r of allows) for (const m of matchArgs(f, r)) w.line(rule(EGRESS_CHAIN, withUntil(r, m), iptComment(ruleText(r)), '-j RETURN'), r.origin);
  emitDefault(w, ir, f);

  for (const r of denies) emitDenyChain(w, ir, f, r, chainOf(r), ir.denyVerdict);
  w.line(OUTPUT_JUMP);
  if (ir.forward) emitForward(w, ir, ir.forward, f);
  w.line('COMMIT');
}

function emitDenyChain(w: ArtifactWriter, ir: Ir, f: Family, r: IrRule, c: string, denyVerdict: 'reject' | 'drop'): void {
  r.except.forEach((e, i) => {
    for (const m of matchArgs(f, e)) w.line(rule(c, m, iptComment(`${r.origin.name}: except ${i + 1}`), '-j RETURN'), r.origin);
  });
  w.line(rule(c, '', iptComment(ruleText(r)), ''), r.origin);
  w.line(rule(c, logArgs(ir, ir.mode === 'audit' ? 'd' : 'D', r.origin.name, r.from === undefined), '', ''), r.origin);
  for (const v of verdictArgs(ir, f, denyVerdict, 'ACCEPT')) w.line(rule(c, v, '', ''), r.origin);
}

/** The match arguments that say "from this source" in one family (one per interface × network); [] = no traffic in it. */
function sourceArgs(src: IrFwdSource, f: Family): string[] {
  if (!src.families.includes(f)) return [];
  const ifs = src.interfaces.length ? src.interfaces.map((i) => `-i ${iptIface(i)}`) : [''];
  const nets = src.networks?.[f].length ? src.networks[f].flatMap((x) => intervalToCidrs(f, x).map((c) => `-s ${c}`)) : [''];
  return nets.flatMap((n) => ifs.map((i) => [n, i].filter((x) => x !== '').join(' ')));
}

/**
 * The forward scope in one family: chain EGRESS-FWD (established; into a
 * source; per source, deny dispatch, allows, the default; then unlisted),
 * a chain per forward deny rule, EGRESS-FWD-DEFAULT, and the jump.
 * What is admitted RETURNs, so Docker's own rules after the jump still apply.
 */
function emitForward(w: ArtifactWriter, ir: Ir, fwd: IrForward, f: Family): void {
  const rules = fwd.rules.filter((r) => r.family === f);
  const chains = iptablesChainNames(ir, FORWARD_CHAIN, fwd.rules);
  const chainOf = (r: IrRule) => chains.get(r.origin.name)!;
  const denies = rules.filter((r) => r.origin.action === 'deny');
  const allows = rules.filter((r) => r.origin.action === 'allow');
  const withDefault = fwd.default !== 'accept';
  w.line(`:${FORWARD_CHAIN} - [0:0]`);
  for (const r of denies) w.line(`:${chainOf(r)} - [0:0]`, r.origin);
  if (withDefault) w.line(`:${FORWARD_DEFAULT_CHAIN} - [0:0]`);
  w.line(`-F ${FORWARD_CHAIN}`);
  for (const r of denies) w.line(`-F ${chainOf(r)}`, r.origin);
  if (withDefault) w.line(`-F ${FORWARD_DEFAULT_CHAIN}`);
  const c = (n: string) => iptComment(`${BUILTIN_COMMENT} forward ${n}`);
  if (ir.builtins.established) {
    w.line(rule(FORWARD_CHAIN, '-m conntrack --ctstate RELATED,ESTABLISHED', c('established'), '-j RETURN'));
    w.line(rule(FORWARD_CHAIN, '-p tcp -m conntrack --ctstate NEW -m tcp --tcp-flags SYN,ACK ACK', c('established'), '-j RETURN'));
  }
  for (const i of [...new Set(fwd.sources.flatMap((s) => s.interfaces))].sort()) w.line(rule(FORWARD_CHAIN, `-o ${iptIface(i)}`, c('into source'), '-j RETURN'));
  for (const src of fwd.sources)
    if (src.networks && src.families.includes(f)) for (const x of src.networks[f]) for (const cidr of intervalToCidrs(f, x)) w.line(rule(FORWARD_CHAIN, `-d ${cidr}`, c('into source'), '-j RETURN'));
  const bySource = new Map(fwd.sources.map((s) => [s.name, s]));
  const from = (r: IrRule) => (r.from ?? []).flatMap((n) => sourceArgs(bySource.get(n)!, f));
  for (const r of denies) for (const s of from(r)) for (const m of matchArgs(f, r)) w.line(rule(FORWARD_CHAIN, withUntil(r, joinArgs(s, m)), iptComment(ruleText(r)), `-j ${chainOf(r)}`), r.origin);
  for (const r of allows) for (const s of from(r)) for (const m of matchArgs(f, r)) w.line(rule(FORWARD_CHAIN, withUntil(r, joinArgs(s, m)), iptComment(ruleText(r)), '-j RETURN'), r.origin);
  const dc = iptComment(`${DEFAULT_COMMENT} forward ${fwd.default}`);
  for (const src of fwd.sources) for (const s of sourceArgs(src, f)) w.line(rule(FORWARD_CHAIN, s, dc, withDefault ? `-j ${FORWARD_DEFAULT_CHAIN}` : '-j RETURN'));
  const uc = iptComment(`egress forward unlisted: ${fwd.unlisted}`);
  w.line(rule(FORWARD_CHAIN, '-m conntrack --ctstate NEW', uc, ''));
  if (fwd.unlisted !== 'accept') w.line(rule(FORWARD_CHAIN, `-m conntrack --ctstate NEW ${logArgs(ir, fwd.unlisted === 'deny' && ir.mode !== 'audit' ? 'U' : 'u', undefined, false)}`, '', ''));
  if (fwd.unlisted === 'deny') for (const v of verdictArgs(ir, f, fwd.denyVerdict, 'RETURN')) w.line(rule(FORWARD_CHAIN, `-m conntrack --ctstate NEW ${v}`, '', ''));
  if (withDefault) {
    w.line(rule(FORWARD_DEFAULT_CHAIN, '', dc, ''));
    w.line(rule(FORWARD_DEFAULT_CHAIN, logArgs(ir, ir.mode === 'audit' ? 'p' : 'P', undefined, false), '', ''));
    for (const v of verdictArgs(ir, f, fwd.default as 'reject' | 'drop', 'ACCEPT')) w.line(rule(FORWARD_DEFAULT_CHAIN, v, '', ''));
  }
  for (const r of denies) emitDenyChain(w, ir, f, r, chainOf(r), fwd.denyVerdict);
  w.line(FORWARD_JUMP);
}

/** An interface glob as iptables writes it: a trailing "*" (nft, the policy) is "+". */
function iptIface(glob: string): string {
  return iptWord(glob.endsWith('*') ? glob.slice(0, -1) + '+' : glob);
}

function joinArgs(...xs: string[]): string {
  return xs.filter((x) => x !== '').join(' ');
}

/** `expires`: xt_time stops matching after --datestop (UTC, inclusive to the second): the last second of the expiry day. */
function withUntil(r: IrRule, m: string): string {
  if (r.untilSec === undefined) return m;
  const stop = new Date((r.untilSec - 1) * 1000).toISOString().slice(0, 19);
  return `-m time --datestop ${stop}${m ? ` ${m}` : ''}`;
}

function emitBuiltins(w: ArtifactWriter, ir: Ir, f: Family): void {
  const b = ir.builtins;
  const c = (n: string) => iptComment(`${BUILTIN_COMMENT} ${n}`);
  if (b.loopback) w.line(rule(EGRESS_CHAIN, '-o lo', c('loopback'), '-j RETURN'));
  if (b.established) {
    w.line(rule(EGRESS_CHAIN, '-m conntrack --ctstate RELATED,ESTABLISHED', c('established'), '-j RETURN'));
    // A TCP connection older than connection tracking here, picked up mid-stream (see the nft backend).
    w.line(rule(EGRESS_CHAIN, '-p tcp -m conntrack --ctstate NEW -m tcp --tcp-flags SYN,ACK ACK', c('established'), '-j RETURN'));
  }
  if (b.icmpv6_nd && f === 'ipv6') for (const t of ICMPV6_ND_TYPES) w.line(rule(EGRESS_CHAIN, `${SYNTAX.ipv6.icmpProto} ${SYNTAX.ipv6.icmpType(t)}`, c('icmpv6_nd'), '-j RETURN'));
}

function emitDefault(w: ArtifactWriter, ir: Ir, f: Family): void {
  const c = iptComment(`${DEFAULT_COMMENT} ${ir.default}`);
  if (ir.default === 'accept') {
    w.line(rule(EGRESS_CHAIN, '', c, '-j RETURN'));
    return;
  }
  w.line(rule(EGRESS_CHAIN, '', c, ''));
  w.line(rule(EGRESS_CHAIN, logArgs(ir, ir.mode === 'audit' ? 'p' : 'P', undefined), '', ''));
  for (const v of verdictArgs(ir, f, ir.default, 'RETURN')) w.line(rule(EGRESS_CHAIN, v, '', ''));
}

function rule(chain: string, match: string, comment: string, target: string): string {
  return ['-A', chain, match, comment, target].filter((x) => x !== '').join(' ');
}

function ruleText(r: IrRule): string {
  return r.reason ? `${r.origin.name}: ${r.reason}` : r.origin.name;
}

/** Rate-limited LOG with the rule's tag (`-m limit` sits in this rule only, so counts elsewhere stay exact). */
function logArgs(ir: Ir, v: TagVerdict, name: string | undefined, owned = true): string {
  const limit = ir.log.rate ? `-m limit --limit ${ir.log.rate.count}/${LIMIT_UNIT[ir.log.rate.unit]} --limit-burst ${logBurst(ir.log.rate)} ` : '';
  return `${limit}-j LOG --log-prefix ${iptQuote(logPrefix(ir.log.prefix, v, name, IPTABLES_PREFIX_MAX))}${ir.log.uid && owned ? ' --log-uid' : ''}`;
}

/**
 * Deny = reject (TCP reset, else ICMP/ICMPv6 administratively prohibited) or
 * drop. Audit mode lets the packet go: `accept` is RETURN where the verdict
 * sits in EGRESS itself, ACCEPT in a deny rule's chain (a RETURN there would
 * go back to EGRESS).
 */
function verdictArgs(ir: Ir, f: Family, v: 'reject' | 'drop', accept: 'RETURN' | 'ACCEPT'): string[] {
  if (ir.mode === 'audit') return [`-j ${accept}`];
  if (v === 'drop') return ['-j DROP'];
  return ['-p tcp -j REJECT --reject-with tcp-reset', `-j REJECT --reject-with ${SYNTAX[f].reject}`];
}

interface Part {
  d?: string;
  o?: string;
  p?: string;
  range?: string;
  pm?: string;
  owner?: string;
}

/**
 * The match arguments of the rules that together match exactly `m`: the
 * product of its destination, L4, owner and interface alternatives, each
 * written in iptables-save's order (-d, -o, -p, then matches). Empty list =
 * matches nothing.
 */
export function matchArgs(f: Family, m: IrMatch): string[] {
  const dst: Part[] = m.dst ? m.dst.map((x) => dstPart(f, x)) : [{}];
  const l4 = l4Parts(f, m.l4);
  const owners = ownerParts(m.users, m.groups);
  const via: Part[] = m.via ? m.via.map((v) => ({ o: `-o ${iptIface(v)}` })) : [{}];
  const out: string[] = [];
  for (const d of dst)
    for (const o of via)
      for (const l of l4)
        for (const u of owners) {
          const p: Part = { ...d, ...o, ...l, ...u };
          out.push([p.d, p.o, p.p, p.range, p.pm, p.owner].filter((x) => x !== undefined).join(' '));
        }
  return out;
}

function dstPart(f: Family, x: { lo: bigint; hi: bigint }): Part {
  const cidrs = intervalToCidrs(f, x);
  if (cidrs.length === 1) return { d: `-d ${cidrs[0]}` };
  return { range: `-m iprange --dst-range ${formatAddress(f, x.lo)}-${formatAddress(f, x.hi)}` };
}

function l4Parts(f: Family, l4: IrL4 | undefined): Part[] {
  if (!l4) return [{}];
  const out: Part[] = [];
  for (const p of l4.ports) {
    if (p.ranges.length === 1 && p.ranges[0]![0] === 0 && p.ranges[0]![1] === 65535) {
      out.push({ p: `-p ${p.proto}` });
      continue;
    }
    for (const chunk of multiportChunks(p.ranges)) {
      const text = chunk.map(([a, b]) => (a === b ? `${a}` : `${a}:${b}`));
      out.push({ p: `-p ${p.proto}`, pm: text.length === 1 ? `-m ${p.proto} --dport ${text[0]}` : `-m multiport --dports ${text.join(',')}` });
    }
  }
  if (l4.icmp === 'any') out.push({ p: SYNTAX[f].icmpProto });
  else for (const t of l4.icmp) out.push({ p: SYNTAX[f].icmpProto, pm: SYNTAX[f].icmpType(t) });
  return out;
}

function multiportChunks(ranges: [number, number][]): [number, number][][] {
  const out: [number, number][][] = [];
  let cur: [number, number][] = [];
  let slots = 0;
  for (const r of ranges) {
    const cost = r[0] === r[1] ? 1 : 2;
    if (slots + cost > MULTIPORT_SLOTS) {
      out.push(cur);
      cur = [];
      slots = 0;
    }
    cur.push(r);
    slots += cost;
  }
  if (cur.length) out.push(cur);
  return out;
}

/** Numeric ids when known; names otherwise, resolved by iptables when the ruleset loads. */
function ownerParts(users: IrOwner[] | undefined, groups: IrOwner[] | undefined): Part[] {
  const v = (o: IrOwner) => {
    if (o.id !== undefined) return String(o.id);
    if (o.name !== undefined) return iptWord(o.name);
    throw new Error('owner without id or name');
  };
  const us = users ? users.map((u) => `--uid-owner ${v(u)}`) : [undefined];
  const gs = groups ? groups.map((g) => `--gid-owner ${v(g)}`) : [undefined];
  const out: Part[] = [];
  for (const u of us)
    for (const g of gs) {
      const args = [u, g].filter((x): x is string => x !== undefined);
      out.push(args.length ? { owner: `-m owner ${args.join(' ')}` } : {});
    }
  return out;
}

/** The two sections of an emitted text, each from its marker line to its COMMIT, ready for (ip6)iptables-restore. */
export function splitIptables(text: string): Record<Family, string> {
  const out: Record<Family, string> = { ipv4: '', ipv6: '' };
  let cur: Family | undefined;
  for (const line of text.split('\n')) {
    if (line === SECTION_MARKER.ipv4) cur = 'ipv4';
    else if (line === SECTION_MARKER.ipv6) cur = 'ipv6';
    if (cur) out[cur] += line + '\n';
    if (line === 'COMMIT') cur = undefined;
  }
  return out;
}

/**
 * The 1-based line of `text` where a family's section starts (its marker
 * line). (ip6)iptables-restore numbers the lines of the section it was fed,
 * so its "Error occurred at line: N" is line `start + N - 1` of the artifact,
 * whose `lineMap` then names the policy rule. `iptablesReapply` only changes
 * lines at the end of a section, so this holds for adapted sections too.
 */
export function iptablesSectionStart(text: string, f: Family): number {
  return text.split('\n').indexOf(SECTION_MARKER[f]) + 1;
}
