/**
 * The DNS forwarder's nft writer against the real nft and kernel, in a
 * namespace each test creates and deletes: a confirmed publish is in the set
 * (read back with `nft list set`), re-adds refresh the timeout on both
 * paths, the expiry the writer remembers is never later than the kernel's,
 * the forwarder answers without holding only what the kernel already has, refusals fail only their own publish, and a killed nft child fails
 * what was pending and is replaced.
 */
import { expect, test } from 'vitest';
import { realExecer } from '../../src/kernel/exec.js';
import { createNetns, netnsName, uniqueTag } from '../../src/kernel/netns.js';
import { NftWriter, type WriterEvent } from '../../src/dns/nft-writer.js';
import type { Element } from '../../src/dns/types.js';
import { mustRun } from '../../src/kernel/where.js';
import { kernelDescribe, useRootGuard } from './harness.js';
import { Forwarder } from '../../src/dns/forwarder.js';
import { aaaa, addressesOf, askUdp, FakeUpstream, query, rcodeOf, respond } from '../../src/dns/dns.testkit.js';

const x = realExecer();

const TABLE = `table inet egress {
  set s4 { type ipv4_addr; flags timeout; }
  set s6 { type ipv6_addr; flags timeout; }
  set tiny { type ipv4_addr; flags timeout; size 2; }
}
`;

/** seconds in an nft duration such as 1m39s990ms or 1d2h */
function seconds(d: string): number {
  let s = 0;
  for (const [, n, u] of d.matchAll(/(\d+)(ms|d|h|m|s)/g)) s += Number(n) * { d: 86400, h: 3600, m: 60, s: 1, ms: 0.001 }[u as 'd']!;
  return s;
}

/** The elements of a set as the kernel has them: address → { timeout, expires } in seconds. */
async function elements(ns: string, set: string): Promise<Map<string, { timeout: number; expires: number }>> {
  const out = await mustRun({ execer: x, netns: ns }, ['nft', 'list', 'set', 'inet', 'egress', set]);
  const m = new Map<string, { timeout: number; expires: number }>();
  for (const [, addr, t, e] of out.matchAll(/([0-9a-f:.]+) timeout (\S+?) expires (\S+?)[,\s}]/g)) m.set(addr!, { timeout: seconds(t!), expires: seconds(e!) });
  return m;
}

async function withWriter(opts: { refresh?: 'readd' | 'delete-readd' }, body: (w: NftWriter, ns: string, events: WriterEvent[]) => Promise<void>): Promise<void> {
  const ns = netnsName(uniqueTag(), 'dnsw');
  const remove = await createNetns(x, ns);
  const events: WriterEvent[] = [];
  let w: NftWriter | undefined;
  try {
    await mustRun({ execer: x, netns: ns }, ['nft', '-f', '-'], TABLE);
    w = new NftWriter({ execer: x, table: 'inet egress', netns: ns, onEvent: (e) => events.push(e), ...opts });
    await w.up();
    await body(w, ns, events);
  } finally {
    await w?.close();
    await remove();
  }
}

const el = (address: string, timeoutSec: number, set = address.includes(':') ? 's6' : 's4'): Element => ({ set, family: address.includes(':') ? 'ipv6' : 'ipv4', address, timeoutSec });

