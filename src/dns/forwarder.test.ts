/**
 * The forwarder against a scripted upstream on loopback and an in-memory
 * writer: no root, no kernel. The oracle for "publish before answer" is the
 * fake writer's kernel map, read at the moment the client receives the answer.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, test } from 'vitest';
import fc from 'fast-check';
import dnsPacket, { type Packet } from 'dns-packet';
import { Forwarder, type ForwarderSeams } from './forwarder.js';
import type { DnsName, ForwarderConfig, ForwarderRecord } from './types.js';
import { a, aaaa, addressesOf, askTcp, askUdp, cname, decode, FakeUpstream, FakeWriter, isTc, query, rcodeOf, respond, type Script } from './dns.testkit.js';

const NAMES: DnsName[] = [
  { pattern: 'deb.debian.org', action: 'allow', rule: 'mirror', sets: { ipv4: 'mirror_4', ipv6: 'mirror_6' } },
  { pattern: '*.cdn.example.com', action: 'allow', rule: 'cdn', sets: { ipv4: 'cdn_4', ipv6: 'cdn_6' } },
  { pattern: 'alias.example.com', action: 'allow', rule: 'alias', sets: { ipv4: 'alias_4' } },
  { pattern: 'big.example.com', action: 'allow', rule: 'big', sets: { ipv4: 'big_4', ipv6: 'big_6' } },
  { pattern: '*.example.com', action: 'allow', rule: 'wide', sets: { ipv4: 'wide_4' } },
  { pattern: '*.evil.example.com', action: 'deny', rule: 'no-evil', sets: {} },
  { pattern: 'blocked.test', action: 'deny', rule: 'blocked', sets: {} },
];

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

/** The default script: every A / AAAA question gets one address, derived from the name's length. */
const simple: Script = (q) => {
  const qq = q.questions![0]!;
  const n = qq.name.length;
  if (qq.type === 'A') return respond(q, [a(qq.name, `192.0.2.${n}`, 5)]);
  if (qq.type === 'AAAA') return respond(q, [aaaa(qq.name, `2001:db8::${n}`, 5)]);
  return respond(q, []);
};

async function setup(opts: { script?: Script; config?: Partial<ForwarderConfig>; seams?: Partial<ForwarderSeams>; upstreams?: FakeUpstream[] } = {}) {
  const up = await FakeUpstream.start(opts.script ?? simple);
  open.push(up);
  const writer = new FakeWriter();
  const records: ForwarderRecord[] = [];
  const upstreams = opts.upstreams ?? [up];
  const fwd = new Forwarder(
    {
      listen: [{ address: '127.0.0.1', port: 0 }],
      upstream: upstreams.map((u) => ({ address: '127.0.0.1', port: u.port })),
      graceSec: 60,
      minLifetimeSec: 10,
      holdMs: 2000,
      names: NAMES,
      table: 'inet egress',
      ...opts.config,
    },
    { writer, log: (r) => records.push(r), uidOf: null, upstreamTimeoutMs: 300, ...opts.seams },
  );
  await fwd.listen();
  open.push(fwd);
  const port = fwd.addresses().udp[0]!.port;
  const tcpPort = fwd.addresses().tcp[0]!.port;
  return { up, writer, fwd, port, tcpPort, records };
}

