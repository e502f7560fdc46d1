import { describe, expect, test } from 'vitest';
import { emptyDnsCounts, type NameRecord } from '../logs/dns-log.js';
import { NameIndex, NameStatsBuilder, siblingWildcards } from './names.js';

const T0 = Date.parse('2026-11-29T03:00:00Z');
const rec = (r: Partial<NameRecord> & Pick<NameRecord, 'kind' | 'name'>): NameRecord => ({ qtype: 'A', addresses: [], rules: [], proto: 'udp', time: T0, ...r });

describe('NameStatsBuilder', () => {
  test('answers per name, the rules that published it, distinct addresses, users; refused names apart', () => {
    const b = new NameStatsBuilder();
    b.add(rec({ kind: 'publish', name: 'deb.debian.org', rules: ['mirror'], addresses: ['192.0.2.14'], uid: 0 }));
    b.add(rec({ kind: 'publish', name: 'deb.debian.org', rules: ['mirror'], addresses: ['192.0.2.15'], uid: 33, time: T0 + 5000 }));
    b.add(rec({ kind: 'publish', name: 'deb.debian.org', rules: ['mirror'], addresses: ['192.0.2.14'], uid: 33 }));
    b.add(rec({ kind: 'answer', name: 'www.example.org', addresses: ['198.51.100.7'] }));
    b.add(rec({ kind: 'refused', name: 'evil.test', rules: ['no-evil'], uid: 1001 }));
    b.add(rec({ kind: 'refused', name: 'evil.test', rules: ['no-evil'], uid: 1001 }));
    const s = b.finish(emptyDnsCounts(), 10, new Map([[33, 'www-data']]));
    expect(s).toMatchObject({ names: 2, answers: 4, refusedNames: 1, refusals: 2 });
    expect(s.top).toEqual([
      { name: 'deb.debian.org', answers: 3, published: 3, refused: 0, rules: ['mirror'], addresses: 2, users: [{ uid: 33, user: 'www-data', answers: 2 }, { uid: 0, answers: 1 }], unknownUser: 0, first: T0, last: T0 + 5000 },
      { name: 'www.example.org', answers: 1, published: 0, refused: 0, rules: [], addresses: 1, users: [], unknownUser: 1, first: T0, last: T0 },
    ]);
    expect(s.refused).toMatchObject([{ name: 'evil.test', refused: 2, rules: ['no-evil'], users: [{ uid: 1001, answers: 2 }] }]);
  });
});

describe('NameIndex', () => {
  const idx = new NameIndex({ graceSec: 60, minLifetimeSec: 10 });
  idx.add(rec({ kind: 'answer', name: 'a.example.org', addresses: ['198.51.100.7'], ttl: 30, uid: 1000 }));
  idx.add(rec({ kind: 'answer', name: 'b.example.org', addresses: ['198.51.100.7'], ttl: 30, uid: 2000, time: T0 + 10_000 }));
  idx.add(rec({ kind: 'publish', name: 'deb.debian.org', addresses: ['192.0.2.14'], ttl: 5, lifetime: 65 }));
  idx.add(rec({ kind: 'refused', name: 'evil.test', addresses: [] }));

  test('within the answer’s lifetime (TTL + grace for a forwarded answer, the published lifetime else)', () => {
    expect(idx.lookup('198.51.100.7', T0 + 5_000, undefined)).toEqual({ name: 'a.example.org', sameUser: false });
    expect(idx.lookup('198.51.100.7', T0 + 89_000, undefined)).toEqual({ name: 'b.example.org', sameUser: false }); // both alive: the latest
    expect(idx.lookup('198.51.100.7', T0 + 91_000, undefined)).toEqual({ name: 'b.example.org', sameUser: false });
    expect(idx.lookup('198.51.100.7', T0 + 101_000, undefined)).toBeUndefined();
    expect(idx.lookup('192.0.2.14', T0 + 65_000, undefined)).toEqual({ name: 'deb.debian.org', sameUser: false });
    expect(idx.lookup('192.0.2.14', T0 + 66_000, undefined)).toBeUndefined();
  });

  test('never before the answer (one second of slack for whole-second log stamps)', () => {
    expect(idx.lookup('198.51.100.7', T0 - 1000, undefined)).toEqual({ name: 'a.example.org', sameUser: false });
    expect(idx.lookup('198.51.100.7', T0 - 2000, undefined)).toBeUndefined();
  });

  test('the answer to the same user wins over a later one to another', () => {
    expect(idx.lookup('198.51.100.7', T0 + 20_000, 1000)).toEqual({ name: 'a.example.org', sameUser: true });
    expect(idx.lookup('198.51.100.7', T0 + 20_000, 2000)).toEqual({ name: 'b.example.org', sameUser: true });
    expect(idx.lookup('198.51.100.7', T0 + 20_000, 3000)).toEqual({ name: 'b.example.org', sameUser: false });
  });
});

describe('siblingWildcards', () => {
  test('three names under one domain, directly or deeper → its wildcard; the deepest crowded domain first', () => {
    expect(siblingWildcards(['a.cdn.example.com', 'b.cdn.example.com', 'x.y.cdn.example.com', 'www.example.com', 'api.other.org'])).toEqual(
      new Map([['*.cdn.example.com', ['a.cdn.example.com', 'b.cdn.example.com', 'x.y.cdn.example.com']]]),
    );
    expect(siblingWildcards(['a.cdn.example.com', 'b.cdn.example.com', 'www.example.com'])).toEqual(new Map([['*.example.com', ['a.cdn.example.com', 'b.cdn.example.com', 'www.example.com']]]));
  });

  test('two are not many', () => {
    expect(siblingWildcards(['a.cdn.example.com', 'b.cdn.example.com'])).toEqual(new Map());
  });

  test('never over a one-label domain or a co.uk-like one', () => {
    expect(siblingWildcards(['example.com', 'other.com', 'third.com'])).toEqual(new Map());
    expect(siblingWildcards(['a.co.uk', 'b.co.uk', 'c.co.uk'])).toEqual(new Map());
    expect(siblingWildcards(['www.a.co.uk', 'api.a.co.uk', 'cdn.a.co.uk'])).toEqual(new Map([['*.a.co.uk', ['api.a.co.uk', 'cdn.a.co.uk', 'www.a.co.uk']]]));
  });
});
