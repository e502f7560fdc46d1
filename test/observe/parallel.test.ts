import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { StatsBuilder } from '../../src/observe/aggregate.js';
import { Deduper } from '../../src/observe/dedupe.js';
import { mergeParts, planParts, processPart } from '../../src/observe/parallel.js';
import { KernelLineParser } from '../../src/observe/parse-kernel.js';
import { NOW } from '../helpers.js';
import { iso, TCP4, UDP4 } from './lines.js';

/** 3,000 lines over ~50 minutes; SYNs retransmitted up to 30 s later, so many straddle any cut. */
function log(): string {
  const out: string[] = [];
  const t0 = Date.UTC(2026, 4, 30, 9);
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 3000; i++) {
    const t = t0 + i * 1000;
    const port = 1000 + Math.floor(rand() * 40);
    const dst = `198.51.100.${Math.floor(rand() * 20)}`;
    // Retransmissions reuse an earlier line's source port: the same attempt.
    const spt = rand() < 0.4 && i > 30 ? 20000 + i - Math.floor(rand() * 30) : 20000 + i;
    const f = (rand() < 0.8 ? TCP4 : UDP4).replace('SPT=57408', `SPT=${spt}`).replace('SPT=45089', `SPT=${spt}`).replace('DST=198.51.100.7', `DST=${dst}`).replace('DST=203.0.113.9', `DST=${dst}`).replace(/DPT=\d+/, `DPT=${port}`);
    out.push(iso(`EGRESS ${rand() < 0.5 ? 'D:smtp' : 'P:-'} ${f}`, new Date(t).toISOString()));
    if (i % 500 === 7) out.push(iso('EGRESS D:smtp IN= OUT=eth0 SRC=1', new Date(t).toISOString())); // malformed
  }
  return out.join('\n') + '\n';
}

function sequential(text: string) {
  const p = new KernelLineParser({ now: NOW.getTime() });
  const d = new Deduper();
  const b = new StatsBuilder();
  text.split('\n').forEach((l, i) => {
    if (i === text.split('\n').length - 1 && l === '') return;
    const e = p.parseLine(l, 'kern.log', i + 1);
    if (e) b.add(e, d.isNew(e));
  });
  return { stats: b.finish(p.counts), counts: p.counts };
}

describe('parallel stats: parts and merge give exactly the sequential answer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'egress-par-'));
  const text = log();
  writeFileSync(join(dir, 'kern.log'), text);
  const want = sequential(text);

  test.each([1, 2, 3, 7, 16])('%i parts', (n) => {
    const parts = planParts([{ path: join(dir, 'kern.log'), name: 'kern.log' }], n);
    expect(parts.length).toBeGreaterThanOrEqual(Math.min(n, 2));
    const results = parts.map((p, k) => processPart(p, { now: NOW.getTime() }, k > 0));
    const { builder, counts } = mergeParts(results, parts);
    const got = builder.finish(counts);
    expect({ ...got, minutes: [...got.minutes] }).toEqual({ ...want.stats, counts: want.counts, minutes: [...want.stats.minutes] });
    expect(counts.problems.map((p) => p.line)).toEqual(want.counts.problems.map((p) => p.line));
  });

  test('a gzip file is one part', () => {
    writeFileSync(join(dir, 'kern.log.1.gz'), gzipSync(text));
    const parts = planParts([{ path: join(dir, 'kern.log.1.gz'), name: 'kern.log.1.gz' }], 4);
    expect(parts).toEqual([{ path: join(dir, 'kern.log.1.gz'), name: 'kern.log.1.gz', start: 0, end: expect.any(Number), gzip: true }]);
    const r = mergeParts([processPart(parts[0]!, { now: NOW.getTime() }, false)], parts);
    expect(r.builder.finish(r.counts).connections).toBe(want.stats.connections);
  });
});
