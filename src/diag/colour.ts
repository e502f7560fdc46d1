/**
 * Colour on a terminal (issue 14), for diagnostics and reports alike: plan's + and -, verdicts, errors and
 * warnings. Only where the stream is a terminal, never with NO_COLOR set
 * (https://no-color.org: present and not empty) or TERM=dumb, and never with
 * --no-color. Pure: callers say whether; nothing here looks at the process.
 *
 * Text from a policy never carries escape codes here: diagnostics and
 * reports pass it through visible() first, so only these codes reach the
 * terminal.
 */
const CODES = { green: 32, red: 31, yellow: 33, bold: 1, dim: 2 } as const;
export type Colour = keyof typeof CODES;

export function paint(on: boolean, colour: Colour, s: string): string {
  return on && s ? `\x1b[${CODES[colour]}m${s}\x1b[0m` : s;
}

/** Whether to colour a stream: a terminal, no NO_COLOR (non-empty), TERM not "dumb". */
export function colourWanted(isTty: boolean, env: Record<string, string | undefined>): boolean {
  return isTty && !env.NO_COLOR && env.TERM !== 'dumb';
}

/** Lines of an aligned table (header, rule, rows) with each row coloured by its first character: + green, - red, ~ yellow. */
export function colourDiffRows(tableText: string, on: boolean): string {
  if (!on) return tableText;
  return tableText
    .split('\n')
    .map((l, i) => (i < 2 ? l : l[0] === '+' ? paint(true, 'green', l) : l[0] === '-' ? paint(true, 'red', l) : l[0] === '~' ? paint(true, 'yellow', l) : l))
    .join('\n');
}

/** Diagnostic and message lines on standard error: the word after "FILE:LINE:COL: " or "egress: " coloured (error red, warning yellow). */
export function colourMessages(text: string, on: boolean): string {
  if (!on) return text;
  return text.replace(/^((?:[^\n:]+:\d+:\d+: |egress: ))(internal error|error|warning)(?=:)/gm, (_, head: string, word: string) => head + paint(true, word === 'warning' ? 'yellow' : 'red', word));
}

/** An explain verdict word: allow green, reject and drop red. */
export function colourVerdict(verdict: string, on: boolean): string {
  return paint(on, verdict === 'allow' || verdict === 'accept' ? 'green' : verdict === 'reject' || verdict === 'drop' || verdict === 'deny' ? 'red' : 'bold', verdict);
}

/** explain's answer text with its "  verdict: WORD" coloured. */
export function colourVerdictLine(text: string, on: boolean): string {
  return on ? text.replace(/^( {2}verdict: )(\w+)/m, (_, head: string, v: string) => head + colourVerdict(v, true)) : text;
}
