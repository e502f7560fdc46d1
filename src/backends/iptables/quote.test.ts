/** iptables-restore quoting: comments are escaped for its tokenizer, names are allow-listed. */
import { describe, expect, test } from 'vitest';
import { iptChain, iptComment, iptCommentText, iptQuote, iptWord } from './quote.js';

/** iptables-restore's word splitter (xshared.c add_param_to_argv), to read back what we wrote. */
function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let open = false;
  let esc = false;
  let started = false;
  for (const ch of line) {
    if (open) {
      if (esc) (cur += ch), (esc = false);
      else if (ch === '\\') esc = true;
      else if (ch === '"') open = false;
      else cur += ch;
      continue;
    }
    if (ch === '"') (open = true), (started = true);
    else if (ch === ' ' || ch === '\t') {
      if (cur || started) out.push(cur);
      cur = '';
      started = false;
    } else cur += ch;
  }
  if (cur || started) out.push(cur);
  return out;
}

describe('iptComment', () => {
  test.each([
    ['plain', 'web traffic'],
    ['quotes and backslashes', 'a "b" \\ c \\" d'],
    ['looks like options', '-j DROP -t nat --comment x'],
    ['looks like restore syntax', 'COMMIT # *filter :X - [0:0]'],
    ['unicode', 'été 漢字 🎉'],
    ['empty', ''],
    ['trailing backslash', 'end\\'],
  ])('%s reads back as one word, unchanged', (_, text) => {
    expect(words(`-A EGRESS ${iptComment(text)} -j ACCEPT`)).toEqual(['-A', 'EGRESS', '-m', 'comment', '--comment', text, '-j', 'ACCEPT']);
  });

  test.each([
    ['line breaks and controls become spaces', 'a\nb\rc\x00d', 'a b c d'],
    ['bidi overrides are dropped', 'a\u202eb', 'ab'],
  ])('%s', (_, input, want) => expect(iptCommentText(input)).toBe(want));

  test.each([
    ['ascii', 'a'.repeat(300)],
    ['two-byte characters', 'é'.repeat(200)],
  ])('cut to 255 bytes on a character boundary: %s', (_, input) => {
    const out = iptCommentText(input);
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(255);
    expect(out.endsWith('…')).toBe(true);
    expect(input.startsWith(out.slice(0, -1))).toBe(true);
  });
});

describe('allow-lists refuse rather than alter', () => {
  test.each(['EGRESS', 'EGRESS-web', 'EGRESS-a-very-long-rule-~a91'])('chain %s', (s) => expect(iptChain(s)).toBe(s));
  test.each(['OUTPUT', 'EGRESS x', 'EGRESS-' + 'a'.repeat(30), 'EGRESS-"'])('bad chain %j', (s) => expect(() => iptChain(s)).toThrow());
  test.each(['postfix', 'eth0', 'wg+', 'veth@if2', 'machine$'])('word %s', (s) => expect(iptWord(s)).toBe(s));
  test.each(['', 'a b', 'a"b', 'a\\b', 'a\nb'])('bad word %j', (s) => expect(() => iptWord(s)).toThrow());
  test.each(['EGRESS D:smtp ', ''])('quoted %j', (s) => expect(iptQuote(s)).toBe(`"${s}"`));
  test.each(['a"b', 'a\\b'])('bad quoted %j', (s) => expect(() => iptQuote(s)).toThrow());
});
