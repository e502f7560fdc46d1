/**
 * Everything policy text needs to reach an nft script safely.
 *
 * nft's scanner reads a quoted string as `"[^"]*"`: there is no escape
 * sequence at all, so a `"` can never be carried, and everything else
 * (backslash, `;`, `#`, `}`, `$`) is literal inside the quotes. Identifiers
 * (`{letter}|[_.]` then `[a-zA-Z0-9/\-_.]*`) and the names we quote (owners,
 * interfaces, log prefixes) are checked against allow-lists and refused
 * otherwise; free text (comments) is made carriable instead: `"` becomes `'`,
 * control and line-break characters become spaces, invisible format
 * characters (bidi overrides, zero-width) are dropped, and the result is cut
 * to nft's 128-byte comment limit on a character boundary.
 */

/** NFTNL_UDATA_COMMENT_MAXLEN: nft refuses a comment longer than this many bytes. */
export const NFT_COMMENT_MAX_BYTES = 128;

const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;
/** Characters that are literal inside an nft quoted string and need no thought: what owner, interface and log-prefix names use. */
const QUOTABLE = /^[A-Za-z0-9 _.:=/+~@*$-]*$/;

/** A table, chain, set or counter name. Ours are built from rule names ([a-z0-9_-]) behind a letter prefix. */
export function nftIdent(s: string): string {
  if (!IDENT.test(s)) throw new Error(`not an nft identifier: ${JSON.stringify(s)}`);
  return s;
}

/** A quoted name (owner, interface, log prefix): allow-listed, never altered. */
export function nftQuote(s: string): string {
  if (!QUOTABLE.test(s)) throw new Error(`cannot quote ${JSON.stringify(s)} for nft`);
  return `"${s}"`;
}

/** Free text made carriable by an nft quoted string (see the header), without the quotes, within `maxBytes` of UTF-8. */
export function nftCommentText(s: string, maxBytes = NFT_COMMENT_MAX_BYTES): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"') out += "'";
    else if (/[\p{Cc}\p{Zl}\p{Zp}]/u.test(ch)) out += ' ';
    else if (/\p{Cf}/u.test(ch)) continue;
    else if (cp >= 0xd800 && cp <= 0xdfff) out += '\ufffd';
    else out += ch;
  }
  return truncateUtf8(out, maxBytes);
}

/** `comment "<text>"`, ready to append to a rule. */
export function nftComment(s: string): string {
  return `comment "${nftCommentText(s)}"`;
}

/**
 * Cut to at most `maxBytes` of UTF-8 without splitting a character; a cut
 * string ends in "…" so a reader knows there was more.
 */
export function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s, 'utf8') <= maxBytes) return s;
  const ellipsis = '…';
  const room = maxBytes - Buffer.byteLength(ellipsis, 'utf8');
  let out = '';
  let used = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (used + n > room) break;
    out += ch;
    used += n;
  }
  return out + ellipsis;
}