describe('publish, then answer', () => {
  test('the answer leaves only after its addresses are committed', async () => {
    const { writer, port, fwd, records } = await setup();
    writer.delayMs = 40;
    const inKernelAtReceipt = await askUdp(port, query('deb.debian.org')).then((r) => addressesOf(r).map((ad) => writer.has('mirror_4', ad)));
    expect(inKernelAtReceipt).toEqual([true]);
    expect(writer.calls).toEqual([[{ set: 'mirror_4', family: 'ipv4', address: '192.0.2.14', timeoutSec: 65 }]]);
    expect(fwd.counters()).toMatchObject({ queries: 1, answered: 1, published: 1, servfail: 0 });
    expect(records).toMatchObject([{ event: 'dns-publish', name: 'deb.debian.org', qtype: 'A', rules: ['mirror'], sets: ['mirror_4'], addresses: ['192.0.2.14'], ttl: 5, lifetime: 65, proto: 'udp' }]);
  });

  test('AAAA goes to the rule’s IPv6 set; a rule without one publishes nothing for that family', async () => {
    const { writer, port } = await setup();
    expect(rcodeOf(await askUdp(port, query('deb.debian.org', 'AAAA')))).toBe('NOERROR');
    expect(writer.has('mirror_6', '2001:db8::14')).toBe(true);
    // alias has only an IPv4 set; *.example.com (wide) too
    const r = await askUdp(port, query('alias.example.com', 'AAAA'));
    expect(addressesOf(r)).toEqual(['2001:db8::17']);
    expect(writer.calls.length).toBe(1);
  });

  test('a name under several rules goes into each rule’s sets', async () => {
    const { writer, port, records } = await setup();
    await askUdp(port, query('x.cdn.example.com'));
    expect(writer.calls[0]!.map((e) => e.set).sort()).toEqual(['cdn_4', 'wide_4']);
    expect([...(records[0] as { rules: string[] }).rules].sort()).toEqual(['cdn', 'wide']);
  });

  test('lifetime is max(min_lifetime, TTL + grace)', async () => {
    const { writer, port } = await setup({ config: { graceSec: 0, minLifetimeSec: 10 }, script: (q) => respond(q, [a(q.questions![0]!.name, '192.0.2.7', 3), a(q.questions![0]!.name, '192.0.2.8', 20)]) });
    await askUdp(port, query('deb.debian.org'));
    expect(writer.calls[0]).toEqual([
      { set: 'mirror_4', family: 'ipv4', address: '192.0.2.7', timeoutSec: 10 },
      { set: 'mirror_4', family: 'ipv4', address: '192.0.2.8', timeoutSec: 20 },
    ]);
  });

  test('commit later than holdMs → SERVFAIL, counted, never the late answer', async () => {
    const { writer, port, fwd } = await setup({ config: { holdMs: 50 } });
    writer.hang = true;
    const r = await askUdp(port, query('deb.debian.org'));
    expect(rcodeOf(r)).toBe('SERVFAIL');
    expect(addressesOf(r)).toEqual([]);
    expect(fwd.counters()).toMatchObject({ holdTimeouts: 1, servfail: 1, answered: 0, published: 0 });
  });

  test('a writer that refuses → SERVFAIL', async () => {
    const { writer, port, fwd } = await setup();
    writer.fail = true;
    expect(rcodeOf(await askUdp(port, query('deb.debian.org')))).toBe('SERVFAIL');
    expect(fwd.counters()).toMatchObject({ publishFailures: 1, servfail: 1 });
  });

  test('the negative control publishAfterAnswer really answers first', async () => {
    const { writer, port, fwd } = await setup({ seams: { publishAfterAnswer: true } });
    let open!: () => void;
    writer.gate = new Promise((r) => (open = r));
    // The commit is held until the client has its answer: with publishAfterAnswer the answer still comes.
    const inKernelAtReceipt = await askUdp(port, query('deb.debian.org')).then((r) => addressesOf(r).map((ad) => writer.has('mirror_4', ad)));
    expect(inKernelAtReceipt).toEqual([false]);
    open();
    await expect.poll(() => fwd.counters().published).toBe(1);
  });
});

