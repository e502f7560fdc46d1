/**
 * Policy → ResolvedPolicy: `{ file: }` sets read, `$set`s expanded, hostnames
 * resolved (A and AAAA through the system resolver), owner names matched to
 * ids where this host knows them. All I/O goes through the Resolver.
 *
 * Hostname failures never widen anything: a name that fails keeps its last
 * known good addresses (when the caller passes them) and one that never
 * resolved yields no addresses, so an allow for it admits nothing.
 */
import { errnoText } from '../diag/errno.js';
import { dirname, isAbsolute, join } from 'node:path';
import { error, q, warning, type Diagnostic, type Result } from '../diag/diagnostic.js';
import { SourceFile, type SourceMap, type Span } from '../diag/source.js';
import { looksBinary } from '../policy/parse.js';
import { parseAddress, parseDest, specialPurpose, FAMILIES, type Family } from '../policy/address.js';
import type { DestRef, OwnerRef, Policy, Rule, Selectors } from '../policy/types.js';
import type { Accounts, Resolver } from './resolver.js';
import type { HostEntry, ResolvedDest, ResolvedPolicy, ResolvedRule, ResolvedSelectors } from './types.js';
import { DNS_FORWARDER_GROUP } from './dns.js';

export interface ResolveOptions {
  sources: SourceMap;
  /** Last known good addresses (state directory), used when a lookup fails. */
  previousHosts?: HostEntry[];
  /** Directory that relative `{ file: }` paths are read from (default: the policy file's). */
  baseDir?: string;
  /** Skip DNS entirely (every name unresolved, no warnings): for offline checks of structure. */
  offline?: boolean;
}

const MAX_PARALLEL_LOOKUPS = 16;

