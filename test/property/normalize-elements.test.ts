/**
 * `normalizeElements` (every set listing plan and apply read) has a path for
 * listings of addresses alone that sorts positions instead of keeping a Map
 * of every element. It must give exactly what the Map-and-sort definition
 * gives: one spelling per interval, its first occurrence, sorted by family
 * and first address with ties in listing order.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { normalizeElements, normalizeMixed } from '../../src/backends/nft/parse-live.js';

/** The definition (the implementation before the fast path), which listings with anything but addresses still take. */
const reference = normalizeMixed;

// A small alphabet so that duplicates, other spellings of one interval and intervals sharing a first address are common.
const v4 = fc.integer({ min: 0, max: 7 }).map((k) => `192.0.2.${k}`);
const v6 = fc.integer({ min: 0, max: 7 }).map((k) => `2001:db8::${k.toString(16)}`);
const element = fc.oneof(
  v4,
  v6,
  fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 7 })).map(([a, b]) => `192.0.2.${Math.min(a, b)}-192.0.2.${Math.max(a, b)}`),
  fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 7 })).map(([a, b]) => `2001:db8::${Math.min(a, b)}-2001:db8::${Math.max(a, b)}`),
  fc.constantFrom('192.0.2.0/30', '192.0.2.4/30', '192.0.2.0/29', '2001:db8::/126', '2001:db8::4/126', '2001:0db8:0::1', '::ffff:192.0.2.1'),
);

describe('normalizeElements', () => {
  test('addresses alone: the same as the Map-and-sort definition', () => {
    fc.assert(
      fc.property(fc.array(element, { maxLength: 40 }), (xs) => {
        expect(normalizeElements(xs)).toEqual(reference(xs));
      }),
      { numRuns: 2000 },
    );
  });

  test('with something that is not an address in it: each spelling once, sorted by text where one side is no address', () => {
    expect(normalizeElements(['tcp . 443', '192.0.2.1', '192.0.2.1-192.0.2.1', '"x"'])).toEqual(['"x"', '192.0.2.1', 'tcp . 443']);
  });

  test('intervals that share a first address keep listing order, each spelling once', () => {
    expect(normalizeElements(['192.0.2.0-192.0.2.3', '192.0.2.0', '192.0.2.0/30', '192.0.2.0-192.0.2.0'])).toEqual(['192.0.2.0/30', '192.0.2.0']);
  });
});
