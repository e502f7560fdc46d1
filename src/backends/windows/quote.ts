/**
 * PowerShell string literals for values from the policy (rule names, reasons,
 * account names, hostnames).
 *
 * The output is always printable ASCII: a single-quoted string with every `'`
 * doubled, and any other character spelled `[char]0xHHHH` and joined with `+`,
 * e.g. `('it' + [char]0x2019 + 's')`. Two reasons:
 * - PowerShell treats the typographic quotes U+2018..U+201B as single quotes
 *   too, so a reason written with `’` would end a naively quoted string (the
 *   knftables `%q` lesson, PowerShell edition). With no such character left in
 *   the output, there is nothing to escape but `'`.
 * - Windows PowerShell 5.1 reads a `.ps1` without a BOM in the ANSI code page,
 *   so UTF-8 text arrives mangled. ASCII survives every code page.
 * Single-quoted strings do no `$` or backtick expansion, so `$(...)`, `` ` ``
 * and `"` in a reason stay plain text.
 *
 * Refused (undefined): NUL, which Windows APIs would cut the string at, and
 * lone UTF-16 surrogates, which no encoding can carry.
 */

/** PowerShell quote characters: ' and the four typographic single quotes. */
export const PS_SINGLE_QUOTES = ["'", '\u2018', '\u2019', '\u201a', '\u201b'] as const;

/** A PowerShell expression whose value is exactly `s`, or undefined when `s` cannot be carried intact. */
export function psString(s: string): string | undefined {
  const parts: string[] = [];
  let run = '';
  const flush = () => {
    if (run) parts.push(`'${run}'`);
    run = '';
  };
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x27) run += "''";
    else if (c >= 0x20 && c <= 0x7e) run += s[i];
    else if (c === 0) return undefined;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return undefined;
      flush();
      parts.push(charCode(c), charCode(d));
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return undefined;
    else {
      flush();
      parts.push(charCode(c));
    }
  }
  flush();
  if (parts.length === 0) return "''";
  if (parts.length === 1 && parts[0]!.startsWith("'")) return parts[0]!;
  // Start with a string so `+` concatenates instead of adding char codes.
  if (!parts[0]!.startsWith("'")) parts.unshift("''");
  return `(${parts.join(' + ')})`;
}

function charCode(c: number): string {
  return `[char]0x${c.toString(16).toUpperCase().padStart(4, '0')}`;
}
