/**
 * Which policy names a DNS query name falls under.
 *
 * Patterns are exact ("deb.debian.org") or wildcards ("*.cdn.example.com":
 * one or more labels before cdn.example.com, never the bare domain). A query
 * name may match several patterns: the answer is published into every
 * matching allow rule's sets, and any matching deny rule makes it REFUSED.
 *
 * Query names are compared label by label, as they come off the wire, so a
 * label that contains a dot or any byte outside [A-Za-z0-9_-] can never be
 * mistaken for two labels. Such an "odd" name never publishes (no allow
 * match), but a deny wildcard above it still refuses it: "\0x.evil.com" is
 * refused by "*.evil.com". DNS compares names ASCII-case-insensitively, so
 * only A–Z are folded.
 *
 * Lookups walk the name's suffixes in two maps (exact, wildcard): at most one
 * probe per label, whatever the number of patterns.
 */
import type { DnsName } from './types.js';

const LABEL = /^[a-z0-9_-]{1,63}$/;
const MAX_NAME = 253;

/** ASCII-only lowercase (DNS case-insensitivity, RFC 4343): other bytes are left as they are. */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

export function isPlainLabel(label: string): boolean {
  return LABEL.test(label);
}

/**
 * A name typed as text (or from a log), normalised: ASCII lowercase, one
 * trailing dot stripped. Undefined when it is not a plain hostname (empty
 * labels, odd characters, too long): such text is never a policy name.
 */
export function normaliseName(text: string): string | undefined {
  let s = asciiLower(text);
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (!s || s.length > MAX_NAME) return undefined;
  const labels = s.split('.');
  return labels.every(isPlainLabel) ? s : undefined;
}

export class PatternError extends Error {}

export interface ParsedPattern {
  wildcard: boolean;
  /** The exact name, or the domain under a wildcard ("cdn.example.com" for "*.cdn.example.com"). */
  domain: string;
}

/** Parse one policy pattern; throws `PatternError` for anything but an exact name or a leading "*." wildcard. */
export function parsePattern(pattern: string): ParsedPattern {
  const wildcard = pattern.startsWith('*.');
  const domain = wildcard ? pattern.slice(2) : pattern;
  if (domain !== normaliseName(domain) || domain.includes('*'))
    throw new PatternError(`"${pattern}" is not a lowercase hostname or "*." followed by one (no trailing dot, labels of a-z 0-9 _ -)`);
  return { wildcard, domain };
}

export interface Judgement {
  /** Allow entries whose pattern matches (empty for an odd name). */
  allow: DnsName[];
  /** Deny entries whose pattern matches: any one makes the answer REFUSED. */
  deny: DnsName[];
}

const NONE: Judgement = Object.freeze({ allow: [], deny: [] }) as unknown as Judgement;

/** The policy's names, indexed for suffix lookups. */
export class NameTable {
  private readonly exact = new Map<string, DnsName[]>();
  private readonly wild = new Map<string, DnsName[]>();
  readonly size: number;

  constructor(names: readonly DnsName[]) {
    for (const n of names) {
      const p = parsePattern(n.pattern);
      const m = p.wildcard ? this.wild : this.exact;
      const list = m.get(p.domain);
      if (list) list.push(n);
      else m.set(p.domain, [n]);
    }
    this.size = names.length;
  }

  /**
   * Judge a query name given as its wire labels (left to right, as decoded
   * bytes in latin1, case as received).
   */
  judgeLabels(raw: readonly string[]): Judgement {
    if (!raw.length || (!this.exact.size && !this.wild.size)) return NONE;
    let allow: DnsName[] | undefined;
    let deny: DnsName[] | undefined;
    let odd = false;
    const add = (hits: DnsName[] | undefined) => {
      if (!hits) return;
      for (const h of hits) {
        if (h.action === 'deny') (deny ??= []).push(h);
        else (allow ??= []).push(h);
      }
    };
    let key = '';
    for (let k = raw.length - 1; k >= 0; k--) {
      const label = asciiLower(raw[k]!);
      if (!isPlainLabel(label)) {
        // Nothing at or left of an odd label can equal a pattern; wildcards to its right already matched.
        odd = true;
        break;
      }
      key = key ? `${label}.${key}` : label;
      if (key.length > MAX_NAME) break;
      if (k >= 1) add(this.wild.get(key));
      else add(this.exact.get(key));
    }
    if (!allow && !deny) return NONE;
    return { allow: odd ? [] : (allow ?? []), deny: deny ?? [] };
  }

  /** Judge a name given as text ("Deb.Debian.org."): split on dots, then as `judgeLabels`. */
  judge(name: string): Judgement {
    const s = name.endsWith('.') ? name.slice(0, -1) : name;
    return s ? this.judgeLabels(s.split('.')) : NONE;
  }
}
