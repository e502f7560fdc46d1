/** nft quoting: identifiers and names are allow-listed, free text is made carriable and cut on a character boundary. */
import { describe, expect, test } from 'vitest';
import { nftComment, nftCommentText, nftIdent, nftQuote, truncateUtf8 } from './quote.js';

describe('nftCommentText', () => {
  test.each([
    ['plain', 'package updates', 'package updates'],
    ['double quotes cannot be carried: they become single quotes', 'say "hi"', "say 'hi'"],
    ['backslash, semicolon, hash and brace are literal in nft strings', 'a\\b; c # d } e', 'a\\b; c # d } e'],
    ['line breaks and controls become spaces', 'a\nb\r\tc\x00d\x7fe\u0085f\u2028g', 'a b  c d e f g'],
    ['invisible format characters are dropped (bidi override, zero width)', 'ab\u202ecd\u200bef\u2066', 'abcdef'],
    ['a lone surrogate becomes U+FFFD', 'x\ud800y', 'x\ufffdy'],
    ['unicode stays', 'été 漢字 🎉', 'été 漢字 🎉'],
    ['empty', '', ''],
  ])('%s', (_, input, want) => expect(nftCommentText(input)).toBe(want));

  test.each([
    ['ascii', 'a'.repeat(200)],
    ['two-byte characters', 'é'.repeat(100)],
    ['four-byte characters', '🎉'.repeat(40)],
    ['mixed', 'a' + '漢'.repeat(60)],
  ])('cut to 128 bytes without splitting a character: %s', (_, input) => {
    const out = nftCommentText(input);
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(128);
    expect(out.endsWith('…')).toBe(true);
    expect(Buffer.from(out, 'utf8').toString('utf8')).toBe(out);
    expect(input.startsWith(out.slice(0, -1))).toBe(true);
  });

  test('exactly 128 bytes is kept whole', () => expect(nftCommentText('é'.repeat(64))).toBe('é'.repeat(64)));
  test('comment statement', () => expect(nftComment('a "b"')).toBe(`comment "a 'b'"`));
  test('truncateUtf8 leaves short text alone', () => expect(truncateUtf8('abc', 3)).toBe('abc'));
});

describe('allow-lists refuse rather than alter', () => {
  test.each(['allow_web_v4', 'deny_v6-only-block_v6', 'default_v4'])('identifier %s', (s) => expect(nftIdent(s)).toBe(s));
  test.each(['', '1abc', 'a b', 'a"b', 'a;b', 'a}b', 'é'])('bad identifier %j', (s) => expect(() => nftIdent(s)).toThrow());
  test.each([
    ['EGRESS D:smtp ', '"EGRESS D:smtp "'],
    ['wg*', '"wg*"'],
    ['machine$', '"machine$"'],
  ])('quoted name %j', (s, want) => expect(nftQuote(s)).toBe(want));
  test.each(['a"b', 'a\\b', 'a\nb', 'a;b', 'a#b'])('bad quoted name %j', (s) => expect(() => nftQuote(s)).toThrow());
});
