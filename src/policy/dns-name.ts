/**
 * The grammar of the `dns:` settings and of names that follow DNS: exact
 * hostnames, wildcard patterns ("*.cdn.example.com"), durations and upstream
 * addresses. Pure; check.ts turns the errors into located diagnostics, and
 * the evaluators and the forwarder match names with `nameMatches`.
 *
 * A wildcard is `*.` followed by a domain of at least two labels, and stands
 * for one or more whole labels before that domain — never the domain itself
 * (`*.cdn.example.com` matches `a.cdn.example.com` and `a.b.cdn.example.com`,
 * not `cdn.example.com`). The `*` is always the whole first label: `a.*.x.com`,
 * `f*.x.com`, `*.*.x.com` and `**.x.com` are errors, and so are `*`, `*.com`
 * and other patterns with fewer than two labels after the `*.` (too broad to
 * be what anyone meant: a public suffix list would be needed to say more).
 * Names are ASCII (internationalized names are written in punycode) and are
 * compared without regard to case or a trailing dot.
 */
import { BITS, formatAddress, parseAddress, type Family } from './address.js';

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;
export const MAX_NAME_LENGTH = 253;

export type NameError = { kind: 'error'; code: 'bad-hostname' | 'bad-wildcard'; message: string; hint?: string };
export type ParsedName = { kind: 'host'; name: string } | { kind: 'wildcard'; pattern: string } | NameError;

/** Whether `text` was meant as a name (so its problems are reported as name problems, not address ones). */
export function looksLikeName(text: string): boolean {
  if (text.includes('*')) return true;
  if (/[\s:/]/.test(text)) return false;
  // eslint-disable-next-line no-control-regex
  return /[^\x00-\x7f]/.test(text) || (text.includes('.') && /[a-z_]/i.test(text));
}

/** A name or wildcard pattern as written in `to` or a set, normalized (lowercase, no trailing dot). */
export function parseName(raw: string): ParsedName {
  const text = raw.trim();
  const norm = text.toLowerCase().replace(/\.$/, '');
  if (text.includes('*')) return parseWildcard(text, norm);
  const bad = nameProblem(norm, text);
  return bad ?? { kind: 'host', name: norm };
}

function parseWildcard(text: string, norm: string): ParsedName {
  const w = (message: string, hint?: string): NameError => ({ kind: 'error', code: 'bad-wildcard', message, ...(hint ? { hint } : {}) });
  const labels = norm.split('.');
  const rest = labels.slice(1).join('.');
  if (labels[0] === '*' && labels[1] === '*' && !labels.slice(2).some((l) => l.includes('*')))
    return w(`wildcard ${quote(text)} repeats "*."`, `"*." already matches one or more labels: write "*.${labels.slice(2).join('.')}"`);
  if (labels.slice(1).some((l) => l.includes('*')))
    return w(`wildcard ${quote(text)} has a "*" after the first label`, 'a "*" may only be the whole first label, as in "*.example.com"');
  if (labels[0] === '**') return w(`wildcard ${quote(text)} uses "**"`, `"*." already matches one or more labels: write "*.${rest}"`);
  if (labels[0] !== '*') return w(`wildcard ${quote(text)} has a "*" inside a label`, 'a "*" may only be the whole first label, as in "*.example.com"');
  if (labels.length < 3)
    return w(`wildcard ${quote(text)} is too broad`, 'a wildcard needs at least two labels after "*.", as in "*.example.com"');
  const bad = nameProblem(rest, text.slice(2));
  if (bad) return { ...bad, code: 'bad-wildcard', message: `wildcard ${quote(text)}: ${bad.message}` };
  if (norm.length > MAX_NAME_LENGTH - 2) return w(`wildcard ${quote(text)} is longer than a name can be`);
  return { kind: 'wildcard', pattern: norm };
}

/** What is wrong with a name (already lowercased, trailing dot removed), or undefined. */
function nameProblem(norm: string, text: string): NameError | undefined {
  const e = (message: string, hint?: string): NameError => ({ kind: 'error', code: 'bad-hostname', message, ...(hint ? { hint } : {}) });
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(norm)) return e(`name ${quote(text)} is not ASCII`, 'write internationalized names in punycode ("xn--…"), as DNS carries them');
  if (norm.length > MAX_NAME_LENGTH) return e(`name ${quote(text)} is ${norm.length} characters; a name has at most ${MAX_NAME_LENGTH}`);
  const labels = norm.split('.');
  if (labels.some((l) => l === '')) return e(`name ${quote(text)} has an empty label`, 'labels are separated by single dots');
  const odd = labels.find((l) => !LABEL.test(l));
  if (odd !== undefined) {
    if (odd.length > 63) return e(`name ${quote(text)} has a label of ${odd.length} characters; a label has at most 63`);
    if (/^-|-$/.test(odd)) return e(`name ${quote(text)} has a label that starts or ends with "-"`);
    const ch = [...odd].find((c) => !/[a-z0-9-]/.test(c))!;
    return e(`name ${quote(text)} has the character ${quote(ch)}`, 'names are letters, digits, "-" and "." (no "_", spaces or other characters)');
  }
  if (/^\d+$/.test(labels[labels.length - 1]!)) return e(`name ${quote(text)} ends in a number`, 'did you mean an address?');
  return undefined;
}

