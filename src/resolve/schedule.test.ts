import { describe, expect, test } from 'vitest';
import { staticResolver } from './resolver.js';
import { TtlSchedule } from './schedule.js';

const S = 1000;

describe('TtlSchedule', () => {
  test('each name is looked up again when its own TTL runs out, bounded to [min, max]', async () => {
    const ttls: Record<string, number | undefined> = { short: 60, long: 600, tiny: 5, huge: 86_400, pinned: undefined };
    const names = Object.keys(ttls);
    const base = staticResolver(Object.fromEntries(names.map((n) => [n, { ipv4: ['192.0.2.1'] }])));
    const sched = new TtlSchedule({ min: 30, max: 3600 });
    const looked: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
    let now = 0;
    while (now <= 7200 * S) {
      const r = sched.roundResolver(base, now, async (n) => ttls[n]);
      for (const n of names) await r.lookupHost(n);
      for (const n of r.looked) looked[n]!.push(now / S);
      now = sched.nextDue(names, now);
    }
    expect(looked.tiny!.slice(0, 4)).toEqual([0, 30, 60, 90]); // below min: every 30 s
    expect(looked.short!.slice(0, 4)).toEqual([0, 60, 120, 180]);
    expect(looked.long!.slice(0, 4)).toEqual([0, 600, 1200, 1800]);
    expect(looked.huge).toEqual([0, 3600, 7200]); // above max: every hour
    expect(looked.pinned).toEqual([0, 3600, 7200]); // no TTL (an /etc/hosts pin): every hour
  });

  test('a name not due answers from the cache without a query; one that failed is tried again after min', async () => {
    let calls = 0;
    let fail = false;
    const base = { ...staticResolver({}), lookupHost: async () => {
      calls++;
      if (fail) throw new Error('SERVFAIL');
      return { ipv4: ['192.0.2.7'], ipv6: [] };
    } };
    const sched = new TtlSchedule({ min: 30, max: 3600 });
    expect(await sched.roundResolver(base, 0, async () => 300).lookupHost('m')).toEqual({ ipv4: ['192.0.2.7'], ipv6: [] });
    expect(await sched.roundResolver(base, 100 * S, async () => 300).lookupHost('m')).toEqual({ ipv4: ['192.0.2.7'], ipv6: [] });
    expect(calls).toBe(1);
    fail = true;
    await expect(sched.roundResolver(base, 300 * S, async () => 300).lookupHost('m')).rejects.toThrow('SERVFAIL');
    expect(sched.nextDue(['m'], 300 * S)).toBe(330 * S);
    fail = false;
    const r = sched.roundResolver(base, 330 * S, async () => 300);
    await r.lookupHost('m');
    expect(r.looked).toEqual(['m']);
    expect(sched.nextDue(['m'], 330 * S)).toBe(630 * S);
  });

  test('a name that never resolved waits min between tries, and answers "not resolved" meanwhile', async () => {
    let calls = 0;
    const base = { ...staticResolver({}), lookupHost: async () => { calls++; throw new Error('NXDOMAIN'); } };
    const sched = new TtlSchedule({ min: 30, max: 3600 });
    await expect(sched.roundResolver(base, 0, async () => undefined).lookupHost('gone')).rejects.toThrow('NXDOMAIN');
    expect(sched.nextDue(['gone'], 1 * S)).toBe(30 * S);
    await expect(sched.roundResolver(base, 10 * S, async () => undefined).lookupHost('gone')).rejects.toThrow('not resolved; next try in 20 s');
    expect(calls).toBe(1);
  });

  test('a name never looked up is due at once; bounds must make sense', () => {
    const sched = new TtlSchedule({ min: 30, max: 3600 });
    expect(sched.isDue('new', 5)).toBe(true);
    expect(sched.nextDue(['new'], 5)).toBe(5);
    expect(sched.nextDue([], 5)).toBe(5 + 3600 * S);
    expect(() => new TtlSchedule({ min: 0, max: 10 })).toThrow(/bad refresh bounds/);
    expect(() => new TtlSchedule({ min: 60, max: 30 })).toThrow(/bad refresh bounds/);
  });
});
