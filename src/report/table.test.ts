/** Tables cut to the terminal's width: the last column first, then the widest text column, never a right-aligned one, never below 8. */
import { expect, test } from 'vitest';
import { fitColumns, table } from './table.js';

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
