/** Plain aligned tables for the terminal (no colour codes, so they paste cleanly). */

export interface TableOptions {
  /** Columns aligned right (numbers); never shortened to fit. */
  right?: readonly number[];
  /**
   * The terminal's width: a table wider than this has its widest text
   * columns cut, each cell that no longer fits ending in "…", the last
   * column first (it is not padded). Unset (not a terminal): never cut.
   */
  width?: number;
  /** Spaces in front of every line (counted in the width). */
  indent?: number;
}

/** The narrowest a text column is cut to. */
const MIN_COLUMN = 8;

/**
 * Column widths, and the rows with cells cut to them, so that
 * indent + columns + two spaces between them fit `width` where that can be
 * done without cutting a right-aligned column or a text one below MIN_COLUMN.
 */
export function fitColumns(headers: readonly string[], rows: readonly (readonly string[])[], o: TableOptions = {}): { widths: number[]; rows: string[][]; headers: string[] } {
  const widths = columnWidths(headers, rows, o);
  const cut = (c: string, i: number) => cutCell(c, widths[i]!);
  return { widths, headers: headers.map(cut), rows: rows.map((r) => r.map(cut)) };
}

/** Each column's width: its widest cell or header, narrowed as fitColumns says when `o.width` is set. */
function columnWidths(headers: readonly string[], rows: readonly (readonly string[])[], o: TableOptions): number[] {
  const right = o.right ?? [];
  const widths = headers.map((h) => h.length);
  for (const r of rows) for (let i = 0; i < widths.length; i++) if ((r[i] ?? '').length > widths[i]!) widths[i] = r[i]!.length;
  if (o.width !== undefined) {
    const total = () => (o.indent ?? 0) + widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1);
    const last = widths.length - 1;
    // The last column first, then the widest text column, one character at a time.
    while (total() > o.width) {
      let i = last >= 0 && !right.includes(last) && widths[last]! > MIN_COLUMN ? last : -1;
      if (i < 0) for (let j = 0; j < widths.length; j++) if (!right.includes(j) && widths[j]! > MIN_COLUMN && (i < 0 || widths[j]! > widths[i]!)) i = j;
      if (i < 0) break; // as narrow as it goes
      widths[i] = Math.max(MIN_COLUMN, widths[i]! - (total() - o.width));
    }
  }
  return widths;
}

function cutCell(c: string, width: number): string {
  return c.length > width ? `${c.slice(0, width - 1)}…` : c;
}

/** White space at the end, as trimEnd takes it off (a regular expression's \s is the same set). */
const TRAILING_SPACE = /\s$/;

/** About how many characters `writeTable` hands to `write` at a time. */
const PIECE = 64 * 1024;

/**
 * The table's text (as `table` returns it) handed to `write` in pieces of
 * about PIECE characters: a long table (explain --flows) is neither written a
 * line at a time nor held twice, as its rows and as one string.
 */
export function writeTable(write: (s: string) => void, headers: readonly string[], rows: readonly (readonly string[])[], o: TableOptions = {}): void {
  const widths = columnWidths(headers, rows, o);
  const right = widths.map((_, i) => (o.right ?? []).includes(i));
  const pad = ' '.repeat(o.indent ?? 0);
  // Padding from runs of spaces made once per length, not by padStart/padEnd per cell.
  const blanks: string[] = [];
  const blank = (n: number) => (n <= 0 ? '' : (blanks[n] ??= ' '.repeat(n)));
  const line = (cells: readonly string[]) => {
    let s = '';
    const last = cells.length - 1;
    let c = '';
    for (let i = 0; i <= last; i++) {
      const w = widths[i]!;
      c = cutCell(cells[i]!, w);
      if (i > 0) s += '  ';
      if (right[i]) s += blank(w - c.length) + c;
      else if (i === last) s += c;
      else s += c + blank(w - c.length);
    }
    // The cells end in white space only where the last one is empty or does (trimEnd would copy every line); the indent stays.
    if (last < 0 || c === '' || TRAILING_SPACE.test(c)) s = s.trimEnd();
    return (pad ? pad + s : s) + '\n';
  };
  let piece = line(headers) + line(widths.map((w) => '-'.repeat(w)));
  for (const r of rows) {
    piece += line(r);
    if (piece.length >= PIECE) {
      write(piece);
      piece = '';
    }
  }
  if (piece) write(piece);
}

export function table(headers: string[], rows: string[][], o: TableOptions = {}): string {
  const pieces: string[] = [];
  writeTable((s) => void pieces.push(s), headers, rows, o);
  return pieces.join('');
}
