import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { L4Proto } from '../../policy/protocols.js';
import type { Interval } from '../../policy/address.js';
import { ALL_USERS, regionsOverlap, subtractRegion, subtractRegions, type L4Region, type Region, type UserRegion } from './region.js';

/** A point of the ipv4 flow space, small enough to enumerate. */
interface Point {
  dst: bigint;
  proto: L4Proto | 'icmp' | 'other';
  port: number;
  icmp: number;
  user: string;
}

function contains(r: Region, p: Point): boolean {
  if (r.dst && !r.dst.some((x) => x.lo <= p.dst && p.dst <= x.hi)) return false;
  if (r.l4 !== 'any') {
    if (p.proto === 'other') return false;
    if (p.proto === 'icmp') {
      if (r.l4.icmp !== 'any' && !r.l4.icmp.includes(p.icmp)) return false;
    } else if (!(r.l4.ports[p.proto] ?? []).some(([a, b]) => a <= p.port && p.port <= b)) return false;
  }
  if (r.users.allow !== 'all' && !r.users.allow.includes(p.user)) return false;
  return !r.users.deny.includes(p.user);
}

const USERS = ['root', 'postfix', 'www'];
const POINTS: Point[] = [];
for (const dst of [0n, 1n, 2n, 3n, 7n, 200n, 0xffffffffn])
  for (const [proto, port, icmp] of [
    ['tcp', 25, 0],
    ['tcp', 26, 0],
    ['tcp', 443, 0],
    ['udp', 53, 0],
    ['udp', 25, 0],
    ['sctp', 25, 0],
    ['icmp', 0, 8],
    ['icmp', 0, 3],
    ['other', 0, 0],
  ] as const)
    for (const user of USERS) POINTS.push({ dst, proto, port, icmp, user });

const dstArb = fc.option(
  fc.constantFrom<Interval[]>(
    [{ lo: 0n, hi: 3n }],
    [{ lo: 1n, hi: 2n }],
    [{ lo: 2n, hi: 2n }, { lo: 7n, hi: 200n }],
    [{ lo: 200n, hi: 0xffffffffn }],
  ),
  { nil: undefined },
);
const l4Arb: fc.Arbitrary<L4Region> = fc.oneof(
  fc.constant('any' as const),
  fc.record({
    ports: fc.record({ tcp: fc.constantFrom<[number, number][]>([[25, 25]], [[25, 443]], [[0, 65535]]), udp: fc.constantFrom<[number, number][]>([[53, 53]], [[0, 65535]]) }, { requiredKeys: [] }),
    icmp: fc.constantFrom<number[] | 'any'>([], [8], [3, 8], 'any'),
  }),
);
const usersArb: fc.Arbitrary<UserRegion> = fc.oneof(fc.constant(ALL_USERS), fc.constantFrom<string[]>(['postfix'], ['root', 'www']).map((allow) => ({ allow, deny: [] })));
const regionArb: fc.Arbitrary<Region> = fc.record({ dst: dstArb, l4: l4Arb, users: usersArb }).map(({ dst, l4, users }) => ({ family: 'ipv4' as const, ...(dst ? { dst } : {}), l4, users }));

describe('subtractRegion', () => {
  test('a − b holds exactly the points of a outside b, in disjoint pieces (or is refused)', () => {
    fc.assert(
      fc.property(regionArb, regionArb, (a, b) => {
        const d = subtractRegion(a, b);
        if ('inexpressible' in d) {
          // Refused only when the rest really needs "everything but": a has no port/ICMP limit where b has one.
          expect(a.l4 === 'any' || (a.l4.icmp === 'any' && b.l4 !== 'any')).toBe(true);
          return;
        }
        for (const p of POINTS) {
          const hits = d.filter((r) => contains(r, p)).length;
          expect(hits, `${p.dst} ${p.proto} ${p.port} ${p.icmp} ${p.user}`).toBe(contains(a, p) && !contains(b, p) ? 1 : 0);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('regionsOverlap agrees with the points', () => {
    fc.assert(
      fc.property(regionArb, regionArb, (a, b) => {
        const some = POINTS.some((p) => contains(a, p) && contains(b, p));
        if (some) expect(regionsOverlap(a, b)).toBe(true);
      }),
    );
  });

  test.each([
    ['deny tcp/25,465 except tcp/25', { ports: { tcp: [[25, 25], [465, 465]] }, icmp: [] }, { ports: { tcp: [[25, 25]] }, icmp: [] }, 1],
    ['deny any except tcp/443', 'any', { ports: { tcp: [[443, 443]] }, icmp: [] }, 'ports'],
    ['deny icmp any except echo-request', { ports: {}, icmp: 'any' }, { ports: {}, icmp: [8] }, 'icmp'],
  ] as [string, L4Region, L4Region, number | string][])('%s', (_n, a, b, want) => {
    const d = subtractRegion({ family: 'ipv4', l4: a, users: ALL_USERS }, { family: 'ipv4', l4: b, users: ALL_USERS });
    if (typeof want === 'string') expect(d).toEqual({ inexpressible: want });
    else expect((d as Region[]).length).toBe(want);
  });

  test('an except on users becomes a denied user', () => {
    const d = subtractRegion({ family: 'ipv4', l4: { ports: { tcp: [[25, 25]] }, icmp: [] }, users: ALL_USERS }, { family: 'ipv4', l4: 'any', users: { allow: ['postfix'], deny: [] } });
    expect(d).toEqual([{ family: 'ipv4', l4: { ports: { tcp: [[25, 25]] }, icmp: [] }, users: { allow: 'all', deny: ['postfix'] } }]);
  });

  test('a cut through hostnames is refused', () => {
    const d = subtractRegions([{ family: 'ipv4', dst: [], hosts: ['mirror.example.org'], l4: 'any', users: ALL_USERS }], [{ family: 'ipv4', dst: [{ lo: 1n, hi: 1n }], l4: 'any', users: ALL_USERS }]);
    expect(d).toEqual({ inexpressible: 'hostnames' });
  });
});
