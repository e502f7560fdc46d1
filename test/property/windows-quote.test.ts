/**
 * B4 for the windows target: any reason, rule or account name goes through
 * psString and comes back intact when PowerShell reads it, and can never end
 * the literal early. `evalPs` models the PowerShell tokenizer for the only
 * forms psString emits — single-quoted strings (where all five single-quote
 * characters quote, and a doubled one is a literal quote), `[char]0xHHHH`,
 * `+` and parentheses — and fails on anything else, so output that strays
 * from that grammar fails the test instead of passing unread.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { psString } from '../../src/backends/windows/quote.js';
import { evalPs } from './ps-eval.js';
import { examples, type Example } from './gen.js';

/** Strings that lean on every quoting hazard: all PowerShell quote forms, `$`, backtick, newlines, astral characters. */
const hostile = fc
  .array(
    fc.oneof(
      fc.constantFrom("'", '\u2018', '\u2019', '\u201a', '\u201b', '"', '\u201c', '\u201d', '`', '$(', '${x}', '@"', '"@', '\n', '\r\n', '#', ';', '|', '\u00a0', '\u2028', '\u{1F600}'),
      fc.string({ unit: 'binary', maxLength: 4 }),
      fc.string({ maxLength: 6 }),
    ),
    { maxLength: 12 },
  )
  .map((xs) => xs.join(''));

/** Shrunk counterexamples (see gen.ts `Example`), for strings without NUL or lone surrogates. */
const CARRIED: Example<[string]>[] = [
  // Caught: psString not doubling a single quote, which then ended the string.
  { name: 'a single quote', args: ["'"] },
  // Caught: psString passing U+2019 through, which PowerShell also takes as a single quote.
  { name: 'a typographic single quote', args: ['\u2019'] },
  // Caught, by this example only: psString letting DEL (0x7f, the first character past
  // printable ASCII) through raw; 2000 random runs did not produce it.
  { name: 'DEL', args: ['\x7f'] },
  // Exercises: what a double-quoted or here-string would expand, and a line break.
  { name: 'expansion characters', args: ['$(x) ${y} `n @"\r\n"@'] },
];

/** Shrunk counterexamples for arbitrary UTF-16. */
const UTF16: Example<[string]>[] = [
  // Caught: psString pairing a high surrogate with whatever followed it instead of refusing the string.
  { name: 'a lone high surrogate', args: ['\ud800'] },
  // Exercises: a low surrogate before its high one (two lone halves), and a well-formed pair.
  { name: 'surrogates in the wrong order, then a pair', args: ['\udc00\ud800\ud83d\ude00'] },
];

describe('psString property', () => {
  test('round-trips every string without NUL or lone surrogates, as printable ASCII', () => {
    fc.assert(
      fc.property(hostile, (s) => {
        const q = psString(s);
        if (s.includes('\0')) {
          expect(q).toBeUndefined();
          return;
        }
        expect(q).toBeDefined();
        expect(q).toMatch(/^[\x20-\x7e]+$/);
        expect(evalPs(q!)).toBe(s);
      }),
      { numRuns: 2000, examples: examples(CARRIED) },
    );
  });

  /** `String.prototype.isWellFormed` (Node >= 20) on Node 18: a string with a lone surrogate does not survive a UTF-8 round trip. */
  const isWellFormed = (s: string): boolean => Buffer.from(s, 'utf8').toString('utf8') === s;

  test('arbitrary UTF-16 (lone surrogates included) is either carried intact or refused', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 16 }), (s) => {
        const q = psString(s);
        if (q === undefined) expect(s.includes('\0') || !isWellFormed(s)).toBe(true);
        else expect(evalPs(q)).toBe(s);
      }),
      { numRuns: 2000, examples: examples(UTF16) },
    );
  });

  test('the model is strict: a typographic quote in the output would end the string', () => {
    expect(() => evalPs("'it\u2019s'")).toThrow(/trailing text/);
    expect(evalPs("'it\u2019\u2019s'")).toBe('it\u2019s');
  });
});
