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
  const right = o.right ?? [];
  const widths = headers.map((h, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? '').length), h.length));
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
  const cut = (c: string, i: number) => (c.length > widths[i]! ? `${c.slice(0, widths[i]! - 1)}…` : c);
  return { widths, headers: headers.map(cut), rows: rows.map((r) => r.map(cut)) };
}

export function table(headers: string[], rows: string[][], o: TableOptions = {}): string {
  const fit = fitColumns(headers, rows, o);
  const right = o.right ?? [];
  const pad = ' '.repeat(o.indent ?? 0);
  const line = (cells: string[]) =>
    pad +
    cells
      .map((c, i) => (i === cells.length - 1 && !right.includes(i) ? c : right.includes(i) ? c.padStart(fit.widths[i]!) : c.padEnd(fit.widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(fit.headers), line(fit.widths.map((w) => '-'.repeat(w))), ...fit.rows.map(line)].join('\n') + '\n';
}
