/**
 * A model of the PowerShell tokenizer for the only forms psString emits —
 * single-quoted strings (where all five single-quote characters quote, and a
 * doubled one is a literal quote), `[char]0xHHHH`, `+` and parentheses. It
 * fails on anything else, so output that strays from that grammar fails a
 * test instead of passing unread. Used by the psString property
 * (windows-quote.test.ts) and the hostile-strings campaign.
 */
import { PS_SINGLE_QUOTES } from '../../src/backends/windows/quote.js';

const isQuote = (c: string | undefined) => c !== undefined && (PS_SINGLE_QUOTES as readonly string[]).includes(c);

/** Evaluate a psString expression the way PowerShell would; throws on anything outside the grammar. */
export function evalPs(src: string): string {
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`${why} at ${i} in ${JSON.stringify(src)}`);
  };
  const single = (): string => {
    if (!isQuote(src[i])) fail('expected a quote');
    i++;
    let out = '';
    for (;;) {
      if (i >= src.length) fail('unterminated string');
      const c = src[i]!;
      if (isQuote(c)) {
        if (isQuote(src[i + 1])) {
          out += src[i + 1];
          i += 2;
          continue;
        }
        i++;
        return out;
      }
      out += c;
      i++;
    }
  };
  const term = (): string => {
    if (isQuote(src[i])) return single();
    const m = /^\[char\]0x([0-9A-F]{4})/.exec(src.slice(i));
    if (!m) return fail('expected a string or [char]');
    i += m[0].length;
    return String.fromCharCode(parseInt(m[1]!, 16));
  };
  let value: string;
  if (src[i] === '(') {
    i++;
    value = term();
    while (src.startsWith(' + ', i)) {
      i += 3;
      value += term();
    }
    if (src[i] !== ')') fail('expected )');
    i++;
  } else value = single();
  if (i !== src.length) fail('trailing text');
  return value;
}

