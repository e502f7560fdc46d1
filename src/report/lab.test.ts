/** lab's "not probed" lines: grouped by rule and reason, a few entries each, every one with -v. */
import { expect, test } from 'vitest';
import { NOT_PROBED_SHOWN, notProbedLines } from './lab.js';

const outside = (n: number) => Array.from({ length: n }, (_, i) => ({ rule: 'mirrors', what: `10.0.${i >> 8}.${i & 255}`, why: 'outside documentation ranges' }));

test('10,000 entries of one rule and reason are one line: the first few and how many more', () => {
  const lines = notProbedLines({ notProbed: [...outside(10_000), { rule: 'metadata', what: 'fd00:ec2::254', why: 'outside documentation ranges' }] });
  expect(lines).toEqual([
    `  rule "mirrors": 10.0.0.0, 10.0.0.1, 10.0.0.2 and ${(10_000 - NOT_PROBED_SHOWN).toLocaleString('en-US')} more (10,000 in all): outside documentation ranges`,
    '  rule "metadata": fd00:ec2::254: outside documentation ranges',
  ]);
});

test('a group of up to one more than shown is listed whole (no "and 1 more"); different reasons are different groups; -v lists each', () => {
  const few = outside(NOT_PROBED_SHOWN + 1);
  expect(notProbedLines({ notProbed: few })).toHaveLength(NOT_PROBED_SHOWN + 1);
  const mixed = [...outside(5), { rule: 'mirrors', what: 'udp/123', why: 'NTP is not probed' }];
  expect(notProbedLines({ notProbed: mixed })).toEqual([
    '  rule "mirrors": 10.0.0.0, 10.0.0.1, 10.0.0.2 and 2 more (5 in all): outside documentation ranges',
    '  rule "mirrors": udp/123: NTP is not probed',
  ]);
  expect(notProbedLines({ notProbed: mixed }, { verbose: true })).toHaveLength(6);
});
