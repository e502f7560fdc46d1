/**
 * Log line tags, shared by every Linux backend and by the log reader
 * (observe/). A denied packet is logged as
 *
 *     <prefix><V>:<rule> 
 *
 * where <prefix> is the policy's `log.prefix`, <V> says what happened and
 * <rule> which rule decided:
 *   D  denied by a deny rule          d  audit mode: a deny rule would deny it
 *   P  denied by the default policy   p  audit mode: the default would deny it
 *   B  DNS (53) or DoT (853) that bypassed the DNS forwarder (`dns.proxy`)
 *                                     b  audit mode: the same, let through
 *   U  a forwarded flow from no source, denied (`forward.unlisted: deny`)
 *                                     u  the same, let through (`warn`, or audit mode)
 * Forwarded packets use D/P/d/p as the host's do; their log lines carry the
 * input interface and source address (IN=, SRC=), which is how a reader tells
 * them from locally generated ones.
 * and <rule> is the rule name, or "-" for the default and for B/b. iptables caps the whole
 * prefix at 29 characters (nft at 127): a name that does not fit is cut and
 * ended with "~" plus 3 hex digits of its hash, which `matchTag` maps back
 * against the policy's rule names.
 */
export type TagVerdict = 'D' | 'P' | 'd' | 'p' | 'B' | 'b' | 'U' | 'u';

export const IPTABLES_PREFIX_MAX = 29;
export const NFT_PREFIX_MAX = 127;

export function shortHash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return (h & 0xfff).toString(16).padStart(3, '0');
}

/** The full log prefix for a verdict and rule (undefined = the default), within `max` characters. */
export function logPrefix(prefix: string, v: TagVerdict, rule: string | undefined, max: number): string {
  const name = rule ?? '-';
  const full = `${prefix}${v}:${name} `;
  if (full.length <= max) return full;
  const room = max - prefix.length - 2 /* V: */ - 1 /* space */ - 4; /* ~hhh */
  if (room < 1) throw new Error(`log prefix "${prefix}" leaves no room for the rule tag within ${max} characters`);
  return `${prefix}${v}:${name.slice(0, room)}~${shortHash(name)} `;
}

/** Map a logged (possibly cut) rule tag back to a full rule name. */
export function matchTag(tag: string, names: Iterable<string>): string | undefined {
  const cut = /^(.*)~([0-9a-f]{3})$/.exec(tag);
  for (const n of names) {
    if (!cut && n === tag) return n;
    if (cut && n.startsWith(cut[1]!) && shortHash(n) === cut[2]) return n;
  }
  return undefined;
}