describe('fast path: no hold when every address is surely live', () => {
  /** The commit never comes: an answer that is held becomes SERVFAIL after holdMs, one that is not comes with its addresses. */
  const neverCommits = { config: { holdMs: 50 } };

  test('every address confirmed with ≥ max(min_lifetime, TTL + 10 s) left → answered before the refresh commits; the refresh writes the full lifetime', async () => {
    const { writer, port, fwd, records } = await setup();
    // simple answers deb.debian.org with 192.0.2.14, TTL 5: needs 15 s left.
    writer.sure.set('mirror_4 192.0.2.14', 15_000);
    let open!: () => void;
    writer.gate = new Promise((r) => (open = r));
    // Received while the commit is still shut behind the gate.
    const r = await askUdp(port, query('deb.debian.org'));
    expect([addressesOf(r), writer.has('mirror_4', '192.0.2.14')]).toEqual([['192.0.2.14'], false]);
    open();
    await expect.poll(() => fwd.counters().published).toBe(1);
    expect(writer.calls).toEqual([[{ set: 'mirror_4', family: 'ipv4', address: '192.0.2.14', timeoutSec: 65 }]]);
    expect(fwd.counters()).toMatchObject({ answered: 1, fastAnswers: 1, refreshFailures: 0, servfail: 0 });
    await expect.poll(() => records.length).toBe(1);
  });

  test('an element with all but a second of its full lifetime left is not written again; the others of the answer are', async () => {
    const two: Script = (q) => respond(q, [a(q.questions![0]!.name, '192.0.2.7', 5), a(q.questions![0]!.name, '192.0.2.8', 5)]);
    const { writer, port, fwd, records } = await setup({ script: two });
    // lifetime max(10, 5 + 60) = 65 s
    writer.sure.set('mirror_4 192.0.2.7', 64_000).set('mirror_4 192.0.2.8', 63_999);
    expect(addressesOf(await askUdp(port, query('deb.debian.org')))).toEqual(['192.0.2.7', '192.0.2.8']);
    await expect.poll(() => records.length).toBe(1);
    expect(writer.calls).toEqual([[{ set: 'mirror_4', family: 'ipv4', address: '192.0.2.8', timeoutSec: 65 }]]);
    writer.sure.set('mirror_4 192.0.2.8', 64_000);
    await askUdp(port, query('deb.debian.org'));
    await expect.poll(() => records.length).toBe(2);
    expect(writer.calls.length).toBe(1);
    expect(fwd.counters()).toMatchObject({ fastAnswers: 2, published: 1, refreshFailures: 0 });
  });

  test('a near-expiry element (1 ms short of TTL + 10 s) is held for its commit', async () => {
    const { writer, port, fwd } = await setup(neverCommits);
    writer.hang = true;
    writer.sure.set('mirror_4 192.0.2.14', 14_999);
    expect(rcodeOf(await askUdp(port, query('deb.debian.org')))).toBe('SERVFAIL');
    expect(fwd.counters()).toMatchObject({ holdTimeouts: 1, fastAnswers: 0 });
  });

  test('min_lifetime above TTL + 10 s raises the bar', async () => {
    const { writer, port, fwd } = await setup({ config: { holdMs: 50, minLifetimeSec: 120 } });
    writer.hang = true;
    writer.sure.set('mirror_4 192.0.2.14', 119_000);
    expect(rcodeOf(await askUdp(port, query('deb.debian.org')))).toBe('SERVFAIL');
    writer.sure.set('mirror_4 192.0.2.14', 120_000);
    expect(rcodeOf(await askUdp(port, query('deb.debian.org')))).toBe('NOERROR');
    expect(fwd.counters()).toMatchObject({ holdTimeouts: 1, fastAnswers: 1 });
  });

  test('one address of the answer, or one of its sets, not surely live → the whole answer is held', async () => {
    const two: Script = (q) => respond(q, [a(q.questions![0]!.name, '192.0.2.7', 5), a(q.questions![0]!.name, '192.0.2.8', 5)]);
    const { writer, port, fwd } = await setup({ ...neverCommits, script: two });
    writer.hang = true;
    writer.sure.set('mirror_4 192.0.2.7', 600_000);
    expect(rcodeOf(await askUdp(port, query('deb.debian.org')))).toBe('SERVFAIL');
    // x.cdn.example.com goes into cdn_4 and wide_4: sure in one set only is not enough
    writer.sure.set('cdn_4 192.0.2.7', 600_000).set('cdn_4 192.0.2.8', 600_000).set('wide_4 192.0.2.7', 600_000);
    expect(rcodeOf(await askUdp(port, query('x.cdn.example.com')))).toBe('SERVFAIL');
    writer.sure.set('wide_4 192.0.2.8', 600_000);
    expect(addressesOf(await askUdp(port, query('x.cdn.example.com')))).toEqual(['192.0.2.7', '192.0.2.8']);
    expect(fwd.counters()).toMatchObject({ holdTimeouts: 2, fastAnswers: 1 });
  });

  test('a failed background refresh is counted; the answer had gone, no SERVFAIL', async () => {
    const { writer, port, fwd, records } = await setup();
    writer.sure.set('mirror_4 192.0.2.14', 60_000);
    writer.fail = true;
    expect(addressesOf(await askUdp(port, query('deb.debian.org')))).toEqual(['192.0.2.14']);
    await expect.poll(() => fwd.counters().refreshFailures).toBe(1);
    expect(fwd.counters()).toMatchObject({ fastAnswers: 1, publishFailures: 0, servfail: 0, published: 0 });
    expect(records).toEqual([]);
  });

  test('never with publishAfterAnswer (the negative control stays what it is)', async () => {
    const { writer, port, fwd } = await setup({ seams: { publishAfterAnswer: true } });
    writer.sure.set('mirror_4 192.0.2.14', 600_000);
    await askUdp(port, query('deb.debian.org'));
    await expect.poll(() => fwd.counters().published).toBe(1);
    expect(fwd.counters().fastAnswers).toBe(0);
  });
});

