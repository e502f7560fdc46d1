/** Tables cut to the terminal's width: the last column first, then the widest text column, never a right-aligned one, never below 8. */
import { expect, test } from 'vitest';
import fc from 'fast-check';
import { fitColumns, table, writeTable, type TableOptions } from './table.js';

const rows = [
  ['web', 'allow', 'deb.debian.org security.debian.org 203.0.113.0/24 2001:db8::/32 and many more names and addresses'],
  ['smtp', 'deny', 'anywhere'],
];

test('without a width nothing is cut (the output of every test and pipe)', () => {
  expect(table(['rule', 'action', 'to'], rows)).toBe(
    'rule  action  to\n----  ------  ' + '-'.repeat(rows[0]![2]!.length) + '\nweb   allow   ' + rows[0]![2] + '\nsmtp  deny    anywhere\n',
  );
});

test('a width: every line fits, the long last cell ends in "…", the short ones are whole', () => {
  const t = table(['rule', 'action', 'to'], rows, { width: 40 });
  for (const l of t.trimEnd().split('\n')) expect(l.length).toBeLessThanOrEqual(40);
  expect(t).toContain('web   allow   deb.debian.org security.d…');
  expect(t).toContain('smtp  deny    anywhere');
});

test('when cutting the last column is not enough, the widest text column is cut; right-aligned ones never; 8 is the floor', () => {
  const wide = [['a'.repeat(30), '12345678901', 'b'.repeat(30)]];
  const f = fitColumns(['x', 'n', 'y'], wide, { width: 40, right: [1] });
  expect(f.widths[1]).toBe(11);
  expect(f.widths[2]).toBe(8);
  expect(f.widths.reduce((a, b) => a + b, 0) + 4).toBeLessThanOrEqual(40);
  expect(f.rows[0]![0]!.endsWith('…')).toBe(true);
  const tiny = fitColumns(['x', 'y'], [['a'.repeat(30), 'b'.repeat(30)]], { width: 5 });
  expect(tiny.widths).toEqual([8, 8]); // as narrow as it goes; the terminal wraps the rest
});

/** table() as it was before writeTable (one string, padStart/padEnd and trimEnd on every line), over fitColumns. */
function tableBefore(headers: string[], rows: string[][], o: TableOptions = {}): string {
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

test('the table written in pieces is the text it was: any cells (empty, white space at either end, too long), right-aligned columns, widths and indents', () => {
  const cell = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('', ' ', 'a ', ' a', '\t', 'x\u00a0', 'y\u3000', '…', '-'.repeat(70)));
  fc.assert(
    fc.property(
      fc.array(cell, { minLength: 1, maxLength: 5 }),
      fc.array(fc.array(cell, { maxLength: 6 }), { maxLength: 8 }),
      fc.subarray([0, 1, 2, 3, 4]),
      fc.option(fc.integer({ min: 0, max: 120 }), { nil: undefined }),
      fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }),
      (headers, rows, right, width, indent) => {
        const o: TableOptions = { right, ...(width !== undefined ? { width } : {}), ...(indent !== undefined ? { indent } : {}) };
        expect(table(headers, rows, o)).toBe(tableBefore(headers, rows, o));
        const pieces: string[] = [];
        writeTable((s) => void pieces.push(s), headers, rows, o);
        expect(pieces.join('')).toBe(tableBefore(headers, rows, o));
      },
    ),
    { numRuns: 5_000 },
  );
});

test('a long table is written in pieces, each whole lines', () => {
  const rows = Array.from({ length: 5_000 }, (_, i) => [String(i), `flow ${i} `.repeat(5), 'deny']);
  const pieces: string[] = [];
  writeTable((s) => void pieces.push(s), ['n', 'flow', 'verdict'], rows);
  expect(pieces.length).toBeGreaterThan(1);
  for (const p of pieces) expect(p.endsWith('\n')).toBe(true);
  expect(pieces.join('')).toBe(tableBefore(['n', 'flow', 'verdict'], rows));
});
