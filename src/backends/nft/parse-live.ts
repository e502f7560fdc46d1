/**
 * `nft -j list table inet egress` (plus, for readable rule text, `nft -a -t list
 * table inet egress`) → LiveRuleset. Pure: kernel/nft.ts runs the commands.
 *
 * A rule's key is its expression list as JSON with the packet and byte
 * counts of anonymous counters taken out, so a rule that only counted
 * traffic since the last listing compares equal. Handles are dropped.
 */
import { formatInterval, parseDest } from '../../policy/address.js';
import { emptyLive, type LiveRule, type LiveRuleset, type LiveSet } from '../live.js';

export class LiveParseError extends Error {}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * Parse the JSON listing (and optionally the `-a` text listing of the same
 * table, for rule text and the table comment). `json` undefined = the table
 * does not exist.
 */
export function readNftLive(json: string | undefined, text?: string): LiveRuleset {
  const live = emptyLive('nft');
  if (json === undefined || json.trim() === '') return live;
  let doc: { nftables?: Json[] };
  try {
    doc = JSON.parse(json) as { nftables?: Json[] };
  } catch (e) {
    throw new LiveParseError(`cannot read nft's JSON listing: ${(e as Error).message}`);
  }
  if (!Array.isArray(doc.nftables)) throw new LiveParseError('nft JSON listing has no "nftables" array');
  const byHandle = text ? textByHandle(text) : new Map<number, string>();
  if (text) {
    // The output chain's comment; the table's, as egress wrote it before (a table loaded by an older egress).
    const m = /^\t\tcomment "egress: mode (\w+), default (\w+)"$/m.exec(text) ?? /^\tcomment "egress: mode (\w+), default (\w+)"$/m.exec(text);
    const fw = /^\t\tcomment "egress: forward, default (\w+), unlisted (\w+)"$/m.exec(text);
    if (fw) live.forward = { default: fw[1]!, unlisted: fw[2]! };
    const t = /^\tcomment "([^"]*)"$/m.exec(text);
    if (t) live.comment = t[1]!;
    if (m) {
      live.mode = m[1]!;
      live.default = m[2]!;
    }
  }
  for (const item of doc.nftables) {
    if (!item || typeof item !== 'object' || Array.isArray(item)) continue;
    const o = item as Record<string, Json>;
    if (o.table) live.present = true;
    else if (o.chain) {
      const c = o.chain as Record<string, Json>;
      if (!live.chains.has(String(c.name))) live.chains.set(String(c.name), []);
    } else if (o.set) {
      const s = o.set as Record<string, Json>;
      live.sets.set(String(s.name), readSet(s));
    } else if (o.counter) {
      const c = o.counter as Record<string, Json>;
      live.counters.set(String(c.name), { packets: Number(c.packets ?? 0), bytes: Number(c.bytes ?? 0) });
    } else if (o.rule) {
      const r = o.rule as Record<string, Json>;
      const chain = String(r.chain);
      const rule = readRule(r, byHandle);
      const list = live.chains.get(chain) ?? [];
      list.push(rule);
      live.chains.set(chain, list);
    }
  }
  return live;
}

/**
 * A set with `flags timeout` is a dynamic set of `dns.proxy` (`..._dns`): its
 * elements are what the DNS forwarder learned at run time, not part of what
 * defines the ruleset, so they are left out — plan shows no change and the
 * fingerprint no drift when the forwarder adds an address.
 */
function readSet(s: Record<string, Json>): LiveSet {
  const type = Array.isArray(s.type) ? s.type.map(String).join(' . ') : String(s.type);
  const flags = Array.isArray(s.flags) ? s.flags.map(String).sort() : [];
  if (flags.includes('timeout')) return { type, flags, elements: [], learned: Array.isArray(s.elem) ? s.elem.flatMap(learnedOf) : [] };
  const elem = Array.isArray(s.elem) ? s.elem : [];
  return { type, flags, elements: normalizeElements(elem.map(elementText)) };
}

/** `{"elem": {"val": "192.0.2.1", "timeout": 70, "expires": 69}}` → the address and the seconds it has left. */
function learnedOf(e: Json): { element: string; expiresSec: number }[] {
  if (!e || typeof e !== 'object' || Array.isArray(e) || !e.elem || typeof e.elem !== 'object' || Array.isArray(e.elem)) return [];
  const { val, expires } = e.elem;
  return typeof val === 'string' && typeof expires === 'number' ? [{ element: val, expiresSec: expires }] : [];
}

/** One set element as text: `a`, `a/len`, `a-b`; anything else as its JSON. */
export function elementText(e: Json): string {
  if (typeof e === 'string' || typeof e === 'number') return String(e);
  if (e && typeof e === 'object' && !Array.isArray(e)) {
    if (e.prefix && typeof e.prefix === 'object' && !Array.isArray(e.prefix)) return `${String(e.prefix.addr)}/${String(e.prefix.len)}`;
    if (Array.isArray(e.range)) return `${elementText(e.range[0]!)}-${elementText(e.range[1]!)}`;
    if (e.elem && typeof e.elem === 'object' && !Array.isArray(e.elem)) return elementText(e.elem.val ?? null);
  }
  return JSON.stringify(e);
}

