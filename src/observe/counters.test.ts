import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { leftovers } from '../kernel/jsonl.js';
import { appendSample, COUNTERS_FILE, COUNTERS_KEEP_DAYS, COUNTERS_MAX_SAMPLES, parseSamples, readSamples, ruleActivity, type CounterSample } from './counters.js';
import { NOW, tempDir } from '../../test/helpers.js';

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

describe('counters.jsonl limits', () => {
  const HOUR = 3_600_000;
  /** A sample `hoursAgo` before NOW whose one counter has `packets`. */
  const at = (hoursAgo: number, packets = 1): CounterSample => ({
    time: new Date(NOW.getTime() - hoursAgo * HOUR).toISOString(),
    counters: [{ rule: 'smtp', action: 'deny', family: 'ipv4', packets, bytes: 0 }],
  });
  const write = (d: string, xs: CounterSample[]) => writeFileSync(join(d, COUNTERS_FILE), xs.map((x) => JSON.stringify(x) + '\n').join(''));
  const hours = (d: string) => readFileSync(join(d, COUNTERS_FILE), 'utf8').trim().split('\n').map((l) => (NOW.getTime() - Date.parse((JSON.parse(l) as CounterSample).time)) / HOUR);

  test('within a day past the kept days, samples are appended without a rewrite', async () => {
    const d = tempDir('egress-counters-');
    write(d, [at((COUNTERS_KEEP_DAYS + 1) * 24 - 1), at(24)]); // an anchor, and not a day more
    const before = readFileSync(join(d, COUNTERS_FILE), 'utf8');
    await appendSample(d, at(0));
    expect(readFileSync(join(d, COUNTERS_FILE), 'utf8').startsWith(before)).toBe(true);
  });

  test('past the kept days: the samples of the last days stay, with the newest before them, so a window of those days is still covered', async () => {
    const d = tempDir('egress-counters-');
    // Hourly samples, 100 days back; the smtp counter never moves.
    const xs = [];
    for (let h = 100 * 24; h >= 1; h--) xs.push(at(h));
    write(d, xs);
    await appendSample(d, at(0));
    const left = hours(d);
    expect(left[0]).toBe(COUNTERS_KEEP_DAYS * 24 + 1); // the anchor: the newest sample before the kept days
    expect(left[1]).toBe(COUNTERS_KEEP_DAYS * 24);
    expect(left.at(-1)).toBe(0);
    expect(left).toHaveLength(COUNTERS_KEEP_DAYS * 24 + 2);
    const { samples, skipped } = await readSamples(d);
    expect(skipped).toBe(0);
    // A window of all the kept days can still say stale; a longer one says unknown, never stale.
    expect(ruleActivity([{ name: 'smtp', action: 'deny' }], samples, NOW, COUNTERS_KEEP_DAYS)[0]!.status).toBe('stale');
    expect(ruleActivity([{ name: 'smtp', action: 'deny' }], samples, NOW, COUNTERS_KEEP_DAYS + 5)[0]!.status).toBe('unknown');
    expect(leftovers(join(d, COUNTERS_FILE))).toEqual([]);
  });

  test('past the most samples: the newest are kept; lines that are no sample go in the rewrite', async () => {
    const d = tempDir('egress-counters-');
    const n = Math.floor(COUNTERS_MAX_SAMPLES * 1.1) + 1;
    // Every 5 minutes: within the kept days, but too many.
    const xs = [];
    for (let i = n; i >= 1; i--) xs.push(at(i / 12));
    write(d, xs);
    writeFileSync(join(d, COUNTERS_FILE), readFileSync(join(d, COUNTERS_FILE), 'utf8') + '{"time":"2026-0');
    await appendSample(d, at(0, 7));
    const left = hours(d);
    expect(left).toHaveLength(COUNTERS_MAX_SAMPLES);
    expect(left.at(-1)).toBe(0);
    expect(left[0]).toBeCloseTo((COUNTERS_MAX_SAMPLES - 1) / 12, 6);
    expect((await readSamples(d)).skipped).toBe(0);
  });

  test('a crash between the rewrite and its rename leaves the old file intact; the next append finishes the job', async () => {
    const d = tempDir('egress-counters-');
    write(d, [at((COUNTERS_KEEP_DAYS + 3) * 24), at((COUNTERS_KEEP_DAYS + 2) * 24), at(1)]);
    const path = join(d, COUNTERS_FILE);
    const before = readFileSync(path, 'utf8');
    let tmp = '';
    await expect(
      appendSample(d, at(0), {
        beforeRename(t) {
          tmp = t;
          throw new Error('killed');
        },
      }),
    ).rejects.toThrow('killed');
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(existsSync(tmp)).toBe(true);
    expect(existsSync(join(d, 'lock'))).toBe(false); // released
    await appendSample(d, at(0));
    expect(leftovers(path)).toEqual([]);
    expect(hours(d)).toEqual([(COUNTERS_KEEP_DAYS + 2) * 24, 1, 0]);
  });
});
