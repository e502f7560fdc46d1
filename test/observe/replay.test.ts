import { describe, expect, test } from 'vitest';
import { ruleActivity, parseSamples, type CounterSample } from '../../src/observe/counters.js';
import { Deduper } from '../../src/observe/dedupe.js';
import { KernelLineParser } from '../../src/logs/parse-kernel.js';
import { Replayer } from '../../src/observe/replay.js';
import { parseSince } from '../../src/logs/since.js';
import { ACCOUNTS, loadText, NOW } from '../helpers.js';
import { iso, TCP4, TCP6, UDP4 } from './lines.js';

const CANDIDATE = `
version: 1
mode: enforce
default: reject
allow:
  - name: dns
    reason: resolver
    to: [203.0.113.9]
    ports: [udp/53]
  - name: api
    reason: partner API for appuser
    user: appuser
    to: ["2001:db8::99"]
    ports: [tcp/443]
deny:
  - name: smtp
    reason: only the MTA
    ports: [tcp/25]
    except: { user: postfix }
`;

describe('replay', () => {
  test('recorded denials through a candidate: what it still denies (and by which rule), what it admits', async () => {
    const l = await loadText(CANDIDATE);
    const r = new Replayer(l.ir!, ACCOUNTS);
    const p = new KernelLineParser({ now: NOW.getTime() });
    const d = new Deduper();
    const lines = [
      iso(`EGRESS p:- ${UDP4}`), // now allowed by dns
      iso(`EGRESS p:- ${TCP6}`), // uid 1001 = appuser: allowed by api
      iso(`EGRESS p:- ${TCP6.replace('UID=1001 GID=1001', 'UID=33 GID=33').replace('SPT=40000', 'SPT=40001')}`), // www-data: still the default
      iso(`EGRESS d:smtp ${TCP4}`), // still smtp
      iso(`EGRESS d:smtp ${TCP4}`, '2026-11-23T09:14:43.000000+01:00'), // retransmission
    ];
    for (const line of lines) {
      const e = p.parseLine(line);
      if (e) r.add(e, d.isNew(e));
    }
    const { stats, summary } = r.finish(p.counts, {});
    expect(summary).toEqual({
      connections: 4,
      denied: 2,
      admitted: 2,
      admittedBy: [
        { rule: 'api', connections: 1 },
        { rule: 'dns', connections: 1 },
      ],
      unreadable: 0,
    });
    // Shown as stats shows it, with the candidate's verdict (enforce) and rules.
    expect(stats).toMatchObject({ connections: 2, packets: 3, denied: 2, wouldDeny: 0 });
    expect(stats.rules.map((x) => [x.rule ?? '(default)', x.connections, x.packets])).toEqual([
      ['smtp', 1, 2],
      ['(default)', 1, 1],
    ]);
  });
});

describe('counter samples and stale rules', () => {
  const day = 86_400_000;
  const sample = (daysAgo: number, dns: number, smtp: number): CounterSample => ({
    time: new Date(NOW.getTime() - daysAgo * day).toISOString(),
    counters: [
      { rule: 'dns', action: 'allow', family: 'ipv4', packets: dns, bytes: dns * 60 },
      { rule: 'dns', action: 'allow', family: 'ipv6', packets: 0, bytes: 0 },
      { rule: 'smtp', action: 'deny', family: 'ipv4', packets: smtp, bytes: 0 },
      { rule: 'reject', action: 'default', family: 'ipv4', packets: 99, bytes: 0 },
    ],
  });
  const rules = [
    { name: 'dns', action: 'allow' as const },
    { name: 'smtp', action: 'deny' as const },
    { name: 'api', action: 'allow' as const },
  ];

  test('hits within the window from sample differences; a reload (counter went down) counts from zero', () => {
    const samples = [sample(40, 10, 5), sample(35, 20, 5), sample(20, 30, 5), sample(10, 4, 5), sample(1, 9, 5)];
    expect(ruleActivity(rules, samples, NOW, 30)).toEqual([
      { rule: 'dns', action: 'allow', status: 'used', hits: 4 + 5 + 10, lastHit: samples[4]!.time },
      { rule: 'smtp', action: 'deny', status: 'stale', hits: 0 },
      { rule: 'api', action: 'allow', status: 'unknown', hits: 0, note: 'fewer than two samples of this rule' },
    ]);
  });

  test('too little history: unknown, never stale', () => {
    const a = ruleActivity(rules, [sample(5, 1, 1), sample(1, 1, 1)], NOW, 30);
    expect(a.map((x) => [x.rule, x.status])).toEqual([
      ['dns', 'unknown'],
      ['smtp', 'unknown'],
      ['api', 'unknown'],
    ]);
    expect(a[0]!.note).toMatch(/^samples only reach back to /);
  });

  test('the samples file is read tolerantly', () => {
    const text = [JSON.stringify(sample(2, 1, 1)), '{"time":"x"}', 'not json', JSON.stringify(sample(3, 1, 1)), '{"time": "2026-05-01T00:00:00Z", "counters": [{"rule": 1}]'].join('\n');
    const r = parseSamples(text);
    expect(r.samples.map((s) => s.time)).toEqual([sample(3, 1, 1).time, sample(2, 1, 1).time]);
    expect(r.skipped).toBe(3);
  });
});

test.each([
  ['2h', NOW.getTime() - 2 * 3_600_000],
  ['7d', NOW.getTime() - 7 * 86_400_000],
  ['2026-05-30', new Date(2026, 4, 30).getTime()],
  ['2026-05-30T10:00', new Date(2026, 4, 30, 10).getTime()],
  ['2026-05-30 10:00:30Z', Date.UTC(2026, 4, 30, 10, 0, 30)],
  [
    'yesterday',
    (() => {
      const d = new Date(NOW);
      d.setHours(0, 0, 0, 0);
      d.setDate(d.getDate() - 1);
      return d.getTime();
    })(),
  ],
  ['2026-02-30', undefined],
  ['soon', undefined],
])('--since %s', (v, want) => {
  expect(parseSince(v, NOW)).toBe(want);
});