describe('what is and is not published', () => {
  test('deny → REFUSED; upstream never asked, nothing published', async () => {
    const { up, writer, port, fwd, records } = await setup();
    expect(rcodeOf(await askUdp(port, query('x.evil.example.com')))).toBe('REFUSED');
    expect(rcodeOf(await askUdp(port, query('blocked.test', 'AAAA')))).toBe('REFUSED');
    expect(up.asked).toEqual([]);
    expect(writer.calls).toEqual([]);
    expect(fwd.counters()).toMatchObject({ refused: 2, answered: 0 });
    expect(records.map((r) => [r.event, r.name, 'rules' in r ? r.rules : undefined])).toEqual([
      ['dns-refused', 'x.evil.example.com', ['no-evil']],
      ['dns-refused', 'blocked.test', ['blocked']],
    ]);
  });

  test('unlisted names are answered as they came and publish nothing', async () => {
    const { writer, port } = await setup();
    const r = await askUdp(port, query('www.unlisted.test'));
    expect(addressesOf(r)).toEqual(['192.0.2.17']);
    expect(writer.calls).toEqual([]);
  });

  test('a forwarded A/AAAA answer is logged as dns-answer, with the chain’s addresses; other types are not', async () => {
    const script: Script = (q, proto) => {
      const qq = q.questions![0]!;
      if (qq.name === 'www.unlisted.test' && qq.type === 'A') return respond(q, [cname('www.unlisted.test', 'edge.unlisted.test'), a('edge.unlisted.test', '198.51.100.9', 30), a('edge.unlisted.test', '198.51.100.8', 20)]);
      return simple(q, proto);
    };
    const { port, records, writer } = await setup({ script, seams: { uidOf: async () => 4242 } });
    await askUdp(port, query('www.unlisted.test'));
    await askUdp(port, query('other.unlisted.test', 'AAAA'));
    await askUdp(port, query('www.unlisted.test', 'TXT'));
    await expect.poll(() => records.length).toBe(2);
    expect(records).toEqual([
      { time: expect.any(String), event: 'dns-answer', name: 'www.unlisted.test', qtype: 'A', addresses: ['198.51.100.9', '198.51.100.8'], ttl: 20, proto: 'udp', uid: 4242 },
      { time: expect.any(String), event: 'dns-answer', name: 'other.unlisted.test', qtype: 'AAAA', addresses: ['2001:db8::19'], ttl: 5, proto: 'udp', uid: 4242 },
    ]);
    expect(writer.calls).toEqual([]);
  });

  test('CNAME chain: the targets inherit the query name’s rule; records off the chain are not published', async () => {
    const script: Script = (q) =>
      respond(q, [
        // out of order on purpose, with an unrelated record and a loop back to the start
        cname('edge.provider.test', 'edge2.provider.test'),
        a('unrelated.test', '203.0.113.9'),
        cname('alias.example.com', 'edge.provider.test'),
        a('edge2.provider.test', '198.51.100.1', 7),
        a('edge2.provider.test', '198.51.100.2', 7),
        cname('edge2.provider.test', 'alias.example.com'),
      ]);
    const { writer, port, records } = await setup({ script });
    const r = await askUdp(port, query('alias.example.com'));
    expect(addressesOf(r).sort()).toEqual(['198.51.100.1', '198.51.100.2', '203.0.113.9']);
    expect([...writer.kernel.keys()].sort()).toEqual(['alias_4 198.51.100.1', 'alias_4 198.51.100.2', 'wide_4 198.51.100.1', 'wide_4 198.51.100.2']);
    expect(records[0]).toMatchObject({ addresses: ['198.51.100.1', '198.51.100.2'], ttl: 7, lifetime: 67 });
  });

  test('HTTPS/SVCB for a named name → NODATA without asking; for others forwarded', async () => {
    const { up, port, fwd } = await setup();
    for (const t of ['HTTPS', 'SVCB'] as const) {
      const r = await askUdp(port, query('deb.debian.org', t));
      expect(rcodeOf(r)).toBe('NOERROR');
      expect(decode(r).answers).toEqual([]);
    }
    expect(up.asked).toEqual([]);
    await askUdp(port, query('unlisted.test', 'HTTPS'));
    expect(up.asked.map((x) => x.name)).toEqual(['unlisted.test']);
    expect(fwd.counters().strippedHttps).toBe(2);
  });

  test('odd names never publish', async () => {
    const { writer, port } = await setup({ script: (q) => respond(q, [a(q.questions![0]!.name, '192.0.2.1')]) });
    // a label holding a dot, built by hand: "deb.debian" + "org"
    const q = query('x.org');
    const odd = Buffer.concat([q.subarray(0, 12), Buffer.from([10]), Buffer.from('deb.debian'), Buffer.from([3]), Buffer.from('org'), Buffer.from([0, 0, 1, 0, 1])]);
    await askUdp(port, odd).catch(() => undefined);
    expect(writer.calls).toEqual([]);
  });

  test('cap: at most N addresses per family; the rest leave the answer too', async () => {
    const script: Script = (q) => {
      const n = q.questions![0]!.name;
      return respond(q, [...Array.from({ length: 10 }, (_, i) => a(n, `198.51.100.${i + 1}`)), ...Array.from({ length: 6 }, (_, i) => aaaa(n, `2001:db8::${i + 1}`))]);
    };
    const { writer, tcpPort, fwd } = await setup({ script, seams: { capPerFamily: 4 } });
    const [r] = await askTcp(tcpPort, [query('big.example.com', 'ANY')]);
    const got = addressesOf(r!);
    expect(got).toEqual(['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4', '2001:db8::1', '2001:db8::2', '2001:db8::3', '2001:db8::4']);
    expect(writer.calls[0]!.filter((e) => e.set.startsWith('big_')).map((e) => e.address)).toEqual(got);
    expect(fwd.counters().capped).toBe(8);
  });

  test('loopback, link-local (the metadata service), multicast and mapped addresses leave a named answer and are never published (D16)', async () => {
    const script: Script = (q) => {
      const n = q.questions![0]!.name;
      return respond(q, [a(n, '169.254.169.254'), a(n, '127.0.0.1'), a(n, '198.51.100.7'), a(n, '224.0.0.1'), aaaa(n, '::1'), aaaa(n, '::ffff:198.51.100.9'), aaaa(n, '2001:db8::7')]);
    };
    const { writer, tcpPort, fwd } = await setup({ script });
    const [r] = await askTcp(tcpPort, [query('big.example.com', 'ANY')]);
    expect(addressesOf(r!)).toEqual(['198.51.100.7', '2001:db8::7']);
    expect([...new Set(writer.calls.flat().map((e) => e.address))].sort()).toEqual(['198.51.100.7', '2001:db8::7']);
    expect(fwd.counters()).toMatchObject({ special: 5, capped: 0 });
  });
});

