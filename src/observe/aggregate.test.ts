import { describe, expect, test } from 'vitest';
import { logPrefix } from '../backends/log-tag.js';
import { emptyCounts, type LogEvent } from '../logs/event.js';
import { KernelLineParser } from '../logs/parse-kernel.js';
import { countBetween, StatsBuilder, timeline } from './aggregate.js';
import { analyzeChanges, type HistoryEntry } from './changes.js';
import { REFRESH_UNCHANGED } from '../kernel/history.js';
import { Deduper } from './dedupe.js';
import { loadText, NOW } from '../../test/helpers.js';
import { FWD_ICMP6, FWD_OTHER4, FWD_TCP4, FWD_UDP4, ICMP4, iso, TCP4, TCP6, UDP4 } from '../../test/observe/lines.js';

const T0 = Date.UTC(2026, 10, 23, 9, 0, 0);
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

function events(lines: string[]): LogEvent[] {
  const p = new KernelLineParser({ now: NOW.getTime() });
  return lines.map((l) => p.parseLine(l)).filter((e): e is LogEvent => !!e);
}

describe('dedupe: one connection attempt, however many SYNs', () => {
  test.each([
    // seconds of each log line, fields → expected "new" flags
    ['SYN and its retransmissions (1, 3, 7, 15, 31, 63 s; the window slides)', [0, 1, 3, 7, 15, 31, 63], TCP4, [true, false, false, false, false, false, false]],
    ['the same 5-tuple after more than 60 s of silence is a new attempt', [0, 61], TCP4, [true, true]],
    ['a ping run keeps its echo id: one attempt', [0, 1, 2, 3], ICMP4, [true, false, false, false]],
  ])('%s', (_n, secs, fields, want) => {
    const d = new Deduper();
    const es = events(secs.map((s) => iso(`EGRESS D:x ${fields}`, at(s))));
    expect(es.map((e) => d.isNew(e))).toEqual(want);
  });

  test('a new source port, another uid or another destination is another attempt', () => {
    const d = new Deduper();
    const es = events([TCP4, TCP4.replace('SPT=57408', 'SPT=57409'), TCP4.replace('UID=33 GID=33', 'UID=34 GID=34'), TCP4.replace('DPT=25', 'DPT=587')].map((f) => iso(`EGRESS D:x ${f}`, at(0))));
    expect(es.map((e) => d.isNew(e))).toEqual([true, true, true, true]);
  });

  test('memory follows the window, not the log', () => {
    const d = new Deduper();
    const es = events(Array.from({ length: 3000 }, (_, i) => iso(`EGRESS D:x ${TCP4.replace('SPT=57408', `SPT=${1000 + i}`)}`, at(i))));
    for (const e of es) d.isNew(e);
    expect(d.size).toBeLessThan(400);
  });
});

