/**
 * Memory of `stats` over big logs, measured: the compiled CLI spawned on a
 * generated log (2,000,000 lines, or 240,000 of as many destinations), its peak RSS (getrusage's maxRSS, as
 * /usr/bin/time %M; worker threads included) read back at exit. A .gz is
 * streamed (it was decompressed whole: 1 GB for a 50 MB file), and a log
 * whose time jumps back keeps memory flat (the deduper held one entry per
 * connection until the log caught up; a parallel part held every event
 * after the jump), and a log of many destinations keeps its per-destination
 * tallies compact (an object and three 17-slot arrays each took ~720 bytes:
 * 310 MB for 240,000 destination × port pairs; typed-array columns now,
 * observe/dest-table.ts). The bound is generous: the point is flat, not tight.
 */
import { spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { beforeAll, describe, expect, test } from 'vitest';
import { tempDir } from '../helpers.js';
import { useCli } from '../kernel/forward-env.js';
import { iso, TCP4, TCP6, UDP4 } from './lines.js';
import { jsonResult } from '../json.js';

const LINES = 2_000_000;
const RSS_BOUND_MB = 200;
const dir = tempDir('egress-memory-');

/**
 * `n` lines, 100 to the second from `t0`: a few distinct lines, each with a
 * new source port (every line a new connection, so dedupe keeps entries),
 * written in blocks. `back`: from a quarter of the way, the clock set back a day.
 */
async function writeLog(path: string, gzip: boolean, back: boolean): Promise<void> {
  const t0 = Date.UTC(2026, 4, 30, 0);
  const file = createWriteStream(path);
  const gz = gzip ? createGzip({ level: 1 }) : undefined;
  const out = gz ?? file;
  gz?.pipe(file);
  const kinds = [TCP4, UDP4, TCP4.replace('DPT=25', 'DPT=443'), TCP4.replace('DST=198.51.100.7', 'DST=203.0.113.80')];
  for (let i = 0; i < LINES; ) {
    const block: string[] = [];
    for (let k = 0; k < 20_000 && i < LINES; k++, i++) {
      const t = t0 + i * 10 - (back && i >= LINES / 4 ? 86_400_000 : 0);
      const f = kinds[i & 3]!.replace(/SPT=\d+/, `SPT=${1024 + (i % 60_000)}`).replace(/UID=\d+ GID=\d+/, `UID=${1000 + ((i / 60_000) | 0)} GID=100`);
      block.push(iso(`EGRESS D:smtp ${f}`, new Date(t).toISOString()));
    }
    if (!out.write(block.join('\n') + '\n')) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  out.end();
  await new Promise<void>((r) => file.on('finish', () => r()));
}

const MANY_DSTS = 60_000;
const MANY_PORTS = 4;

/**
 * One line per destination × port: MANY_DSTS addresses of 2001:db8::/32
 * (logged expanded, as the kernel does) × MANY_PORTS ports, gzipped.
 */
async function writeManyLog(path: string): Promise<void> {
  const t0 = Date.UTC(2026, 4, 30, 0);
  const file = createWriteStream(path);
  const out = createGzip({ level: 1 });
  out.pipe(file);
  const hex = (n: number) => n.toString(16).padStart(4, '0');
  const rows = MANY_DSTS * MANY_PORTS;
  for (let i = 0; i < rows; ) {
    const block: string[] = [];
    for (let k = 0; k < 20_000 && i < rows; k++, i++) {
      const d = i % MANY_DSTS;
      const f = TCP6.replace('0000:0000:0099 ', `0000:${hex(d >>> 16)}:${hex(d & 0xffff)} `)
        .replace('SPT=40000', `SPT=${1024 + (i % 60_000)}`)
        .replace('DPT=443', `DPT=${8000 + Math.floor(i / MANY_DSTS)}`);
      block.push(iso(`EGRESS D:smtp ${f}`, new Date(t0 + i * 10).toISOString()));
    }
    if (!out.write(block.join('\n') + '\n')) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  out.end();
  await new Promise<void>((r) => file.on('finish', () => r()));
}

describe('stats memory on big logs (spawned, compiled CLI)', () => {
  const cli = useCli('memory');
  let preload = '';
  beforeAll(() => {
    preload = join(dir, 'rss.cjs');
    writeFileSync(preload, `const { isMainThread } = require('node:worker_threads');\nif (isMainThread) process.on('exit', () => require('node:fs').writeFileSync(process.env.EGRESS_RSS_FILE, String(process.resourceUsage().maxRSS)));\n`);
  });

  /** One reading thread (EGRESS_STATS_WORKERS=1): the bound is on the reader; two threads each add a heap (BENCHMARKS.md). */
  function stats(file: string): { rssMb: number; lines: number; connections: number; destinationCount: number } {
    const rssFile = join(dir, `${file}.rss`);
    const r = spawnSync(process.execPath, ['-r', preload, cli.path, 'stats', file, '--json'], { cwd: dir, env: { ...process.env, EGRESS_STATE_DIR: join(dir, 'state'), EGRESS_RSS_FILE: rssFile, EGRESS_STATS_WORKERS: '1' }, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 600_000 });
    if (r.status !== 0) throw new Error(`stats ${file}: exit ${r.status}: ${r.stderr.slice(0, 400)}`);
    const j = jsonResult(r.stdout, 'stats', r.status ?? undefined) as { lines: { lines: number }; connections: number; destinationCount: number };
    return { rssMb: existsSync(rssFile) ? Number(readFileSync(rssFile, 'utf8')) / 1024 : NaN, lines: j.lines.lines, connections: j.connections, destinationCount: j.destinationCount };
  }

  test.each([
    ['a .gz', 'kern.log.gz', true, false],
    ['a plain log whose time jumps back a day', 'back.log', false, true],
  ])(`%s: under ${RSS_BOUND_MB} MB`, async (_what, name, gzip, back) => {
    await writeLog(join(dir, name), gzip, back);
    const r = stats(name);
    expect(r.lines).toBe(LINES);
    // Every line is a new connection (a new source port, or a new uid when the ports come round again).
    expect(r.connections).toBe(LINES);
    expect(r.rssMb).toBeLessThan(RSS_BOUND_MB);
  }, 900_000);

  test(`a .gz of ${MANY_DSTS * MANY_PORTS} destination × port pairs: under ${RSS_BOUND_MB} MB`, async () => {
    await writeManyLog(join(dir, 'many.log.gz'));
    const r = stats('many.log.gz');
    expect(r.lines).toBe(MANY_DSTS * MANY_PORTS);
    expect(r.destinationCount).toBe(MANY_DSTS * MANY_PORTS);
    expect(r.rssMb).toBeLessThan(RSS_BOUND_MB);
  }, 900_000);
});