describe('transport', () => {
  test('a UDP answer with TC=1 is asked again over TCP', async () => {
    const script: Script = (q, proto) => (proto === 'udp' ? respond(q, [], { flags: dnsPacket.TRUNCATED_RESPONSE | dnsPacket.RECURSION_AVAILABLE }) : simple(q, proto));
    const { up, writer, port, fwd } = await setup({ script });
    const r = await askUdp(port, query('deb.debian.org'));
    expect(addressesOf(r)).toEqual(['192.0.2.14']);
    expect(up.asked.map((x) => x.proto)).toEqual(['udp', 'tcp']);
    expect(writer.has('mirror_4', '192.0.2.14')).toBe(true);
    expect(fwd.counters().upstreamTcpRetries).toBe(1);
  });

  test('too large for the UDP client → TC=1 and nothing published; over TCP it gets everything', async () => {
    const script: Script = (q) => respond(q, Array.from({ length: 64 }, (_, i) => a(q.questions![0]!.name, `198.51.100.${i + 1}`)));
    const { writer, port, tcpPort, fwd } = await setup({ script });
    const r = await askUdp(port, query('big.example.com'));
    expect(isTc(r)).toBe(true);
    expect(decode(r).answers).toEqual([]);
    expect(writer.calls).toEqual([]);
    expect(fwd.counters().truncated).toBe(1);
    // with a large enough EDNS size it fits over UDP
    expect(addressesOf(await askUdp(port, query('big.example.com', 'A', 4096))).length).toBe(64);
    const [t] = await askTcp(tcpPort, [query('big.example.com')]);
    expect(addressesOf(t!).length).toBe(64);
    expect(writer.kernel.size).toBe(64 + 64); // big_4 and wide_4
  });

  test('pipelined TCP: each query judged on its own', async () => {
    const { writer, tcpPort, fwd } = await setup();
    const qs = [query('deb.debian.org'), query('blocked.test'), query('unlisted.test'), query('y.cdn.example.com', 'AAAA')];
    const ids = qs.map((q) => q.readUInt16BE(0));
    const rs = await askTcp(tcpPort, qs);
    const byId = new Map(rs.map((r) => [r.readUInt16BE(0), r]));
    expect(ids.map((id) => rcodeOf(byId.get(id)!))).toEqual(['NOERROR', 'REFUSED', 'NOERROR', 'NOERROR']);
    // y.cdn.example.com is 17 characters long (the default script's address)
    expect([...writer.kernel.keys()].sort()).toEqual(['cdn_6 2001:db8::17', 'mirror_4 192.0.2.14']);
    expect(fwd.counters()).toMatchObject({ queries: 4, refused: 1, answered: 3 });
  });

  test('the next upstream is tried when one does not answer', async () => {
    const silent = await FakeUpstream.start(() => 'drop');
    open.push(silent);
    const good = await FakeUpstream.start(simple);
    open.push(good);
    const { port, fwd } = await setup({ upstreams: [silent, good] });
    expect(addressesOf(await askUdp(port, query('deb.debian.org')))).toEqual(['192.0.2.14']);
    expect(silent.asked.length).toBe(1);
    expect(fwd.counters().upstreamErrors).toBe(1);
  });

  test('no upstream answers → SERVFAIL', async () => {
    const { port, fwd } = await setup({ script: () => 'drop' });
    expect(rcodeOf(await askUdp(port, query('unlisted.test')))).toBe('SERVFAIL');
    expect(fwd.counters()).toMatchObject({ servfail: 1, upstreamErrors: 1 });
  });

  test('a reply with another ID is never taken as the answer', async () => {
    const script: Script = (q) => {
      const good = dnsPacket.encode(simple(q, 'udp') as Packet);
      const wrongId = Buffer.from(good);
      wrongId.writeUInt16BE((q.id! + 1) & 0xffff, 0);
      return Buffer.concat([wrongId]); // first: wrong ID only; the forwarder keeps waiting and times out
    };
    const { port, fwd } = await setup({ script });
    expect(rcodeOf(await askUdp(port, query('deb.debian.org')))).toBe('SERVFAIL');
    expect(fwd.counters().published).toBe(0);
  });

  test('malformed packets are dropped and counted; the server keeps answering (UDP and TCP)', async () => {
    const { port, tcpPort, fwd } = await setup();
    const junk = [Buffer.from('hello'), Buffer.alloc(12), Buffer.from([0, 1, 0x81, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1]), Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1])];
    for (const j of junk) await expect(askUdp(port, j, '127.0.0.1', 200)).rejects.toThrow(/no UDP answer/);
    expect(fwd.counters().malformed).toBe(junk.length);
    expect(addressesOf(await askUdp(port, query('deb.debian.org')))).toEqual(['192.0.2.14']);
    const garbageFrame = Buffer.from([0, 3, 1, 2, 3]);
    const rs = await askTcp(tcpPort, [query('deb.debian.org')], '127.0.0.1', garbageFrame);
    expect(rs.map(rcodeOf)).toEqual(['NOERROR']);
    expect(fwd.counters().malformed).toBe(junk.length + 1);
  });

  test('whatever bytes arrive, handle() settles and never throws', async () => {
    const { fwd } = await setup({ script: () => 'drop', seams: { upstreamTimeoutMs: 20 } });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 80 }), async (bytes) => {
        await fwd.handle(Buffer.from(bytes), { proto: 'udp', address: '127.0.0.1', port: 1 });
      }),
      { numRuns: 300 },
    );
  });

  test('the asker’s uid comes from /proc/net/udp for a loopback client', async () => {
    const { port, records } = await setup({ seams: { uidOf: undefined } });
    // The client keeps its socket open until the record is there: a socket already closed cannot be found.
    const s = dgram.createSocket('udp4');
    try {
      const answered = new Promise((r) => s.once('message', r));
      s.send(query('deb.debian.org'), port, '127.0.0.1');
      await answered;
      await expect.poll(() => records.length).toBe(1);
    } finally {
      s.close();
    }
    expect(records[0]).toMatchObject({ uid: process.getuid!() });
  });

  test('close(): a query in progress still gets its answer; new ones get none', async () => {
    const { writer, port, fwd } = await setup();
    writer.delayMs = 100;
    const answer = askUdp(port, query('deb.debian.org'));
    await expect.poll(() => writer.calls.length).toBe(1);
    const closing = fwd.close();
    expect(addressesOf(await answer)).toEqual(['192.0.2.14']);
    await closing;
    await expect(askUdp(port, query('deb.debian.org'), '127.0.0.1', 200)).rejects.toThrow(/no UDP answer/);
  });

  test('IPv6 listener', async () => {
    const up = await FakeUpstream.start(simple, '::1');
    open.push(up);
    const writer = new FakeWriter();
    const fwd = new Forwarder(
      { listen: [{ address: '::1', port: 0 }], upstream: [{ address: '::1', port: up.port }], graceSec: 1, minLifetimeSec: 1, holdMs: 1000, names: NAMES, table: 'inet egress' },
      { writer, uidOf: null },
    );
    await fwd.listen();
    open.push(fwd);
    expect(addressesOf(await askUdp(fwd.addresses().udp[0]!.port, query('deb.debian.org', 'AAAA'), '::1'))).toEqual(['2001:db8::14']);
    expect(writer.has('mirror_6', '2001:db8::14')).toBe(true);
  });
});