/**
 * Address elements in one canonical spelling (the shortest CIDR or range
 * form of the same interval), sorted; anything that is not an address is
 * kept as written. Makes `192.0.2.0/24` from the kernel equal the emitter's.
 */
export function normalizeElements(xs: readonly string[]): string[] {
  // Each element parsed once: a sort that parsed both sides of every comparison made a
  // 1,000,000-element listing cost seconds more than nft's own listing (BENCHMARKS "Growth with N").
  const n = xs.length;
  const texts: string[] = new Array<string>(n);
  const v6 = new Uint8Array(n);
  const los: bigint[] = new Array<bigint>(n);
  for (let i = 0; i < n; i++) {
    const d = parseDest(xs[i]!);
    if (d.kind !== 'addr') return normalizeMixed(xs);
    texts[i] = formatInterval(d.family, { lo: d.lo, hi: d.hi });
    v6[i] = d.family === 'ipv6' ? 1 : 0;
    los[i] = d.lo;
  }
  // Only addresses (every listing of an address set): sort positions by family and first address, ties in listing
  // order, then keep each text's first occurrence. One spelling is one interval, so equal texts share a first address
  // and sit in one run: the same result as the Map and sort below, without an entry per element.
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => v6[a]! - v6[b]! || (los[a]! < los[b]! ? -1 : los[a]! > los[b]! ? 1 : a - b));
  const out: string[] = [];
  for (let k = 0; k < n; ) {
    let end = k + 1;
    while (end < n && v6[order[end]!] === v6[order[k]!] && los[order[end]!] === los[order[k]!]) end++;
    const run = out.length;
    for (let r = k; r < end; r++) {
      const t = texts[order[r]!]!;
      if (end - k === 1 || !out.includes(t, run)) out.push(t);
    }
    k = end;
  }
  return out;
}

/**
 * `normalizeElements` by its definition, for a listing with something that is not an address in it: a Map of each
 * spelling's first occurrence, sorted. The fast path for addresses alone is held to it (test/property).
 */
export function normalizeMixed(xs: readonly string[]): string[] {
  const keyed = new Map<string, { family: string; lo: bigint } | undefined>();
  for (const x of xs) {
    const d = parseDest(x);
    const text = d.kind === 'addr' ? formatInterval(d.family, { lo: d.lo, hi: d.hi }) : x;
    if (!keyed.has(text)) keyed.set(text, d.kind === 'addr' ? { family: d.family, lo: d.lo } : undefined);
  }
  return [...keyed].sort(compareElements).map(([text]) => text);
}

/** Addresses by family, then by their first address; anything else by its text. */
function compareElements([a, ka]: [string, { family: string; lo: bigint } | undefined], [b, kb]: [string, { family: string; lo: bigint } | undefined]): number {
  if (ka && kb) {
    if (ka.family !== kb.family) return ka.family < kb.family ? -1 : 1;
    return ka.lo < kb.lo ? -1 : ka.lo > kb.lo ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function readRule(r: Record<string, Json>, byHandle: Map<number, string>): LiveRule {
  const expr = Array.isArray(r.expr) ? r.expr : [];
  let packets: number | undefined;
  let bytes: number | undefined;
  const stripped = expr.map((e) => {
    if (e && typeof e === 'object' && !Array.isArray(e) && e.counter && typeof e.counter === 'object' && !Array.isArray(e.counter)) {
      packets = (packets ?? 0) + Number(e.counter.packets ?? 0);
      bytes = (bytes ?? 0) + Number(e.counter.bytes ?? 0);
      return { counter: null };
    }
    return e;
  });
  const comment = typeof r.comment === 'string' ? r.comment : undefined;
  const key = JSON.stringify({ expr: stripped, ...(comment !== undefined ? { comment } : {}) });
  const text = byHandle.get(Number(r.handle)) ?? renderExprs(stripped);
  return { key, text, ...(comment !== undefined ? { comment } : {}), ...(packets !== undefined ? { packets, bytes: bytes! } : {}) };
}

/** Rule lines of `nft -a list` by handle, without the handle and with counter values taken out. */
function textByHandle(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    const m = /^\t\t(.*\S)\s+# handle (\d+)$/.exec(line);
    if (!m || /^(type|flags|policy|elements)\b/.test(m[1]!)) continue;
    out.set(Number(m[2]), m[1]!.replace(/ counter packets \d+ bytes \d+/g, ' counter'));
  }
  return out;
}

/** A fallback rendering of a rule's expressions when no text listing was given. */
function renderExprs(expr: Json[]): string {
  return expr.map((e) => JSON.stringify(e)).join(' ');
}