export async function resolvePolicy(p: Policy, r: Resolver, opts: ResolveOptions): Promise<Result<ResolvedPolicy>> {
  const diagnostics: Diagnostic[] = [];
  const fileItems = new Map<string, DestRef[]>();
  await Promise.all(
    p.sets
      .filter((s) => s.file)
      .map(async (s) => {
        const f = s.file!;
        const path = isAbsolute(f.path) ? f.path : join(opts.baseDir ?? dirname(p.file), f.path);
        let text: string;
        try {
          text = await r.readFile(path);
        } catch (e) {
          diagnostics.push(error('unreadable-file', `cannot read set file ${q(f.path)}: ${errnoText(e)}`, f.span));
          return;
        }
        const src = opts.sources.add(new SourceFile(isAbsolute(f.path) ? f.path : relName(p.file, f.path), text, f.span));
        fileItems.set(s.name, parseSetFile(src, f.span, diagnostics));
      }),
  );
  const sets = new Map(p.sets.map((s) => [s.name, s.file ? fileItems.get(s.name) ?? [] : s.items ?? []]));

  // Expand `$set` references into a flat list of literal and hostname refs, remembering the chain.
  type Flat = { ref: DestRef; chain: string[] };
  const expand = (refs: DestRef[], chain: string[], out: Flat[]): Flat[] => {
    for (const ref of refs) {
      if (ref.kind !== 'set') out.push({ ref, chain });
      else if (!chain.includes(ref.name)) expand(sets.get(ref.name) ?? [], [...chain, ref.name], out);
    }
    return out;
  };

  // With dns.proxy a deny rule's own names are answered REFUSED by the forwarder, never resolved here;
  // an allow rule's exact names are resolved as without it (so /etc/hosts pins keep working).
  const proxy = p.dns.proxy;
  const hostNames = new Set<string>();
  const followed = new Set<string>();
  const staticSelectors = [...p.deny, ...p.allow].flatMap((rule) => [...(proxy && rule.ref.action === 'deny' ? [] : [rule]), ...rule.except]);
  for (const s of staticSelectors) for (const f of expand(s.to ?? [], [], [])) if (f.ref.kind === 'host') hostNames.add(f.ref.name);
  if (proxy) for (const rule of p.allow) for (const f of expand(rule.to ?? [], [], [])) if (f.ref.kind === 'host') followed.add(f.ref.name);
  const refLists = [...staticSelectors.map((s) => s.to ?? []), ...sets.values()];
  const hosts = await resolveHosts([...hostNames].sort(), r, opts, diagnostics, refLists, followed);

  const accounts = await r.accounts();
  // Loopback, link-local (the metadata service), multicast…: a hostile or rebinding answer must not open them (D16).
  // They are left out where a name admits (an allow rule's `to`, a deny rule's `except`) and kept where it denies or
  // excludes (a deny rule's `to`, an allow rule's `except`): a deny of metadata.google.internal still denies it.
  const warnedSpecial = new Set<string>();
  const special = (name: string, address: string, span: Span): boolean => {
    const what = specialPurpose(address);
    if (what && !warnedSpecial.has(`${name}\0${address}`)) {
      warnedSpecial.add(`${name}\0${address}`);
      diagnostics.push(warning('special-address', `${q(name)} resolved to ${address}, a special-purpose address (${what}); it is not admitted`, span, { hint: 'if you mean that address, write it in the policy itself' }));
    }
    return what !== undefined;
  };
  /**
   * `follow`: the names of this selector block follow DNS ('allow': also resolved now; 'deny': only refused).
   * `admits`: what it matches is let through (an allow rule, a deny rule's except).
   */
  const resolveSel = (s: Selectors, admits: boolean, follow?: 'allow' | 'deny'): ResolvedSelectors => {
    const { to: _to, ...rest } = s;
    const out: ResolvedSelectors = { ...rest, families: [] };
    if (s.users) out.users = s.users.map((u) => owner(u, accounts.users));
    if (s.groups) out.groups = s.groups.map((g) => owner(g, accounts.groups));
    if (s.to) {
      const dests: ResolvedDest[] = [];
      const names = new Set<string>();
      const patterns = new Set<string>();
      for (const { ref, chain } of expand(s.to, [], [])) {
        const sets = chain.length ? { sets: chain } : {};
        if (ref.kind === 'addr') dests.push({ family: ref.family, lo: ref.lo, hi: ref.hi, text: ref.text, span: ref.span, ...sets });
        else if (ref.kind === 'wildcard') {
          if (follow) patterns.add(ref.pattern);
        } else if (ref.kind === 'host' && follow === 'deny') patterns.add(ref.name);
        else if (ref.kind === 'host') {
          if (follow) patterns.add(ref.name);
          names.add(ref.name);
          const h = hosts.get(ref.name)!;
          for (const fam of FAMILIES)
            for (const a of h[fam]) {
              const v = parseAddress(a);
              if (!v || v.family !== fam || (admits && special(ref.name, a, ref.span))) continue;
              dests.push({ family: fam, lo: v.value, hi: v.value, text: ref.text, span: ref.span, host: ref.name, ...sets });
            }
        }
      }
      out.to = s.family ? dests.filter((d) => d.family === s.family) : dests;
      if (names.size) out.hosts = [...names].sort();
      if (patterns.size) out.dnsNames = [...patterns].sort();
    }
    // An allow rule's followed names can be answered in either family, so they give it both; so do hostnames, which
    // may gain an address of the family they lack now (refresh then fills that family's set in place).
    out.families = !s.family && ((follow === 'allow' && out.dnsNames) || out.hosts?.length) ? [...FAMILIES] : familiesOf(s.family, out.to);
    return out;
  };
  const resolveRule = (rule: Rule): ResolvedRule => {
    const { to: _to, except, ...rest } = rule;
    const allows = rule.ref.action === 'allow';
    return { ...rest, ...resolveSel(rule, allows, proxy ? rule.ref.action : undefined), except: except.map((e) => resolveSel(e, !allows)) };
  };
  for (const rule of [...p.deny, ...p.allow]) warnUnknownOwners(rule, accounts, diagnostics);
  const value: ResolvedPolicy = {
    ...p,
    allow: p.allow.map(resolveRule),
    deny: p.deny.map(resolveRule),
    hosts: [...hosts.values()],
  };
  if (proxy) {
    const gid = accounts.groups.get(DNS_FORWARDER_GROUP);
    value.dnsForwarder = { group: DNS_FORWARDER_GROUP, ...(gid !== undefined ? { gid } : {}) };
    if (gid === undefined)
      diagnostics.push(
        warning('unknown-user', `group ${q(DNS_FORWARDER_GROUP)}, which the DNS forwarder runs as, does not exist on this host`, p.dns.spans.proxy, {
          hint: `the ruleset names it, and the firewall resolves group names when it loads: create it first ("groupadd --system ${DNS_FORWARDER_GROUP}")`,
        }),
      );
  }
  return { value, diagnostics };
}

