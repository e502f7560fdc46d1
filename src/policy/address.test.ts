import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { formatAddress, intervalsContain, intervalsCover, intervalToCidrs, mergeIntervals, parseAddress, parseDest, specialPurpose, type Interval } from './address.js';

describe('parseDest', () => {
  test.each([
    ['192.0.2.1', { kind: 'addr', family: 'ipv4', lo: 0xc0000201n, hi: 0xc0000201n }],
    ['192.0.2.0/24', { kind: 'addr', family: 'ipv4', lo: 0xc0000200n, hi: 0xc00002ffn }],
    ['192.0.2.1/24', { kind: 'addr', hostBitsFix: '192.0.2.0/24' }],
    ['192.0.2.10-192.0.2.20', { kind: 'addr', lo: 0xc000020an, hi: 0xc0000214n }],
    ['2001:db8::/32', { kind: 'addr', family: 'ipv6' }],
    ['::ffff:192.0.2.1', { kind: 'addr', family: 'ipv6' }],
    ['security.ubuntu.com', { kind: 'host', name: 'security.ubuntu.com' }],
    ['Mirror.Example.ORG.', { kind: 'host', name: 'mirror.example.org' }],
    ['$mirrors', { kind: 'set', name: 'mirrors' }],
    ['10.0.0.256', { kind: 'error' }],
    ['010.0.0.1', { kind: 'error' }],
    ['0x0a.0.0.1', { kind: 'error' }],
    ['10.1', { kind: 'error' }],
    ['fe80::1%eth0', { kind: 'error' }],
    ['a_b.example', { kind: 'error' }],
  ])('%s', (text, want) => {
    expect(parseDest(text)).toMatchObject(want);
  });
});

describe('intervals', () => {
  const iv = fc.tuple(fc.bigInt(0n, 300n), fc.bigInt(0n, 40n)).map(([lo, w]): Interval => ({ lo, hi: lo + w }));

  test('merging preserves membership and yields sorted, disjoint, non-adjacent intervals', () => {
    fc.assert(
      fc.property(fc.array(iv, { maxLength: 12 }), fc.bigInt(0n, 360n), (xs, v) => {
        const m = mergeIntervals(xs);
        expect(intervalsContain(m, v)).toBe(xs.some((x) => x.lo <= v && v <= x.hi));
        for (let i = 1; i < m.length; i++) expect(m[i]!.lo > m[i - 1]!.hi + 1n).toBe(true);
      }),
    );
  });

  test('cover agrees with membership', () => {
    fc.assert(
      fc.property(fc.array(iv, { maxLength: 6 }), fc.array(iv, { maxLength: 6 }), (a, b) => {
        const [ma, mb] = [mergeIntervals(a), mergeIntervals(b)];
        let every = true;
        for (const x of mb) for (let v = x.lo; v <= x.hi; v++) if (!intervalsContain(ma, v)) every = false;
        expect(intervalsCover(ma, mb)).toBe(every);
      }),
    );
  });

  test('an interval splits into CIDRs that cover exactly it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 70000 }), (lo, w) => {
        const x = { lo: BigInt(lo), hi: BigInt(Math.min(lo + w, 2 ** 32 - 1)) };
        let next = x.lo;
        for (const c of intervalToCidrs('ipv4', x)) {
          const p = parseDest(c);
          if (p.kind !== 'addr') throw new Error(c);
          expect(p.lo).toBe(next);
          next = p.hi + 1n;
        }
        expect(next).toBe(x.hi + 1n);
      }),
    );
  });

  test('format/parse round trip', () => {
    fc.assert(
      fc.property(fc.bigInt(0n, (1n << 128n) - 1n), (v) => {
        expect(parseAddress(formatAddress('ipv6', v))).toEqual({ family: 'ipv6', value: v });
      }),
    );
  });
});

describe('specialPurpose (its quick rule-out agrees with the ranges)', () => {
  test.each([
    ['0.0.0.0', true],
    ['127.0.0.1', true],
    ['169.254.169.254', true],
    ['169.1.1.1', false],
    ['223.255.255.255', false],
    ['224.0.0.1', true],
    ['255.255.255.255', true],
    ['198.51.100.1', false],
    ['::', true],
    ['::1', true],
    ['0:0:0:0:0:0:0:1', true],
    ['::ffff:198.51.100.9', true],
    ['fe80::1', true],
    ['FEBF::1', true],
    ['fec0::1', false],
    ['ff02::1', true],
    ['2001:db8::1', false],
  ])('%s → special: %s', (a, special) => {
    expect(specialPurpose(a) !== undefined).toBe(special);
  });
});
