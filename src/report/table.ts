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
  const line = (cells: readonly string[]) => {
    let s = pad;
    const last = cells.length - 1;
    for (let i = 0; i <= last; i++) {
      const c = cutCell(cells[i]!, widths[i]!);
      if (i > 0) s += '  ';
      s += right[i] ? c.padStart(widths[i]!) : i === last ? c : c.padEnd(widths[i]!);
    }
    return s.trimEnd() + '\n';
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
