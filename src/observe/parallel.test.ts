import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { KernelLineParser } from '../logs/parse-kernel.js';
import { StatsBuilder } from './aggregate.js';
import { Deduper } from './dedupe.js';
import { mergeParts, parallelPlan, planParts, processPart, workerScript } from './parallel.js';
import { NOW, tempDir } from '../../test/helpers.js';
import { iso, TCP4, UDP4 } from '../../test/observe/lines.js';
import { ROOT } from '../../test/paths.js';

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
  const dir = tempDir('egress-par-');
  const text = log();
  writeFileSync(join(dir, 'kern.log'), text);
  const want = sequential(text);

  test.each([1, 2, 3, 7, 16])('%i parts', async (n) => {
    const parts = planParts([{ path: join(dir, 'kern.log'), name: 'kern.log' }], n);
    expect(parts.length).toBeGreaterThanOrEqual(Math.min(n, 2));
    const results = await Promise.all(parts.map((p, k) => processPart(p, { now: NOW.getTime() }, k > 0)));
    const { builder, counts } = mergeParts(results, parts);
    const got = builder.finish(counts);
    expect({ ...got, minutes: [...got.minutes] }).toEqual({ ...want.stats, counts: want.counts, minutes: [...want.stats.minutes] });
    expect(counts.problems.map((p) => p.line)).toEqual(want.counts.problems.map((p) => p.line));
  });

  test('a gzip file is one part', async () => {
    writeFileSync(join(dir, 'kern.log.1.gz'), gzipSync(text));
    const parts = planParts([{ path: join(dir, 'kern.log.1.gz'), name: 'kern.log.1.gz' }], 4);
    expect(parts).toEqual([{ path: join(dir, 'kern.log.1.gz'), name: 'kern.log.1.gz', start: 0, end: expect.any(Number), gzip: true }]);
    const r = mergeParts([await processPart(parts[0]!, { now: NOW.getTime() }, false)], parts);
    expect(r.builder.finish(r.counts).connections).toBe(want.stats.connections);
  });

  test('a part whose time jumps back holds back only its start, not everything after the jump', async () => {
    // 100 lines a second apart, then the clock set back a day and 2,900 more: all "before" the part's first minute.
    const lines = text.trimEnd().split('\n');
    const back = lines.map((l, i) => (i < 100 ? l : l.replace(/^2026-05-30T/, '2026-05-29T'))).join('\n') + '\n';
    writeFileSync(join(dir, 'back.log'), back);
    const part = { path: join(dir, 'back.log'), name: 'back.log', start: 0, end: Buffer.byteLength(back), gzip: false };
    const r = await processPart(part, { now: NOW.getTime() }, true);
    expect(r.head.length).toBeLessThanOrEqual(62);
    // Everything after it is counted in the part: with the head counted as a first part's would be, the sequential answer.
    const b = new StatsBuilder();
    b.merge(r.state);
    const d = new Deduper();
    for (const e of r.head) b.add(e, d.isNew(e));
    expect(b.finish(r.counts).connections).toBe(sequential(back).stats.connections);
  });

  // Worker threads run compiled JavaScript only: under the test runner this module is TypeScript and
  // has no worker script beside it. So build src/ afresh into a directory of its own (a stale dist/
  // would still hold files from before a move) and load parallel.js from there, as bin/egress.js loads dist/.
  test('from a fresh build: workerScript() finds the compiled worker, and the threads give the sequential answer', async () => {
    expect(workerScript()).toBeUndefined();
    const root = ROOT;
    mkdirSync(join(root, 'tmp'), { recursive: true });
    const out = mkdtempSync(join(root, 'tmp', 'parallel-build-')); // inside the repository, so the build's imports find node_modules
    try {
      execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json'), '--outDir', out], { stdio: 'pipe' });
      const built = (await import(pathToFileURL(join(out, 'observe', 'parallel.js')).href)) as typeof import('./parallel.js');
      const script = built.workerScript();
      expect(script).toBe(join(out, 'observe', 'stats-worker.js'));
      const plan = await built.parallelPlan([{ kind: 'file', path: join(dir, 'kern.log'), name: 'kern.log' }], 3);
      expect(plan).toMatchObject({ workers: 3, script });
      const { builder, counts } = await built.statsParallel(plan!.files, { now: NOW.getTime() }, plan!.workers, plan!.script);
      const got = builder.finish(counts);
      expect({ ...got, minutes: [...got.minutes] }).toEqual({ ...want.stats, counts: want.counts, minutes: [...want.stats.minutes] });
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('parallelPlan: in parallel only what the sequential reader reads as kernel log lines', () => {
  const dir = tempDir('egress-plan-');
  const kern = iso(`EGRESS D:smtp ${TCP4}`) + '\n';
  const pf = '#Version: 1.5\r\n#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path\r\n';
  const files: Record<string, string | Buffer> = {
    'kern.log': kern,
    'kern.log.1': kern,
    'kern.log.2.gz': gzipSync(kern),
    'commented.log': `# copied from web1\n${kern}`,
    'pfirewall.log': pf,
    'pfirewall.log.1.gz': gzipSync(pf),
    'bom.log': Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(pf)]),
    'broken.gz': Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]), // a gzip header, then a reserved deflate block type
  };
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  // kern.log.1 is older than kern.log: reading order is by modification time, oldest first.
  utimesSync(join(dir, 'kern.log.1'), new Date('2026-05-01'), new Date('2026-05-01'));
  const src = (...names: string[]) => names.map((n) => ({ kind: 'file' as const, path: join(dir, n), name: n }));

  test.each([
    [['kern.log', 'kern.log.1'], ['kern.log.1', 'kern.log']],
    [['kern.log.2.gz'], undefined], // one gzip file is one part: read in this thread, not in a worker of its own
    [['kern.log.2.gz', 'kern.log.1'], ['kern.log.1', 'kern.log.2.gz']],
    [['commented.log'], ['commented.log']], // a leading "#" alone is not a Windows Firewall header
    [['pfirewall.log'], undefined],
    [['pfirewall.log.1.gz'], undefined], // the header is inside the compressed stream
    [['bom.log'], undefined],
    [['kern.log', 'pfirewall.log.1.gz'], undefined],
    [['broken.gz'], undefined], // the sequential reader reports it
    [['missing.log'], undefined],
  ])('%j → %j', async (names, want) => {
    const plan = await parallelPlan(src(...names), 2, '/x/stats-worker.js');
    expect(plan?.files.map((f) => f.name)).toEqual(want);
  });

  test('not for small files unless forced, never with one worker, a non-file source or no worker script', async () => {
    expect(await parallelPlan(src('kern.log'), undefined, '/x/stats-worker.js')).toBeUndefined();
    expect(await parallelPlan(src('kern.log'), 1, '/x/stats-worker.js')).toBeUndefined();
    expect(await parallelPlan([...src('kern.log'), { kind: 'journal' }], 2, '/x/stats-worker.js')).toBeUndefined();
    expect(await parallelPlan(src('kern.log'), 2, '')).toBeUndefined();
    expect(await parallelPlan(src('kern.log'), 2, '/x/stats-worker.js')).toEqual({ files: [{ path: join(dir, 'kern.log'), name: 'kern.log' }], workers: 2, script: '/x/stats-worker.js' });
  });
});