/** Whether `name` (any case, trailing dot allowed) is covered by `pattern` (normalized, as `parseName` returns it). */
export function nameMatches(pattern: string, name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (!pattern.startsWith('*.')) return n === pattern;
  const domain = pattern.slice(1); // ".cdn.example.com"
  return n.length > domain.length && n.endsWith(domain) && !n.slice(0, -domain.length).split('.').includes('');
}

export function isWildcard(pattern: string): boolean {
  return pattern.startsWith('*.');
}

// ---- durations ------------------------------------------------------------------

const UNIT_SEC: Record<string, number> = { h: 3600, m: 60, s: 1 };

/** "60s", "2m", "1h", "1m30s" → seconds; undefined when it is not that shape. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (!/^(\d+[hms])+$/.test(t)) return undefined;
  let sec = 0;
  const seen = new Set<string>();
  for (const m of t.matchAll(/(\d+)([hms])/g)) {
    if (seen.has(m[2]!)) return undefined;
    seen.add(m[2]!);
    sec += Number(m[1]) * UNIT_SEC[m[2]!]!;
  }
  return Number.isSafeInteger(sec) ? sec : undefined;
}

export function formatDuration(sec: number): string {
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  const out = `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s ? `${s}s` : ''}`;
  return out || '0s';
}

// ---- upstream addresses -------------------------------------------------------------

export interface Endpoint {
  family: Family;
  /** Canonical address text. */
  address: string;
  port: number;
}

export type ParsedUpstream = ({ kind: 'ok' } & Endpoint) | { kind: 'error'; message: string; hint?: string };

/**
 * An upstream DNS server: "ADDR" (port 53), "IPV4:PORT" or "[IPV6]:PORT".
 * Names are refused (the forwarder cannot ask DNS where DNS is), and so are
 * loopback addresses: a resolver on this host sends its own queries to port
 * 53 again, which the interception hands back to the forwarder — a loop.
 */
export function parseUpstream(raw: string): ParsedUpstream {
  const text = raw.trim();
  let addr = text;
  let port = 53;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const v4 = /^([0-9.]+):(\d+)$/.exec(text);
  if (v6) {
    addr = v6[1]!;
    if (v6[2] !== undefined) port = Number(v6[2]);
  } else if (v4) {
    addr = v4[1]!;
    port = Number(v4[2]);
  }
  const a = parseAddress(addr);
  if (!a) {
    if (looksLikeName(text) && !text.includes(':'))
      return { kind: 'error', message: `upstream ${quote(text)} is a name, not an address`, hint: 'the forwarder cannot ask DNS where DNS is: give the server\'s address' };
    return { kind: 'error', message: `upstream ${quote(text)} is not an address`, hint: 'write "ADDR", "IPV4:PORT" or "[IPV6]:PORT", e.g. "192.0.2.53" or "[2001:db8::53]:5353"' };
  }
  if (v6 && a.family !== 'ipv6') return { kind: 'error', message: `upstream ${quote(text)}: brackets are for IPv6 addresses`, hint: `write "${addr}:${port}"` };
  if (port < 1 || port > 65535) return { kind: 'error', message: `upstream ${quote(text)} has a port out of range`, hint: 'ports are 1-65535' };
  const what = special(a.family, a.value);
  if (what === 'loopback')
    return {
      kind: 'error',
      message: `upstream ${quote(text)} is a loopback address`,
      hint: 'a resolver on this host sends its own queries to port 53, which egress hands back to the forwarder (a loop); name the servers it forwards to, or omit "upstream" (a loopback nameserver in /etc/resolv.conf is skipped)',
    };
  if (what) return { kind: 'error', message: `upstream ${quote(text)} is ${what} address`, hint: 'give the unicast address of a DNS server' };
  return { kind: 'ok', family: a.family, address: formatAddress(a.family, a.value), port };
}

/** Loopback, unspecified and multicast addresses, which can never be an upstream DNS server. */
export function special(family: Family, v: bigint): 'loopback' | 'an unspecified' | 'a multicast' | undefined {
  if (family === 'ipv4') {
    if (v >> 24n === 127n) return 'loopback';
    if (v === 0n) return 'an unspecified';
    if (v >> 28n === 0xen) return 'a multicast';
    return undefined;
  }
  if (v === 1n) return 'loopback';
  if (v === 0n) return 'an unspecified';
  if (v >> BigInt(BITS.ipv6 - 8) === 0xffn) return 'a multicast';
  // IPv4-mapped loopback (::ffff:127.0.0.0/104)
  if (v >> 32n === 0xffffn && (v & 0xffffffffn) >> 24n === 127n) return 'loopback';
  return undefined;
}

/** "192.0.2.53:53", "[2001:db8::53]:53": an endpoint as text. */
export function formatEndpoint(e: { address: string; port: number }): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

function quote(s: string): string {
  return JSON.stringify(s);
}