describe('StatsBuilder', () => {
  const log = [
    iso(`EGRESS d:smtp ${TCP4}`, at(0)),
    iso(`EGRESS d:smtp ${TCP4}`, at(1)), // retransmission
    iso(`EGRESS d:smtp ${TCP4.replace('SPT=57408', 'SPT=57500')}`, at(120)),
    iso(`EGRESS p:- ${UDP4}`, at(180)),
    iso(`EGRESS p:- ${TCP6}`, at(3600)),
    iso(`EGRESS p:- ${TCP6.replace('UID=1001 GID=1001', 'UID=4242 GID=4242').replace('SPT=40000', 'SPT=1')}`, at(3601)),
  ];

  test('totals, destinations, users, rules; names attached at the end', () => {
    const b = new StatsBuilder();
    const d = new Deduper();
    for (const e of events(log)) b.add(e, d.isNew(e));
    const s = b.finish(emptyCounts(), { users: new Map([[33, 'www-data'], [1001, 'appuser']]), hosts: new Map([['2001:db8::99', 'api.example.com']]), ruleNames: ['smtp', 'dns'] });
    expect(s).toMatchObject({ mode: 'audit', connections: 5, packets: 6, denied: 0, wouldDeny: 5, first: T0, last: T0 + 3601_000, prefixes: ['EGRESS '] });
    expect(s.destinations.map((x) => [x.dst, x.proto, x.port, x.host, x.connections, x.packets, x.rules])).toEqual([
      ['198.51.100.7', 'tcp', 25, undefined, 2, 3, ['smtp']],
      ['2001:db8::99', 'tcp', 443, 'api.example.com', 2, 2, ['-']],
      ['203.0.113.9', 'udp', 53, undefined, 1, 1, ['-']],
    ]);
    expect(s.destinations[1]!.users).toEqual([
      { uid: 1001, user: 'appuser', connections: 1 },
      { uid: 4242, connections: 1 },
    ]);
    expect(s.users.map((u) => [u.uid, u.user, u.connections])).toEqual([
      [33, 'www-data', 2],
      [0, undefined, 1],
      [1001, 'appuser', 1],
      [4242, undefined, 1],
    ]);
    expect(s.rules).toEqual([
      { isDefault: true, verdict: 'would-deny', connections: 3, packets: 3, logged: '-' },
      { isDefault: false, verdict: 'would-deny', connections: 2, packets: 3, rule: 'smtp', logged: 'smtp' },
    ]);
    expect(s.ruleUsers.find((r) => r.rule === 'smtp')).toEqual({ rule: 'smtp', user: 'www-data', verdict: 'would-deny', connections: 2, packets: 3 });
  });

  test('a cut tag is mapped back to the full rule name', () => {
    const b = new StatsBuilder();
    for (const e of events([iso(`EGRESS D:allow-the-very-long~${'abc'} ${TCP4}`)])) b.add(e, true);
    const full = 'allow-the-very-long-rule-name';
    const s = b.finish(emptyCounts(), { ruleNames: [full] });
    expect(s.rules[0]!.rule).toBe('allow-the-very-long~abc'); // hash does not match: kept as logged
    const b2 = new StatsBuilder();
    // logPrefix() cuts with the real hash; build the tag the way the backends do.
    const tag = logPrefix('EGRESS-PRODUCTION-1 ', 'D', full, 29);
    for (const e of events([iso(`${tag}${TCP4}`)])) b2.add(e, true);
    expect(b2.finish(emptyCounts(), { ruleNames: ['other', full] }).rules[0]).toMatchObject({ rule: full, logged: tag.slice('EGRESS-PRODUCTION-1 D:'.length, -1) });
  });

  test('timeline buckets and counts between times', () => {
    const m = new Map([
      [100, 2],
      [130, 1],
      [160, 5],
    ]);
    expect(timeline(m, 61)).toEqual({ bucketMinutes: 1, start: 100 * 60_000, counts: [2, ...new Array(29).fill(0), 1, ...new Array(29).fill(0), 5] });
    expect(timeline(m)).toMatchObject({ bucketMinutes: 5, start: 100 * 60_000 });
    expect(timeline(m, 10)).toMatchObject({ bucketMinutes: 10, counts: [2, 0, 0, 1, 0, 0, 5] });
    expect(countBetween(m, 100 * 60_000, 131 * 60_000)).toBe(3);
  });
});

/** Two sources that overlap: 198.51.100.3 is in both. */
const FORWARD_POLICY = `
version: 1
mode: enforce
default: reject
forward:
  sources:
    docker: { interfaces: ["br-*"], networks: [198.51.100.0/28, "2001:db8:1::/64"] }
    gitbox: { networks: [198.51.100.3] }
  unlisted: warn
allow:
  - name: dns
    reason: resolver for the host and the containers
    from: [host, docker]
    to: [203.0.113.53]
    ports: [udp/53]
deny:
  - name: no-ping
    reason: containers do not ping out
    from: [docker]
    icmp: [echo-request]
`;

