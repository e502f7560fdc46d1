/**
 * Scanning helpers of the log reader's hot path: character compares and
 * bounded searches over a line given as s[a, b) of a chunk, digit runs,
 * ISO 8601 times. No regular expressions, no allocation.
 */

const enum C {
  Space = 32,
  Comma = 44,
  Dash = 45,
  Dot = 46,
  Colon = 58,
  Zero = 48,
  Nine = 57,
}

export function isDigit(c: number): boolean {
  return c >= C.Zero && c <= C.Nine;
}

/**
 * A value from a log line as a problem's reason shows it: quoted, with every
 * control character escaped — C1 ones (U+0080–U+009F, one latin1 byte each)
 * too, which JSON.stringify leaves as they are and a terminal may obey.
 */
export function quoted(s: string): string {
  // eslint-disable-next-line no-control-regex
  return JSON.stringify(s).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Whether s has `lit` at `at`: a charCode loop, which V8 inlines (startsWith with a position is a runtime call). */
export function has(s: string, at: number, lit: string): boolean {
  if (at < 0 || at + lit.length > s.length) return false;
  for (let k = 0; k < lit.length; k++) if (s.charCodeAt(at + k) !== lit.charCodeAt(k)) return false;
  return true;
}

/** Where the value starting at `from` ends: the next space, or the line's end `b`. */
export function valueEnd(s: string, b: number, from: number): number {
  const e = s.indexOf(' ', from);
  return e < 0 || e > b ? b : e;
}

/** `lit` in s[from, b), or -1. */
export function find(s: string, lit: string, from: number, b: number): number {
  const r = s.indexOf(lit, from);
  return r < 0 || r + lit.length > b ? -1 : r;
}

/** Digits of s[a, b) as a number; -1 when empty or not all digits (or longer than `most`: 10 by default, 15 for microseconds since boot). */
export function num(s: string, a: number, b: number, most = 10): number {
  if (b <= a || b - a > most) return -1;
  let v = 0;
  for (let i = a; i < b; i++) {
    const c = s.charCodeAt(i);
    if (c < C.Zero || c > C.Nine) return -1;
    v = v * 10 + (c - C.Zero);
  }
  return v;
}

/** "YYYY-MM-DDTHH:MM:SS[.frac][Z|±HH:MM|±HHMM]" in s[a, b) → ms since the epoch (no zone = local time). */
export function isoTime(s: string, a: number, b: number): number | undefined {
  const y = num(s, a, a + 4);
  const mo = num(s, a + 5, a + 7);
  const d = num(s, a + 8, a + 10);
  const sep = s.charCodeAt(a + 10);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || (sep !== 84 /* T */ && sep !== C.Space && sep !== 116)) return undefined;
  const h = num(s, a + 11, a + 13);
  const mi = num(s, a + 14, a + 16);
  const sec = num(s, a + 17, a + 19);
  if (h < 0 || mi < 0 || sec < 0 || s.charCodeAt(a + 13) !== C.Colon || s.charCodeAt(a + 16) !== C.Colon) return undefined;
  // A date and time that exist (2026-02-30 and 25:61:99 do not; Date would quietly roll them over).
  if (h > 23 || mi > 59 || sec > 60 || d > new Date(Date.UTC(y, mo, 0)).getUTCDate()) return undefined;
  let p = a + 19;
  let ms = 0;
  if (s.charCodeAt(p) === C.Dot || s.charCodeAt(p) === C.Comma) {
    let q = p + 1;
    while (q < b && isDigit(s.charCodeAt(q))) q++;
    const digits = Math.min(q - p - 1, 3);
    if (digits > 0) ms = num(s, p + 1, p + 1 + digits) * 10 ** (3 - digits);
    p = q;
  }
  if (p >= b) return new Date(y, mo - 1, d, h, mi, sec, ms).getTime();
  const z = s.charCodeAt(p);
  const utc = Date.UTC(y, mo - 1, d, h, mi, sec, ms);
  if (z === 90 /* Z */ || z === 122) return utc;
  if (z !== 43 /* + */ && z !== C.Dash) return undefined;
  const oh = num(s, p + 1, p + 3);
  const om = s.charCodeAt(p + 3) === C.Colon ? num(s, p + 4, p + 6) : p + 3 < b ? num(s, p + 3, p + 5) : 0;
  if (oh < 0 || om < 0) return undefined;
  const off = (oh * 60 + om) * 60_000;
  return z === 43 ? utc - off : utc + off;
}
