import { describe, expect, test } from 'vitest';
import { parseSamples, ruleActivity, type CounterSample } from './counters.js';
import { NOW } from '../../test/helpers.js';

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

  test('a rule\'s hits are its host and forward counters together; the forward default, unlisted and builtins are no rule\'s', () => {
    // registry: from [docker] only (forward counters); dns: from [host, docker] (both); nothing else hits.
    const fwd = (daysAgo: number, registry: number, dnsHost: number, dnsFwd: number): CounterSample => ({
      time: new Date(NOW.getTime() - daysAgo * day).toISOString(),
      counters: [
        { rule: 'dns', action: 'allow', family: 'ipv4', packets: dnsHost, bytes: 0 },
        { rule: 'registry', action: 'allow', family: 'ipv4', scope: 'forward', packets: registry, bytes: 0 },
        { rule: 'registry', action: 'allow', family: 'ipv6', scope: 'forward', packets: registry, bytes: 0 },
        { rule: 'dns', action: 'allow', family: 'ipv4', scope: 'forward', packets: dnsFwd, bytes: 0 },
        { rule: 'smtp', action: 'deny', family: 'ipv4', packets: 0, bytes: 0 },
        { rule: 'reject', action: 'default', family: 'ipv4', scope: 'forward', packets: 50 * daysAgo, bytes: 0 },
        { rule: 'warn', action: 'unlisted', family: 'ipv4', scope: 'forward', packets: 7 * daysAgo, bytes: 0 },
        { rule: 'into_source', action: 'builtin', scope: 'forward', packets: 9 * daysAgo, bytes: 0 },
      ],
    });
    const all = [...rules, { name: 'registry', action: 'allow' as const }];
    // dns: no host hits in the window, only forwarded ones (5); registry: 3 per family; smtp: none.
    const a = ruleActivity(all, [fwd(40, 1, 10, 0), fwd(20, 4, 10, 0), fwd(2, 4, 10, 5)], NOW, 30);
    expect(a.map((x) => [x.rule, x.status, x.hits])).toEqual([
      ['dns', 'used', 5],
      ['smtp', 'stale', 0],
      ['api', 'unknown', 0],
      ['registry', 'used', 6],
    ]);
    // Only the forward counter hit, and long ago: stale, though the host counter never moved either.
    expect(ruleActivity(all, [fwd(40, 1, 10, 0), fwd(35, 2, 10, 1), fwd(1, 2, 10, 1)], NOW, 30).map((x) => [x.rule, x.status])).toEqual([
      ['dns', 'stale'],
      ['smtp', 'stale'],
      ['api', 'unknown'],
      ['registry', 'stale'],
    ]);
  });

  test('the samples file is read tolerantly', () => {
    const text = [JSON.stringify(sample(2, 1, 1)), '{"time":"x"}', 'not json', JSON.stringify(sample(3, 1, 1)), '{"time": "2026-05-01T00:00:00Z", "counters": [{"rule": 1}]'].join('\n');
    const r = parseSamples(text);
    expect(r.samples.map((s) => s.time)).toEqual([sample(3, 1, 1).time, sample(2, 1, 1).time]);
    expect(r.skipped).toBe(3);
  });
});