describe('forwarded events (SPEC §6)', () => {
  const log = [
    iso(`EGRESS P:- ${FWD_TCP4}`, at(0)), // docker
    iso(`EGRESS P:- ${FWD_TCP4}`, at(1)), // retransmission
    iso(`EGRESS P:- ${FWD_UDP4}`, at(2)), // docker and gitbox
    iso(`EGRESS D:no-ping ${FWD_ICMP6}`, at(3)), // docker, IPv6
    iso(`EGRESS u:- ${FWD_OTHER4}`, at(4)), // from no source, let through
    iso(`EGRESS U:- ${FWD_OTHER4.replace('SPT=50000', 'SPT=50001')}`, at(5)), // from no source, denied
    iso(`EGRESS P:- ${TCP4}`, at(6)), // the host's own
  ];
  const build = (lines = log) => {
    const b = new StatsBuilder();
    const d = new Deduper();
    for (const e of events(lines)) b.add(e, d.isNew(e));
    return b;
  };

  test('in the totals and destinations like the host\'s; rules and users apart; u says nothing about the mode', () => {
    const s = build().finish(emptyCounts(), { users: new Map([[33, 'www-data']]) });
    expect(s).toMatchObject({ mode: 'enforce', connections: 6, packets: 7, denied: 5, wouldDeny: 1 });
    expect(s.destinations.find((d) => d.dst === '203.0.113.9')).toMatchObject({ connections: 3, packets: 4, users: [{ forwarded: true, connections: 3 }], rules: ['(unlisted)', '-'] });
    expect(s.users).toEqual([
      { forwarded: true, connections: 5, packets: 6 },
      { uid: 33, user: 'www-data', connections: 1, packets: 1 },
    ]);
    expect(s.rules).toEqual([
      { isDefault: true, verdict: 'denied', connections: 2, packets: 3, logged: '-', scope: 'forward' },
      { isDefault: false, unlisted: true, verdict: 'denied', connections: 1, packets: 1, logged: '-', scope: 'forward' },
      { isDefault: true, verdict: 'denied', connections: 1, packets: 1, logged: '-' },
      { isDefault: false, unlisted: true, verdict: 'would-deny', connections: 1, packets: 1, logged: '-', scope: 'forward' },
      { isDefault: false, verdict: 'denied', connections: 1, packets: 1, rule: 'no-ping', logged: 'no-ping', scope: 'forward' },
    ]);
    // The host's series only: forwarded events have no user.
    expect(s.ruleUsers).toEqual([{ rule: '-', user: 'www-data', verdict: 'denied', connections: 1, packets: 1 }]);
    const host = build(log.slice(6)).finish(emptyCounts(), {});
    expect(host.forwarded).toBeUndefined();
    expect(host.rules[0]).not.toHaveProperty('scope');
  });

  test('by the policy\'s sources (overlapping ones together, none = unlisted), or by input interface without a policy', async () => {
    const l = await loadText(FORWARD_POLICY);
    const s = build().finish(emptyCounts(), { forwardSources: l.ir!.forward!.sources });
    expect(s.forwarded).toMatchObject({ connections: 5, packets: 6, denied: 4, wouldDeny: 1, unlisted: { denied: 1, passed: 1 } });
    expect(s.forwarded!.sources.map((x) => [x.sources, x.interfaces, x.addresses, x.connections, x.packets, x.unlisted])).toEqual([
      [['docker'], ['br-test'], ['198.51.100.2', '2001:db8:1::2'], 2, 3, 0],
      [[], ['tap-vm1'], ['192.0.2.77'], 2, 2, 2],
      [['docker', 'gitbox'], ['br-test'], ['198.51.100.3'], 1, 1, 0],
    ]);
    expect(s.forwarded!.sources[0]).toMatchObject({ first: T0, last: T0 + 3000, rules: [{ rule: '-', verdict: 'denied', connections: 1, packets: 2 }, { rule: 'no-ping', verdict: 'denied', connections: 1, packets: 1 }] });
    expect(s.forwarded!.sources[1]!.rules).toEqual([
      { rule: '(unlisted)', verdict: 'denied', connections: 1, packets: 1 },
      { rule: '(unlisted)', verdict: 'would-deny', connections: 1, packets: 1 },
    ]);
    const bare = build().finish(emptyCounts(), {});
    expect(bare.forwarded!.sources.map((x) => [x.sources, x.interfaces, x.addressCount, x.connections])).toEqual([
      [undefined, ['br-test'], 3, 3],
      [undefined, ['tap-vm1'], 1, 2],
    ]);
  });

  test('a worker\'s state (structured clone) merges to the same answer as one builder', async () => {
    const l = await loadText(FORWARD_POLICY);
    const ctx = { forwardSources: l.ir!.forward!.sources };
    const whole = build().finish(emptyCounts(), ctx);
    const d = new Deduper();
    const es = events(log);
    const a = new StatsBuilder();
    const b = new StatsBuilder();
    es.forEach((e, i) => (i < 3 ? a : b).add(e, d.isNew(e)));
    const merged = new StatsBuilder();
    merged.merge(structuredClone(a.exportState()));
    merged.merge(structuredClone(b.exportState()));
    const s = merged.finish(emptyCounts(), ctx);
    expect(s.forwarded).toEqual(whole.forwarded);
    expect(s.rules).toEqual(whole.rules);
    expect(s.destinations).toEqual(whole.destinations);
    expect(s.users).toEqual(whole.users);
    expect(s.destinations.length).toBeGreaterThan(3);
  });
});

