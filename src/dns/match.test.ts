import { describe, expect, test } from 'vitest';
import { NameTable, normaliseName, parsePattern, PatternError } from './match.js';
import type { DnsName } from './types.js';

const allow = (pattern: string, rule = pattern.replace(/[^a-z0-9]+/g, '-').slice(0, 32)): DnsName => ({ pattern, action: 'allow', rule, sets: { ipv4: `${rule}_4`, ipv6: `${rule}_6` } });
const deny = (pattern: string, rule: string): DnsName => ({ pattern, action: 'deny', rule, sets: {} });

const table = new NameTable([
  allow('deb.debian.org', 'mirror'),
  allow('*.cdn.example.com', 'cdn'),
  allow('a.cdn.example.com', 'a-exact'),
  allow('*.example.com', 'example'),
  deny('*.evil.example.com', 'no-evil'),
  allow('_dmarc.example.org', 'underscore'),
]);

const rules = (name: string) => {
  const j = table.judge(name);
  return { allow: j.allow.map((n) => n.rule).sort(), deny: j.deny.map((n) => n.rule).sort() };
};

describe('name table', () => {
  test.each([
    // exact
    ['deb.debian.org', ['mirror'], []],
    ['x.deb.debian.org', [], []],
    ['debian.org', [], []],
    // wildcard depth 1..3, never the bare domain
    ['x.cdn.example.com', ['cdn', 'example'], []],
    ['y.x.cdn.example.com', ['cdn', 'example'], []],
    ['z.y.x.cdn.example.com', ['cdn', 'example'], []],
    ['cdn.example.com', ['example'], []],
    ['example.com', [], []],
    ['com', [], []],
    // several rules at once: exact and two wildcards
    ['a.cdn.example.com', ['a-exact', 'cdn', 'example'], []],
    // deny wins over allow, but both are reported
    ['x.evil.example.com', ['example'], ['no-evil']],
    ['evil.example.com', ['example'], []],
    // case and the trailing dot
    ['DEB.Debian.ORG.', ['mirror'], []],
    ['X.CDN.example.com', ['cdn', 'example'], []],
    // underscores are plain labels
    ['_dmarc.example.org', ['underscore'], []],
    // odd names never publish; a deny wildcard above them still refuses
    ['deb.debian.org..', [], []],
    ['de b.debian.org', [], []],
    ['déb.debian.org', [], []],
    ['x*.cdn.example.com', [], []],
    ['*.cdn.example.com', [], []],
    ['a\u0000.evil.example.com', [], ['no-evil']],
    ['', [], []],
    ['.', [], []],
  ])('%j → allow %j deny %j', (name, a, d) => {
    expect(rules(name)).toEqual({ allow: a, deny: d });
  });

  test('labels come from the wire: a label holding a dot is one odd label, not two', () => {
    // "deb.debian" as ONE label followed by "org" must not match deb.debian.org
    expect(table.judgeLabels(['deb.debian', 'org'])).toEqual({ allow: [], deny: [] });
    // and an odd label under a wildcard publishes nothing
    expect(table.judgeLabels(['a.b', 'cdn', 'example', 'com']).allow).toEqual([]);
    expect(table.judgeLabels(['x', 'CDN', 'Example', 'COM']).allow.map((n) => n.rule).sort()).toEqual(['cdn', 'example']);
    // only ASCII folds: the Kelvin sign is not k
    expect(table.judgeLabels(['\u212Aa', 'cdn', 'example', 'com']).allow).toEqual([]);
  });

  test('thousands of patterns: lookups stay suffix probes', () => {
    const names: DnsName[] = [];
    for (let i = 0; i < 20_000; i++) names.push(allow(i % 2 ? `*.d${i}.example.net` : `h${i}.example.net`, `r${i}`));
    const big = new NameTable(names);
    expect(big.size).toBe(20_000);
    expect(big.judge('h19998.example.net').allow.map((n) => n.rule)).toEqual(['r19998']);
    expect(big.judge('a.b.d19999.example.net').allow.map((n) => n.rule)).toEqual(['r19999']);
    expect(big.judge('d19999.example.net').allow).toEqual([]);
    expect(big.judge('h19999.example.net').allow).toEqual([]);
  });
});

describe('normaliseName', () => {
  test.each([
    ['Deb.Debian.Org.', 'deb.debian.org'],
    ['deb.debian.org', 'deb.debian.org'],
    ['deb..org', undefined],
    ['.', undefined],
    ['', undefined],
    ['a b.org', undefined],
    ['ü.org', undefined],
    [`${'a'.repeat(64)}.org`, undefined],
    [`${'a'.repeat(63)}.org`, `${'a'.repeat(63)}.org`],
    [Array(130).fill('a').join('.'), undefined],
  ])('%j → %j', (text, want) => expect(normaliseName(text)).toBe(want));
});

describe('parsePattern', () => {
  test.each([
    ['deb.debian.org', { wildcard: false, domain: 'deb.debian.org' }],
    ['*.cdn.example.com', { wildcard: true, domain: 'cdn.example.com' }],
    ['*.com', { wildcard: true, domain: 'com' }],
  ])('%s', (p, want) => expect(parsePattern(p)).toEqual(want));

  test.each(['*', '*.', 'a.*.example.com', '**.example.com', 'Deb.debian.org', 'deb.debian.org.', 'x*.example.com', 'a..b', ''])('refuses %j', (p) => {
    expect(() => parsePattern(p)).toThrow(PatternError);
  });
});
