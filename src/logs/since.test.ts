import { expect, test } from 'vitest';
import { parseSince } from './since.js';
import { NOW } from '../../test/helpers.js';

test.each([
  ['2h', NOW.getTime() - 2 * 3_600_000],
  ['7d', NOW.getTime() - 7 * 86_400_000],
  ['2026-05-30', new Date(2026, 4, 30).getTime()],
  ['2026-05-30T10:00', new Date(2026, 4, 30, 10).getTime()],
  ['2026-05-30 10:00:30Z', Date.UTC(2026, 4, 30, 10, 0, 30)],
  [
    'yesterday',
    (() => {
      const d = new Date(NOW);
      d.setHours(0, 0, 0, 0);
      d.setDate(d.getDate() - 1);
      return d.getTime();
    })(),
  ],
  ['2026-02-30', undefined],
  ['soon', undefined],
])('--since %s', (v, want) => {
  expect(parseSince(v, NOW)).toBe(want);
});