describe('many destinations, users and rules, read in parts', () => {
  /** 20,000 events over 300 destinations × 4 services, 5 users (and none), 44 rules in both modes; the same seed every run. */
  function many(): { e: LogEvent; isNew: boolean }[] {
    let seed = 11;
    const rand = () => ((seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const [tcp, udp, icmp, tcp6] = events([TCP4, UDP4, ICMP4, TCP6].map((f) => iso(`EGRESS D:x ${f}`, at(0))));
    const d = new Deduper();
    return Array.from({ length: 20_000 }, (_, i) => {
      const k = Math.floor(rand() * 300);
      const base = pick([tcp, tcp, udp, icmp, tcp6])!;
      // Mostly four rules; 40 others now and then (a row keeps the first 32 rule numbers as bits, the others in a list).
      const rule = rand() < 0.9 ? pick(['-', '-', 'smtp', 'metadata']) : `r${Math.floor(rand() * 40)}`;
      const e: LogEvent = {
        ...base,
        dst: base.family === 'ipv6' ? `2001:db8::${k.toString(16)}` : `198.51.100.${k % 250}`,
        ...(base.proto === 'icmp' ? { icmpType: pick([0, 8]) } : { dpt: pick([25, 443, 587]) }),
        spt: 1024 + Math.floor(rand() * 200),
        uid: pick([0, 33, 1000, 1001, 4294967294, undefined]),
        tag: rule === '-' ? pick(['P', 'p'] as const) : pick(['D', 'd'] as const),
        rule: rule === '-' ? undefined : rule,
        time: T0 + i * 50,
      };
      e.verdict = e.tag === 'P' || e.tag === 'D' ? 'denied' : 'would-deny';
      return { e, isNew: d.isNew(e) };
    });
  }

  test.each([1, 2, 3, 7])('cut into %i parts, each builder\'s state cloned and merged: the answer of one builder', (parts) => {
    const es = many();
    const whole = new StatsBuilder();
    for (const { e, isNew } of es) whole.add(e, isNew);
    const merged = new StatsBuilder();
    for (let p = 0; p < parts; p++) {
      const b = new StatsBuilder();
      for (const { e, isNew } of es.slice(Math.floor((p * es.length) / parts), Math.floor(((p + 1) * es.length) / parts))) b.add(e, isNew);
      merged.merge(structuredClone(b.exportState()));
    }
    const want = whole.finish(emptyCounts());
    const got = merged.finish(emptyCounts());
    expect(got.destinationCount).toBeGreaterThan(1000);
    expect(want.destinations.some((x) => x.users.length >= 4 && x.rules.length >= 3)).toBe(true);
    expect(want.rules.length).toBeGreaterThan(64);
    expect({ ...got, minutes: [...got.minutes] }).toEqual({ ...want, minutes: [...want.minutes] });
    // Every row, not only the top ones.
    expect(JSON.stringify(merged.finish(emptyCounts(), {}, Infinity).destinations)).toBe(JSON.stringify(whole.finish(emptyCounts(), {}, Infinity).destinations));
  });
});

describe('policy changes: denial rate before and after', () => {
  const entry = (s: number, action: HistoryEntry['action'] = 'apply', outcome: HistoryEntry['outcome'] = 'ok'): HistoryEntry => ({ time: T0 + s * 1000, action, outcome, policyHash: `sha256:${s}` });
  const perMinute = (fromMin: number, toMin: number, n: number, into = new Map<number, number>()) => {
    for (let m = fromMin; m < toMin; m++) into.set(Math.floor(T0 / 60_000) + m, n);
    return into;
  };

  test('a jump after an apply is flagged; a steady rate is not; confirms and failures are not changes', () => {
    const minutes = perMinute(0, 120, 1); // 60/h all along
    perMinute(120, 240, 5, minutes); // 300/h after the second apply
    const cov = { from: T0, to: T0 + 240 * 60_000 };
    const cs = analyzeChanges([entry(60 * 60), entry(61 * 60, 'confirm'), entry(90 * 60, 'apply', 'failed'), entry(120 * 60)], minutes, cov);
    expect(cs.map((c) => [c.entry.time, Math.round(c.before!.perHour), Math.round(c.after!.perHour), c.jump])).toEqual([
      [T0 + 3600_000, 60, 60, false],
      [T0 + 7200_000, 60, 300, true],
    ]);
  });

  test('windows stop at neighbouring changes and at the edge of the logs', () => {
    const minutes = perMinute(0, 60, 2);
    const cs = analyzeChanges([entry(10 * 60), entry(12 * 60), entry(600 * 60)], minutes, { from: T0, to: T0 + 3600_000 });
    expect(cs[0]).toMatchObject({ before: { connections: 20 }, jump: false });
    expect(cs[0]!.after).toBeUndefined(); // 2 minutes to the next change
    expect(cs[1]!.after).toMatchObject({ from: T0 + 12 * 60_000, to: T0 + 60 * 60_000, connections: 96 });
    expect(cs[2]).toMatchObject({ note: 'outside the logs read', jump: false });
  });

  test('refresh rounds that changed no address are not changes: refresh --watch does not cut every window to nothing', () => {
    const minutes = perMinute(0, 240, 1);
    perMinute(120, 240, 5, minutes);
    const rounds = Array.from({ length: 47 }, (_, i) => ({ ...entry((i + 1) * 5 * 60, 'refresh'), message: REFRESH_UNCHANGED }));
    const moved = { ...entry(100 * 60 + 30, 'refresh'), message: 'sets updated: web_hosts' };
    const cs = analyzeChanges([...rounds, moved, entry(120 * 60)].sort((a, b) => a.time - b.time), minutes, { from: T0, to: T0 + 240 * 60_000 });
    expect(cs.map((c) => [c.entry.action, c.jump])).toEqual([
      ['refresh', false],
      ['apply', true],
    ]);
  });

  test('no logs: no rates', () => {
    expect(analyzeChanges([entry(0)], new Map(), undefined)).toEqual([{ entry: entry(0), jump: false, note: 'no log data' }]);
  });
});