function familiesOf(explicit: Family | undefined, to: ResolvedDest[] | undefined): Family[] {
  if (explicit) return [explicit];
  if (!to) return [...FAMILIES];
  return FAMILIES.filter((f) => to.some((d) => d.family === f));
}

function owner(o: OwnerRef, table: Map<string, number>): OwnerRef {
  if (o.name !== undefined && o.id === undefined) {
    const id = table.get(o.name);
    if (id !== undefined) return { ...o, id };
  }
  if (o.id !== undefined && o.name === undefined) {
    for (const [n, id] of table) if (id === o.id) return { ...o, name: n };
  }
  return o;
}

function warnUnknownOwners(rule: Rule, a: Accounts, out: Diagnostic[]): void {
  for (const s of [rule, ...rule.except]) {
    for (const [list, table, what] of [
      [s.users, a.users, 'user'],
      [s.groups, a.groups, 'group'],
    ] as const)
      for (const o of list ?? [])
        if (o.name !== undefined && !table.has(o.name))
          out.push(
            warning('unknown-user', `${what} ${q(o.name)} does not exist on this host`, o.span, {
              hint: `the firewall resolves ${what} names when it loads; create the ${what} on the target host first, or use its number`,
            }),
          );
  }
}

async function resolveHosts(
  names: string[],
  r: Resolver,
  opts: ResolveOptions,
  diagnostics: Diagnostic[],
  refLists: DestRef[][],
  followed: Set<string>,
): Promise<Map<string, HostEntry>> {
  const prev = new Map((opts.previousHosts ?? []).map((h) => [h.name, h]));
  const firstUse = (name: string) => {
    let best: DestRef | undefined;
    for (const list of refLists) for (const d of list) if (d.kind === 'host' && d.name === name && (!best || d.span.start < best.span.start)) best = d;
    return best?.span;
  };
  const out = new Map<string, HostEntry>();
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const name = names[next++]!;
      if (opts.offline) {
        out.set(name, { name, ipv4: [], ipv6: [], status: 'unresolved' });
        continue;
      }
      try {
        const a = await r.lookupHost(name);
        // Special-purpose addresses stay here (a deny rule naming the host denies them); rules that admit leave them out.
        out.set(name, { name, ipv4: canonical(a.ipv4, 'ipv4'), ipv6: canonical(a.ipv6, 'ipv6'), status: 'ok' });
      } catch (e) {
        // The last known good addresses, as read from the state directory (an older egress may have kept anything).
        const old = prev.get(name) && { ipv4: canonical(prev.get(name)!.ipv4, 'ipv4'), ipv6: canonical(prev.get(name)!.ipv6, 'ipv6') };
        const span = firstUse(name);
        if (old && old.ipv4.length + old.ipv6.length > 0) {
          out.set(name, { name, ...old, status: 'stale' });
          diagnostics.push(warning('unresolved-host', `cannot resolve ${q(name)} (${errnoText(e)}); keeping its last known addresses`, span));
        } else if (followed.has(name)) {
          out.set(name, { name, ipv4: [], ipv6: [], status: 'unresolved' });
          diagnostics.push(
            warning('unresolved-host', `cannot resolve ${q(name)} now (${errnoText(e)}); its addresses are admitted as the DNS forwarder answers them`, span),
          );
        } else {
          out.set(name, { name, ipv4: [], ipv6: [], status: 'unresolved' });
          diagnostics.push(
            warning('unresolved-host', `cannot resolve ${q(name)} (${errnoText(e)}); it matches no address until it resolves`, span, {
              hint: 'pin it in /etc/hosts, or check that DNS is reachable',
            }),
          );
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(MAX_PARALLEL_LOOKUPS, names.length) }, worker));
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The addresses of one family among `xs`, sorted, each once (other spellings of an address are the same address: the first is kept). */
function canonical(xs: readonly unknown[], family: Family): string[] {
  const seen = new Map<bigint, string>();
  for (const x of Array.isArray(xs) ? xs : []) {
    const a = typeof x === 'string' ? parseAddress(x) : undefined;
    if (a?.family === family && !seen.has(a.value)) seen.set(a.value, x as string);
  }
  return [...seen.values()].sort();
}