kernelDescribe('DNS nft writer', () => {
  useRootGuard(x);

  test('a confirmed publish is in the kernel; 512 IPv6 and 256 IPv4 addresses in one transaction', async () => {
    await withWriter({}, async (w, ns) => {
      await w.publish([el('192.0.2.1', 70), el('2001:db8::1', 70)]);
      expect([...(await elements(ns, 's4')).keys()]).toEqual(['192.0.2.1']);
      expect([...(await elements(ns, 's6')).keys()]).toEqual(['2001:db8::1']);
      const v6 = Array.from({ length: 512 }, (_, i) => el(`2001:db8:1::${(i + 1).toString(16)}`, 70));
      const v4 = Array.from({ length: 256 }, (_, i) => el(`198.51.100.${i}`, 70));
      await Promise.all([w.publish(v6), w.publish(v4)]);
      expect((await elements(ns, 's6')).size).toBe(513);
      expect((await elements(ns, 's4')).size).toBe(257);
    });
  });

  for (const refresh of ['readd', 'delete-readd'] as const)
    test(`refresh (${refresh}): a re-add sets the new timeout; a shorter one never shortens`, async () => {
      await withWriter({ refresh }, async (w, ns) => {
        await w.publish([el('192.0.2.1', 100)]);
        expect((await elements(ns, 's4')).get('192.0.2.1')!.timeout).toBe(100);
        await w.publish([el('192.0.2.1', 200)]);
        const after = (await elements(ns, 's4')).get('192.0.2.1')!;
        expect(after.timeout).toBe(200);
        expect(after.expires).toBeGreaterThan(190);
        await w.publish([el('192.0.2.1', 50)]);
        expect((await elements(ns, 's4')).get('192.0.2.1')!.expires).toBeGreaterThan(190);
      });
    });

  test('remainingMs never promises more than the kernel has (what the forwarder answers without holding relies on)', async () => {
    await withWriter({}, async (w, ns) => {
      const v6 = Array.from({ length: 100 }, (_, i) => el(`2001:db8:2::${(i + 1).toString(16)}`, 30 + i));
      await w.publish(v6);
      // refreshed: longer for some, "shorter" (never shortens) for others
      await w.publish(v6.slice(0, 50).map((e, i) => ({ ...e, timeoutSec: i % 2 ? 300 : 5 })));
      const promised = new Map(v6.map((e) => [e.address, w.remainingMs('s6', e.address)]));
      const t0 = performance.now();
      const kernel = await elements(ns, 's6');
      const readMs = performance.now() - t0;
      for (const [address, ms] of promised) {
        expect(ms).toBeGreaterThan(0);
        // The kernel's remaining time when remainingMs was asked ≥ its `expires` at the listing (taken within readMs after); a jiffy of rounding allowed.
        expect(kernel.get(address)!.expires * 1000 + readMs + 10, address).toBeGreaterThanOrEqual(ms);
      }
      expect(w.remainingMs('s6', '2001:db8:2::ffff')).toBe(0);
    });
  });

  test('with the nft child frozen, an address the kernel has for TTL + 10 s is answered without holding; a new one is held (SERVFAIL)', async () => {
    await withWriter({}, async (w, ns, events) => {
      const up = await FakeUpstream.start((q) => {
        const name = q.questions![0]!.name;
        return respond(q, [aaaa(name, name.startsWith('old.') ? '2001:db8:3::1' : '2001:db8:3::2', 20)]);
      });
      const fwd = new Forwarder(
        { listen: [{ address: '127.0.0.1', port: 0 }], upstream: [{ address: '127.0.0.1', port: up.port }], graceSec: 60, minLifetimeSec: 10, holdMs: 300, names: [{ pattern: '*.pool.test', action: 'allow', rule: 'pool', sets: { ipv6: 's6' } }], table: 'inet egress' },
        { writer: w, uidOf: null },
      );
      try {
        await fwd.listen();
        const port = fwd.addresses().udp[0]!.port;
        // First answer: held for its commit (lifetime 80 s).
        expect(rcodeOf(await askUdp(port, query('old.pool.test', 'AAAA')))).toBe('NOERROR');
        const pid = (events.filter((e) => e.event === 'writer-up').pop() as Extract<WriterEvent, { event: 'writer-up' }>).pid!;
        process.kill(pid, 'SIGSTOP');
        try {
          // Nothing can be committed now: what is answered must already be in the kernel.
          expect(addressesOf(await askUdp(port, query('old.pool.test', 'AAAA')))).toEqual(['2001:db8:3::1']);
          const kernel = await elements(ns, 's6');
          expect(kernel.get('2001:db8:3::1')!.expires).toBeGreaterThanOrEqual(20 + 10);
          expect(rcodeOf(await askUdp(port, query('new.pool.test', 'AAAA')))).toBe('SERVFAIL');
          expect(kernel.has('2001:db8:3::2')).toBe(false);
          expect(fwd.counters()).toMatchObject({ fastAnswers: 1, holdTimeouts: 1 });
        } finally {
          process.kill(pid, 'SIGCONT');
        }
      } finally {
        await fwd.close();
        await up.close();
      }
    });
  });

  test('a publish nft refuses fails alone; the writer keeps serving', async () => {
    await withWriter({}, async (w, ns) => {
      const results = await Promise.allSettled([w.publish([el('192.0.2.1', 70)]), w.publish([el('192.0.2.2', 70, 'nosuch')]), w.publish([el('192.0.2.3', 70)])]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/No such file or directory/);
      // a full set: the kernel says ENFILE for the whole transaction
      await w.publish([el('192.0.2.10', 70, 'tiny'), el('192.0.2.11', 70, 'tiny')]);
      await expect(w.publish([el('192.0.2.12', 70, 'tiny')])).rejects.toThrow(/Too many open files|No space/);
      await w.publish([el('192.0.2.4', 70)]);
      expect([...(await elements(ns, 's4')).keys()].sort()).toEqual(['192.0.2.1', '192.0.2.3', '192.0.2.4']);
    });
  });

  test('nft killed: what was pending fails, a new nft comes up and takes publishes', async () => {
    await withWriter({}, async (w, ns, events) => {
      await w.publish([el('192.0.2.1', 70)]);
      const up = events.find((e) => e.event === 'writer-up') as Extract<WriterEvent, { event: 'writer-up' }>;
      expect(up.pid).toBeGreaterThan(0);
      const burst = Array.from({ length: 50 }, (_, i) => w.publish([el(`198.51.100.${i}`, 70)]));
      process.kill(up.pid!, 'SIGKILL');
      const settled = await Promise.allSettled(burst);
      // Every publish either committed before the kill or failed; none hangs.
      await w.up();
      await w.publish([el('192.0.2.2', 70)]);
      const now = await elements(ns, 's4');
      expect(now.has('192.0.2.1') && now.has('192.0.2.2')).toBe(true);
      // a fulfilled publish is in the kernel: the kill never loses a confirmed one
      expect(settled.some((s) => s.status === 'rejected')).toBe(true);
      for (const [i, s] of settled.entries()) if (s.status === 'fulfilled') expect(now.has(`198.51.100.${i}`)).toBe(true);
      expect(events.some((e) => e.event === 'writer-down')).toBe(true);
    });
  });
});
