#!/usr/bin/env node
// Log reading throughput: `egress stats` against the shell pipeline an operator
// would write for the top-destinations table, over the same generated file, in
// the same run. Runs against dist/ (npm run build first).
//
// Usage: node bench/logs.mjs [--lines N] [--runs R] [--keep] [--json] [--generate-only (print the file's path, keep it)]
//                             [--against DIR (another built checkout: its egress too, in the same rounds)]
//
// The file: N lines (default 2,000,000) of a busy host's kern.log/syslog: ~88%
// egress denial lines (a mix of RFC 3164 kern.log lines with the kernel's
// [seconds] stamp and rsyslog ISO 8601 lines; IPv4 and IPv6; TCP, UDP, ICMP;
// deny-rule and default tags; TCP SYNs retransmitted 1-4 times), ~7% other
// daemons' lines, ~5% inbound netfilter lines of another LOG rule (UFW).
//
// The pipelines (LC_ALL=C, their fastest setting; counting log lines, no dedupe):
//   sed: grep -F 'EGRESS ' F | sed -n 's/.* DST=\([^ ]*\) .* DPT=\([0-9]*\) .*/\1 \2/p' | sort | uniq -c | sort -rn | head
//   awk: grep -F 'EGRESS ' F | awk '{for(i=1;i<=NF;i++){if(substr($i,1,4)=="DST=")d=substr($i,5);else if(substr($i,1,4)=="DPT=")p=substr($i,5)} print d, p}' | sort | uniq -c | sort -rn | head
// egress: node bin/egress.js stats F --json (every table, dedupe, timeline, malformed-line accounting).
// Peak RSS (/usr/bin/time %M: the largest of a pipeline's processes; egress's worker threads included) per contender.
//
// Also, in-process: the indexOf parser (src/logs/parse-kernel.ts) against a
// regex-per-field parser of the same lines, to show why the hot path has no regex.
import { spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { KernelLineParser } from '../dist/logs/parse-kernel.js';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const LINES = arg('lines', 2_000_000);
const RUNS = arg('runs', 3);
const json = process.argv.includes('--json');
const againstAt = process.argv.indexOf('--against');
const AGAINST = againstAt > 0 ? process.argv[againstAt + 1] : undefined;
const log = (s) => json || process.stderr.write(s + '\n');
const ROOT = join(import.meta.dirname, '..');

let seed = 0x9e3779b9;
const rand = () => ((seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
// A heavy-tailed destination choice: a few destinations get most denials, as in real logs.
const zipf = (n) => Math.floor(n * rand() ** 3);

const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n, w = 2) => String(n).padStart(w, '0');
const v4dst = Array.from({ length: 3000 }, (_, i) => `${pick(['198.51', '203.0'])}.${(i >> 8) & 255}.${i & 255}`);
const v6dst = Array.from({ length: 800 }, (_, i) => `2001:0db8:${pad((i >> 4).toString(16), 4)}:0000:0000:0000:0000:${pad((i & 15).toString(16), 4)}`);
const users = [[0, 0], [33, 33], [107, 114], [998, 998], [1001, 1001], [1002, 1002]];
const rules = ['-', '-', '-', '-', 'smtp', 'metadata', 'telemetry'];

function generate(path) {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(path, { highWaterMark: 1 << 20 });
    out.on('error', reject);
    // The log ends about now (a syslog line has no year: one from the future would be read as last year's).
    const t0 = Math.floor((Date.now() - LINES * 25) / 1000) * 1000;
    const pending = []; // retransmissions due later: [due ms, line without its stamp]
    let n = 0;
    let ms = 0;
    let buf = [];
    const flush = (cb) => {
      const ok = out.write(buf.join(''));
      buf = [];
      if (ok) setImmediate(cb);
      else out.once('drain', cb);
    };
    const stamp = (iso) => {
      const d = new Date(t0 + ms);
      if (iso) return `${d.toISOString().replace('Z', '000+00:00')}`;
      return `${MON[d.getUTCMonth()]} ${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
    };
    const mono = () => `[${(ms / 1000 + 12345).toFixed(6).padStart(12)}] `;
    const step = () => {
      while (n < LINES && buf.length < 20_000) {
        ms += Math.floor(rand() * 40);
        while (pending.length && pending[0][0] <= ms && n < LINES) {
          const [, rest] = pending.shift();
          buf.push(`${rand() < 0.4 ? `${stamp(true)} web1 kernel: ` : `${stamp(false)} web1 kernel: ${mono()}`}${rest}`);
          n++;
        }
        if (n >= LINES) break;
        const iso = rand() < 0.4;
        const head = iso ? `${stamp(true)} web1 kernel: ` : `${stamp(false)} web1 kernel: ${mono()}`;
        const r = rand();
        if (r < 0.07) {
          buf.push(`${iso ? stamp(true) : stamp(false)} web1 ${pick(['CRON[2211]: (root) CMD (run-parts /etc/cron.hourly)', 'sshd[901]: Accepted publickey for deploy from 192.0.2.44 port 50122 ssh2', 'systemd[1]: Started Session 4242 of user deploy.', 'postfix/smtpd[77]: connect from unknown[203.0.113.77]'])}\n`);
          n++;
          continue;
        }
        if (r < 0.12) {
          buf.push(`${head}[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.${Math.floor(rand() * 255)} DST=192.0.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=0 DF PROTO=TCP SPT=${1024 + Math.floor(rand() * 60000)} DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0 \n`);
          n++;
          continue;
        }
        const [uid, gid] = pick(users);
        const rule = pick(rules);
        const tag = `EGRESS ${rand() < 0.5 ? (rule === '-' ? 'P' : 'D') : rule === '-' ? 'p' : 'd'}:${rule} `;
        const spt = 32768 + Math.floor(rand() * 28000);
        const v6 = rand() < 0.25;
        const p = rand();
        let fields;
        if (p < 0.7) {
          const dpt = pick([443, 443, 443, 80, 25, 587, 8443, 9418, 5432]);
          fields = v6
            ? `IN= OUT=eth0 SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=${v6dst[zipf(v6dst.length)]} LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=${Math.floor(rand() * 1e6)} PROTO=TCP SPT=${spt} DPT=${dpt} WINDOW=64800 RES=0x00 SYN URGP=0 UID=${uid} GID=${gid} `
            : `IN= OUT=eth0 SRC=192.0.2.1 DST=${v4dst[zipf(v4dst.length)]} LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=${Math.floor(rand() * 65535)} DF PROTO=TCP SPT=${spt} DPT=${dpt} WINDOW=64240 RES=0x00 SYN URGP=0 UID=${uid} GID=${gid} `;
        } else if (p < 0.93) {
          const dpt = pick([53, 123, 514, 1194]);
          fields = v6
            ? `IN= OUT=eth0 SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=${v6dst[zipf(v6dst.length)]} LEN=49 TC=0 HOPLIMIT=64 FLOWLBL=1 PROTO=UDP SPT=${spt} DPT=${dpt} LEN=9 UID=${uid} GID=${gid} `
            : `IN= OUT=eth0 SRC=192.0.2.1 DST=${v4dst[zipf(v4dst.length)]} LEN=31 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=UDP SPT=${spt} DPT=${dpt} LEN=11 UID=${uid} GID=${gid} `;
        } else {
          fields = v6
            ? `IN= OUT=eth0 SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=${v6dst[zipf(v6dst.length)]} LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=2 PROTO=ICMPv6 TYPE=128 CODE=0 ID=${spt} SEQ=1 UID=${uid} GID=${gid} `
            : `IN= OUT=eth0 SRC=192.0.2.1 DST=${v4dst[zipf(v4dst.length)]} LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=2 DF PROTO=ICMP TYPE=8 CODE=0 ID=${spt} SEQ=1 UID=${uid} GID=${gid} `;
        }
        buf.push(`${head}${tag}${fields}\n`);
        n++;
        // A refused SYN is retransmitted: 1 to 4 more log lines of the same connection, seconds apart.
        if (p < 0.7 && rand() < 0.3) {
          const k = 1 + Math.floor(rand() * 4);
          let due = ms;
          for (let j = 0; j < k; j++) pending.push([(due += 1000 * 2 ** j), `${tag}${fields}\n`]);
          pending.sort((a, b) => a[0] - b[0]);
        }
      }
      if (n >= LINES) {
        out.write(buf.join(''));
        out.end(resolve);
      } else flush(step);
    };
    step();
  });
}

const TIME = ['/usr/bin/time', '-f', '@@time %e %U %S %M'];
const haveTime = spawnSync(TIME[0], ['-f', '%e', 'true']).status === 0;

/**
 * Run every contender once per round, round after round (so a change in the
 * machine's load hits them all alike); median wall time and CPU time
 * (user + system, children included) per contender.
 */
function race(contenders) {
  const res = contenders.map(() => ({ wall: [], cpu: [], rss: [], out: '' }));
  for (let r = 0; r < RUNS; r++)
    contenders.forEach((c, k) => {
      const argv = haveTime ? [...TIME, ...c.argv] : c.argv;
      const t = performance.now();
      const x = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', maxBuffer: 1 << 28, cwd: ROOT, env: { ...process.env, LC_ALL: 'C', ...(c.env ?? {}) } });
      const wall = performance.now() - t;
      if (x.status !== 0) throw new Error(`${c.label} failed (${x.status}): ${x.stderr}`);
      const m = /@@time ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(x.stderr);
      res[k].wall.push(wall);
      if (m) {
        res[k].cpu.push((Number(m[2]) + Number(m[3])) * 1000);
        res[k].rss.push(Number(m[4]) / 1024);
      }
      res[k].out = x.stdout;
    });
  const med = (xs) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : NaN);
  return contenders.map((c, k) => {
    const o = { label: c.label, median: med(res[k].wall), cpu: med(res[k].cpu), rssMb: Math.max(...res[k].rss), out: res[k].out, runs: res[k].wall };
    log(`  ${c.label.padEnd(36)} wall ${(o.median / 1000).toFixed(2)} s, cpu ${(o.cpu / 1000).toFixed(2)} s, peak RSS ${o.rssMb.toFixed(0)} MiB  (wall runs: ${o.runs.map((t) => (t / 1000).toFixed(2)).join(', ')})`);
    return o;
  });
}

/**
 * The parser alone, fed the way the reader feeds it (ranges of flat 512 KiB
 * chunks), against a parser written the obvious way (a regular expression per
 * field, on each line sliced from the same chunks).
 */
function parserBench(chunks) {
  const RE = { tag: /([DPdp]):([a-z0-9_~-]+) IN=/, src: /SRC=(\S+)/, dst: /DST=(\S+)/, proto: /PROTO=(\S+)/, spt: /SPT=(\d+)/, dpt: /DPT=(\d+)/, uid: /UID=(\d+)/, gid: /GID=(\d+)/ };
  const naive = (l) => {
    if (!l.includes(' OUT=')) return undefined;
    const t = RE.tag.exec(l);
    if (!t) return undefined;
    const o = { tag: t[1], rule: t[2] };
    for (const k of ['src', 'dst', 'proto', 'spt', 'dpt', 'uid', 'gid']) o[k] = RE[k].exec(l)?.[1];
    return o;
  };
  let lines = 0;
  for (const s of chunks) for (let j = s.indexOf('\n'); j >= 0; j = s.indexOf('\n', j + 1)) lines++;
  const run = (f) => {
    let best = Infinity;
    for (let rep = 0; rep < 5; rep++) {
      const t = performance.now();
      let id = 0;
      for (const s of chunks) {
        id++;
        let a = 0;
        for (let j = s.indexOf('\n'); j >= 0; j = s.indexOf('\n', a)) {
          f(s, a, j, id);
          a = j + 1;
        }
      }
      best = Math.min(best, performance.now() - t);
    }
    return best;
  };
  const p = new KernelLineParser({ now: Date.now(), bootTimeMs: Date.now() });
  const fast = run((s, a, b, id) => p.parseRange(s, a, b, id));
  const slow = run((s, a, b) => naive(s.slice(a, b)));
  return { indexOfNsPerLine: (fast * 1e6) / lines, regexNsPerLine: (slow * 1e6) / lines };
}

const dir = mkdtempSync(join(tmpdir(), 'egress-bench-logs-'));
const file = join(dir, 'kern.log');
try {
  log(`generating ${LINES.toLocaleString('en-US')} lines …`);
  await generate(file);
  const bytes = statSync(file).size;
  if (process.argv.includes('--generate-only')) {
    process.stdout.write(file + '\n');
    process.exit(0);
  }
  log(`  ${file}: ${(bytes / 2 ** 20).toFixed(0)} MiB; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}`);
  // Warm the page cache so every contender reads from memory.
  spawnSync('cat', [file], { stdio: ['ignore', 'ignore', 'ignore'] });

  const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
  const sed = `grep -F 'EGRESS ' ${q(file)} | sed -n 's/.* DST=\\([^ ]*\\) .* DPT=\\([0-9]*\\) .*/\\1 \\2/p' | sort | uniq -c | sort -rn | head`;
  const awk = `grep -F 'EGRESS ' ${q(file)} | awk '{for(i=1;i<=NF;i++){if(substr($i,1,4)=="DST=")d=substr($i,5);else if(substr($i,1,4)=="DPT=")p=substr($i,5)} print d, p}' | sort | uniq -c | sort -rn | head`;
  log(`timing (${RUNS} rounds, contenders interleaved; medians):`);
  const egress = (label, args, workers, root = ROOT) => ({ label, argv: [process.execPath, join(root, 'bin', 'egress.js'), 'stats', file, ...args], env: workers ? { EGRESS_STATS_WORKERS: workers } : {} });
  const [tSed, tAwk, tEgress, tSingle, tTwo, tText, ...tAgainst] = race([
    { label: 'pipeline: grep | sed | sort | uniq', argv: ['sh', '-c', sed] },
    { label: 'pipeline: grep | awk | sort | uniq', argv: ['sh', '-c', awk] },
    egress('egress stats --json', ['--json']),
    egress('egress stats --json, one thread', ['--json'], '1'),
    egress('egress stats --json, two threads', ['--json'], '2'),
    egress('egress stats (terminal tables)', []),
    ...(AGAINST ? [egress('--against: stats --json', ['--json'], undefined, AGAINST), egress('--against: stats --json, one thread', ['--json'], '1', AGAINST)] : []),
  ]);
  const stats = JSON.parse(tEgress.out).result; // the --json envelope (docs/json.md)
  const best = Math.min(tSed.median, tAwk.median);
  log(`pipeline's top destination: ${tAwk.out.split('\n')[0].trim()}`);
  log(`egress's top destination:   ${stats.destinations[0].dst} ${stats.destinations[0].port ?? ''} (${stats.destinations[0].connections} connections, ${stats.destinations[0].packets} log lines)`);

  // In-process parser comparison on the first 100 chunks (about 200,000 lines).
  const { openSync, readSync, closeSync } = await import('node:fs');
  const chunks = [];
  {
    const fd = openSync(file, 'r');
    const b = Buffer.allocUnsafe(1 << 19);
    let carry = '';
    for (let pos = 0; chunks.length < 100; ) {
      const n = readSync(fd, b, 0, b.length, pos);
      if (!n) break;
      pos += n;
      const s = carry + b.toString('latin1', 0, n);
      const k = s.lastIndexOf('\n');
      chunks.push(Buffer.from(s.slice(0, k + 1), 'latin1').toString('latin1'));
      carry = s.slice(k + 1);
    }
    closeSync(fd);
  }
  const pb = parserBench(chunks);

  const result = {
    lines: LINES,
    bytes,
    runs: RUNS,
    pipelineSedMs: Math.round(tSed.median),
    pipelineAwkMs: Math.round(tAwk.median),
    egressJsonMs: Math.round(tEgress.median),
    egressTextMs: Math.round(tText.median),
    egressOneThreadMs: Math.round(tSingle.median),
    egressTwoThreadsMs: Math.round(tTwo.median),
    cpuMs: { pipelineSed: Math.round(tSed.cpu), pipelineAwk: Math.round(tAwk.cpu), egress: Math.round(tEgress.cpu), egressOneThread: Math.round(tSingle.cpu), egressTwoThreads: Math.round(tTwo.cpu) },
    peakRssMiB: { pipelineAwk: Math.round(tAwk.rssMb), egress: Math.round(tEgress.rssMb), egressOneThread: Math.round(tSingle.rssMb), egressTwoThreads: Math.round(tTwo.rssMb) },
    ...(AGAINST
      ? {
          against: {
            root: AGAINST,
            sameJson: tAgainst[0].out === tEgress.out,
            egressJsonMs: Math.round(tAgainst[0].median),
            egressOneThreadMs: Math.round(tAgainst[1].median),
            cpuMs: { egress: Math.round(tAgainst[0].cpu), egressOneThread: Math.round(tAgainst[1].cpu) },
            peakRssMiB: { egress: Math.round(tAgainst[0].rssMb), egressOneThread: Math.round(tAgainst[1].rssMb) },
          },
        }
      : {}),
    egressOneThreadLinesPerSecond: Math.round(LINES / (tSingle.median / 1000)),
    ratioOneThreadVsFastestPipeline: +(best / tSingle.median).toFixed(2),
    egressLinesPerSecond: Math.round(LINES / (tEgress.median / 1000)),
    ratioVsFastestPipeline: +(best / tEgress.median).toFixed(2),
    ratioVsSedPipeline: +(tSed.median / tEgress.median).toFixed(2),
    connections: stats.connections,
    logLines: stats.packets,
    loadAverage: loadavg(),
    parser: { indexOfNsPerLine: +pb.indexOfNsPerLine.toFixed(0), regexNsPerLine: +pb.regexNsPerLine.toFixed(0), speedup: +(pb.regexNsPerLine / pb.indexOfNsPerLine).toFixed(2) },
  };
  log('');
  log(`egress stats: ${result.egressLinesPerSecond.toLocaleString('en-US')} lines/s; ${result.ratioVsFastestPipeline}x the fastest pipeline (awk: ${(tAwk.median / 1000).toFixed(2)} s, sed: ${(tSed.median / 1000).toFixed(2)} s, egress: ${(tEgress.median / 1000).toFixed(2)} s)`);
  log(`two threads: ${(tTwo.median / 1000).toFixed(2)} s wall; cpu: awk pipeline ${(tAwk.cpu / 1000).toFixed(2)} s, egress ${(tEgress.cpu / 1000).toFixed(2)} s`);
  const vsAwk = (t) => `${(t.median / tAwk.median).toFixed(2)}x wall, ${(t.cpu / tAwk.cpu).toFixed(2)}x cpu of awk, peak RSS ${t.rssMb.toFixed(0)} MiB`;
  log(`egress --json: ${vsAwk(tEgress)}; one thread: ${vsAwk(tSingle)}`);
  if (AGAINST) log(`--against ${AGAINST}: --json ${vsAwk(tAgainst[0])}; one thread: ${vsAwk(tAgainst[1])}; the same --json: ${tAgainst[0].out === tEgress.out}`);
  log(`one thread: ${result.egressOneThreadLinesPerSecond.toLocaleString('en-US')} lines/s; ${result.ratioOneThreadVsFastestPipeline}x the fastest pipeline`);
  log(`  while doing more: ${stats.packets.toLocaleString('en-US')} log lines → ${stats.connections.toLocaleString('en-US')} connections (retransmissions deduplicated), users, rules, timeline, malformed lines counted`);
  log(`parser alone: indexOf ${result.parser.indexOfNsPerLine} ns/line (with timestamps, validation, interning), regex-per-field ${result.parser.regexNsPerLine} ns/line (fields only) (${result.parser.speedup}x)`);
  log(`load average during the run: ${loadavg().map((x) => x.toFixed(1)).join(' ')} (other work on the machine slows every contender)`);
  if (json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
} finally {
  if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
}