/** At most this many bad lines of one set file are reported one by one; the rest are counted in one more error. */
const MAX_SET_FILE_ERRORS = 5;
/** A line that could be a mistyped address, CIDR or range (hex digits, dots, colons, "/" and "-"), or a name: quoted in full. Anything else is not echoed (D7). */
const QUOTABLE = /^(?:[0-9A-Fa-f.:/-]{1,100}|[A-Za-z0-9_*][A-Za-z0-9_.*-]{0,99})$/;

function parseSetFile(src: SourceFile, at: Span, diagnostics: Diagnostic[]): DestRef[] {
  const out: DestRef[] = [];
  if (looksBinary(src.text)) {
    // Never show a byte of it: it may be any file root can read (an ELF binary, /proc/self/environ).
    diagnostics.push(error('binary-file', `set file ${q(src.name)} is not a text file (binary data found)`, at, { hint: 'one address, CIDR or range "a-b" per line; "#" starts a comment' }));
    return out;
  }
  let offset = 0;
  let bad = 0;
  let firstHidden: Span | undefined;
  for (const line of src.text.split('\n')) {
    const content = line.replace(/#.*$/, '');
    const lead = content.length - content.trimStart().length;
    const text = content.trim();
    if (text) {
      const span = src.span(offset + lead, offset + lead + text.length);
      const d = parseDest(text);
      if (d.kind === 'addr') {
        if (d.hostBitsFix) diagnostics.push(warning('host-bits-set', `host bits set in ${q(text)}`, span, { hint: `did you mean ${d.hostBitsFix}?` }));
        out.push({ kind: 'addr', family: d.family, lo: d.lo, hi: d.hi, text, span });
      } else if (++bad <= MAX_SET_FILE_ERRORS) {
        const quotable = QUOTABLE.test(text);
        const message = !quotable
          ? 'not an address, CIDR or range (the line is not shown: it does not look like one, and a set file may be any file)'
          : d.kind === 'error'
            ? d.message
            : `a set file holds addresses, CIDRs and ranges only, not ${q(text)}`;
        diagnostics.push(error('bad-address', message, span, { hint: 'one address, CIDR or range "a-b" per line; "#" starts a comment', ...(quotable ? {} : { excerpt: false }) }));
      } else firstHidden ??= span;
    }
    offset += line.length + 1;
  }
  if (firstHidden) diagnostics.push(error('bad-address', `${bad - MAX_SET_FILE_ERRORS} more lines of this set file are not addresses, CIDRs or ranges`, firstHidden, { excerpt: false }));
  return out;
}

function relName(policyFile: string, p: string): string {
  const d = dirname(policyFile);
  return d === '.' ? p : join(d, p);
}