describe("forward sources' interfaces (config.interfaces)", () => {
  const nic = (address: string): import('node:os').NetworkInterfaceInfo =>
    ({ address, netmask: '255.0.0.0', family: address.includes(':') ? 'IPv6' : 'IPv4', mac: '00:00:00:00:00:00', internal: false, cidr: null, ...(address.includes(':') ? { scopeid: 0 } : {}) }) as import('node:os').NetworkInterfaceInfo;

  test('listens on every address of the matching interfaces, answers there, follows them as they come and go, skips link-local', async () => {
    let nics: NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]> = { 'br-a': [nic('127.0.0.2'), nic('fe80::1')], eth0: [nic('127.0.0.3')] };
    const { fwd } = await setup({ config: { interfaces: { globs: ['br-*', 'docker0'], port: 0 } }, seams: { networkInterfaces: () => nics, rescanMs: 3_600_000 } });
    const [first] = fwd.interfaceEndpoints();
    expect(fwd.interfaceEndpoints().map((e) => e.address)).toEqual(['127.0.0.2']);
    expect(addressesOf(await askUdp(first!.port, query('deb.debian.org'), '127.0.0.2'))).toEqual(['192.0.2.14']);
    nics = { docker0: [nic('127.0.0.4')], eth0: [nic('127.0.0.3')] };
    await fwd.rescan();
    const [second] = fwd.interfaceEndpoints();
    expect(second!.address).toBe('127.0.0.4');
    expect(addressesOf(await askUdp(second!.port, query('deb.debian.org'), '127.0.0.4'))).toEqual(['192.0.2.14']);
    // The socket on the address that went is closed: nothing answers there any more.
    await expect(askUdp(first!.port, query('deb.debian.org'), '127.0.0.2', 200)).rejects.toThrow(/no UDP answer/);
  });
});
