/**
 * Everything policy text needs to reach iptables-restore input safely.
 *
 * iptables-restore splits a rule line into words itself (xshared.c
 * `add_param_to_argv`): blanks separate words, a `"` opens or closes a quoted
 * part, and inside quotes a backslash takes the next character literally. No
 * shell is involved, and a line ends the rule. So free text (comments) is
 * always double-quoted with `\` and `"` escaped; characters that would end or
 * bend the line (control and line-break characters) become spaces; invisible
 * format characters (bidi overrides, zero-width) are dropped; and the text is
 * cut to the comment match's 255 bytes on a character boundary (the kernel
 * cuts at 255 bytes blindly, splitting UTF-8). Names (chains, owners,
 * interfaces, log prefixes) are checked against allow-lists and refused
 * otherwise.
 */
import { truncateUtf8 } from '../nft/quote.js';

/** XT_MAX_COMMENT_LEN (256) less the terminating NUL. */
export const IPT_COMMENT_MAX_BYTES = 255;
/** XT_EXTENSION_MAXNAMELEN (29) less the NUL: the longest chain name. */
export const IPT_CHAIN_MAX = 28;

const CHAIN = /^EGRESS[A-Za-z0-9_~-]*$/;
const WORD = /^[A-Za-z0-9_.:@$+-]+$/;
const QUOTABLE = /^[A-Za-z0-9 _.:=/+~-]*$/;

/** One of our chain names: starts with EGRESS, fits, needs no quoting. */
export function iptChain(s: string): string {
  if (!CHAIN.test(s) || s.length > IPT_CHAIN_MAX) throw new Error(`not an egress chain name: ${JSON.stringify(s)}`);
  return s;
}

/** A bare word (owner name, interface): allow-listed, never altered. */
export function iptWord(s: string): string {
  if (!WORD.test(s)) throw new Error(`cannot pass ${JSON.stringify(s)} to iptables-restore as a word`);
  return s;
}

/** A quoted name (log prefix, which may end in a space): allow-listed, never altered. */
export function iptQuote(s: string): string {
  if (!QUOTABLE.test(s)) throw new Error(`cannot quote ${JSON.stringify(s)} for iptables-restore`);
  return `"${s}"`;
}

/** Free text as the comment match will store it (see the header), before quoting. */
export function iptCommentText(s: string, maxBytes = IPT_COMMENT_MAX_BYTES): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (/[\p{Cc}\p{Zl}\p{Zp}]/u.test(ch)) out += ' ';
    else if (/\p{Cf}/u.test(ch)) continue;
    else if (cp >= 0xd800 && cp <= 0xdfff) out += '\ufffd';
    else out += ch;
  }
  return truncateUtf8(out, maxBytes);
}

/** `-m comment --comment "<text>"`, quoted for iptables-restore's tokenizer. */
export function iptComment(s: string): string {
  return `-m comment --comment "${iptCommentText(s).replace(/["\\]/g, (c) => '\\' + c)}"`;
}
