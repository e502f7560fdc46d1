#!/usr/bin/env node
// DNS forwarder benchmark: latency an answer gains by going through the
// forwarder against the same query sent straight to the upstream, measured
// in the same run, in two scenarios:
// - worst case: every named answer carries addresses never published
//   before, so every answer waits for an nft commit (add; delete; add);
// - realistic (CDN-like): each name has a pool of 8–64 addresses, each
//   answer picks 1–4 of them at random with a TTL of 0–30 s, as CDNs rotate
//   among addresses the forwarder has mostly published already (answers
//   whose addresses are all surely live leave without holding).
// Then sustained published addresses per second, and forwarder memory with
// 10,000 names and 50,000 live elements. Needs root and a build (npm run build).
// The forwarder is started the way the life cycle starts it (bin/egress.js
// _dns-forwarder, with the node flags and environment of
// src/kernel/forwarder.ts) unless DNS_BENCH_NODE_FLAGS is set.
//
//   node bench/dns.mjs [--queries 2000] [--seconds 5] [--json]
//
// Everything stays on this machine: the fake upstream and the forwarder
// listen on 127.0.0.1 (loopback), and the forwarder's nft child runs in a
// throwaway network namespace holding the sets, so the root namespace's
// firewall is never touched. Answered addresses are documentation ones and
// only ever become set elements (no traffic goes to them).
import { spawn, execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { FORWARDER_ENV, FORWARDER_NODE_FLAGS } from '../dist/kernel/forwarder.js';

const ROOT = join(import.meta.dirname, '..');
const MAIN = join(ROOT, 'dist', 'dns', 'main.js');
const { values } = parseArgs({ options: { queries: { type: 'string' }, seconds: { type: 'string' }, json: { type: 'boolean' } } });
const QUERIES = Number(values.queries ?? 2000);
const SECONDS = Number(values.seconds ?? 5);
if (process.getuid?.() !== 0) {
  process.stderr.write('bench/dns.mjs needs root (a network namespace for the nft sets)\n');
  process.exit(1);
}
if (!existsSync(MAIN)) {
  process.stderr.write('bench/dns.mjs needs a build: npm run build\n');
  process.exit(1);
}
const log = (s) => process.stderr.write(`bench: ${s}\n`);

// ---- fake upstream on loopback: fresh addresses on every answer -------------------------------
let serial = 0;
const v6 = () => {
  const n = ++serial;
  return `2001:db8:${((n >> 16) & 0xffff).toString(16)}:${(n & 0xffff).toString(16)}::1`;
};
const v4 = () => `198.51.100.${1 + Math.floor(Math.random() * 254)}`;
// Realistic names: pool-J.dK.bench.test (under the wildcard *.dK.bench.test) has a pool of 8–64 addresses of its own.
const POOL_NAMES = 200;
const poolSize = (j) => 8 + ((j * 37) % 57);
const poolAddress = (j, k) => `2001:db8:f${j.toString(16).padStart(3, '0')}::${(k + 1).toString(16)}`;
function answer(msg) {
  const q = dnsPacket.decode(msg);
  const { name, type } = q.questions[0];
  const answers = [];
  const pool = /^pool-(\d+)\./.exec(name);
  if (pool) {
    const j = Number(pool[1]);
    const picks = new Set();
    const n = 1 + Math.floor(Math.random() * 4);
    while (picks.size < n) picks.add(Math.floor(Math.random() * poolSize(j)));
    const ttl = Math.floor(Math.random() * 31);
    for (const k of picks) answers.push({ type: 'AAAA', name, ttl, class: 'IN', data: poolAddress(j, k) });
  } else {
    const n = /^many\./.test(name) ? 16 : 2;
    for (let i = 0; i < n; i++) answers.push(type === 'A' ? { type: 'A', name, ttl: 30, class: 'IN', data: v4() } : { type: 'AAAA', name, ttl: 30, class: 'IN', data: v6() });
  }
  return dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED, questions: q.questions, answers });
}
const poolName = (i) => {
  const j = Math.floor(Math.random() * POOL_NAMES);
  return `pool-${j}.d${j}.bench.test`;
};
const upstream = dgram.createSocket('udp4');
upstream.on('message', (m, r) => upstream.send(answer(m), r.port, r.address));
await new Promise((r) => upstream.bind(0, '127.0.0.1', r));
const UP = upstream.address().port;

// ---- client: one socket per concurrent loop, ID-matched -------------------------------------
function client() {
  const s = dgram.createSocket('udp4');
  const waiting = new Map();
  s.on('message', (m) => {
    const w = waiting.get(m.readUInt16BE(0));
    if (w) {
      waiting.delete(m.readUInt16BE(0));
      w(m);
    }
  });
  let id = 0;
  return {
    ask(port, name, type = 'AAAA') {
      id = (id + 1) & 0xffff;
      // EDNS 4096, as stub resolvers send today: a 16-address answer is larger than 512 bytes.
      const msg = dnsPacket.encode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: 0, options: [] }] });
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => (waiting.delete(id), reject(new Error('timeout'))), 5000);
        waiting.set(id, (m) => (clearTimeout(t), resolve(m)));
        s.send(msg, port, '127.0.0.1');
      });
    },
    close: () => s.close(),
  };
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function latency(port, concurrency, total, nameOf) {
  const clients = Array.from({ length: concurrency }, client);
  const lat = [];
  let next = 0;
  let failed = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (next < total) {
        const i = next++;
        const t0 = process.hrtime.bigint();
        try {
          const r = await c.ask(port, nameOf(i));
          if ((r.readUInt16BE(2) & 0xf) !== 0) failed++;
          else lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
        } catch {
          failed++;
        }
      }
    }),
  );
  for (const c of clients) c.close();
  return { p50: pct(lat, 50), p99: pct(lat, 99), n: lat.length, failed };
}

// ---- the forwarder under test: its own process, nft in a namespace --------------------------
const ns = `egress-${process.pid.toString(36)}${randomBytes(2).toString('hex')}-dnsbench`;
const dir = mkdtempSync(join(tmpdir(), 'egress-dnsbench-'));
let fwd;
const cleanup = () => {
  try {
    fwd?.kill('SIGKILL');
  } catch {}
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {}
  rmSync(dir, { recursive: true, force: true });
};
process.on('SIGINT', () => (cleanup(), process.exit(130)));
process.on('SIGTERM', () => (cleanup(), process.exit(143)));

try {
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
    input: 'table inet egress {\n set b4 { type ipv4_addr; flags timeout; size 262144; }\n set b6 { type ipv6_addr; flags timeout; size 262144; }\n}\n',
  });
  const sets = { ipv4: 'b4', ipv6: 'b6' };
  const names = [];
  for (let i = 0; i < 5000; i++) names.push({ pattern: `h${i}.bench.test`, action: 'allow', rule: `r${i % 500}`, sets });
  for (let i = 0; i < 5000; i++) names.push({ pattern: `*.d${i}.bench.test`, action: 'allow', rule: `w${i % 500}`, sets });
  // grace and min_lifetime as SPEC's defaults (60 s, 10 s).
  const config = { listen: [{ address: '127.0.0.1', port: 0 }], upstream: [{ address: '127.0.0.1', port: UP }], graceSec: 60, minLifetimeSec: 10, holdMs: 1000, names, table: 'inet egress' };
  writeFileSync(join(dir, 'spec.json'), JSON.stringify({ config, netns: ns, control: true, logFile: join(dir, 'dns.log') }));
  // As the life cycle starts it (kernel/forwarder.ts startForwarder), or with DNS_BENCH_NODE_FLAGS instead ("none": node's defaults).
  const envFlags = process.env.DNS_BENCH_NODE_FLAGS;
  const nodeFlags = envFlags === undefined ? FORWARDER_NODE_FLAGS : envFlags === 'none' ? [] : envFlags.split(' ');
  const prof = process.env.DNS_BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.DNS_BENCH_PROF}`] : [];
  fwd = spawn(process.execPath, [...nodeFlags, ...prof, join(ROOT, 'bin', 'egress.js'), '_dns-forwarder', join(dir, 'spec.json')], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ...(envFlags === undefined ? FORWARDER_ENV : {}) },
  });
  const lines = readline.createInterface({ input: fwd.stdout });
  const next = () => new Promise((r) => lines.once('line', r));
  const ready = await next();
  const PORT = JSON.parse(ready.replace(/^ready /, '')).udp[0].port;
  const counters = async () => {
    fwd.stdin.write('counters\n');
    return JSON.parse((await next()).replace(/^counters /, ''));
  };
  // user + system CPU of a process, ms (clock ticks of 10 ms: read over thousands of queries).
  const cpuMs = (pid) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  };
  const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
  const nftPid = () => {
    for (const t of readdirSync(`/proc/${fwd.pid}/task`)) {
      const kids = readFileSync(`/proc/${fwd.pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      for (const k of kids) if (readFileSync(`/proc/${k}/comm`, 'utf8').trim() === 'nft') return Number(k);
    }
    return undefined;
  };
  const memory0 = async () => {
    fwd.stdin.write('memory\n');
    return JSON.parse((await next()).replace(/^memory /, ''));
  };
  const mib = (m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, Math.round((v / 1048576) * 10) / 10]));
  const atStart = mib(await memory0());
  log(`forwarder pid ${fwd.pid}, nft pid ${nftPid()}, 10,000 names, memory at start (MiB) ${JSON.stringify(atStart)}; warming up`);
  await latency(UP, 4, 500, (i) => `h${i}.bench.test`);
  await latency(PORT, 4, 500, (i) => `h${i % 5000}.bench.test`);

  // Each scenario at 1 and 50 concurrent clients: direct to the upstream, then through the forwarder, same names, same run.
  const rows = [];
  const scenario = async (name, nameOf, warm) => {
    for (const c of [1, 50]) {
      const total = c === 1 ? QUERIES : QUERIES * 2;
      if (warm) await latency(PORT, 50, warm, nameOf);
      const direct = await latency(UP, c, total, nameOf);
      const before = await counters();
      const cpu0 = cpuMs(fwd.pid);
      const via = await latency(PORT, c, total, nameOf);
      const cpu = cpuMs(fwd.pid) - cpu0;
      const after = await counters();
      const fast = (after.fastAnswers - before.fastAnswers) / Math.max(1, after.answered - before.answered);
      rows.push({ scenario: name, clients: c, direct, via, fastShare: fast, cpuUsPerQuery: (cpu * 1000) / total, holdTimeouts: after.holdTimeouts - before.holdTimeouts, servfail: after.servfail - before.servfail });
      log(`${name}, ${c} client(s): direct p50 ${direct.p50.toFixed(3)} ms, via the forwarder p50 ${via.p50.toFixed(3)} ms, answered without holding ${(fast * 100).toFixed(0)} %`);
    }
  };
  await scenario('unlisted name', (i) => `x${i}.unlisted.test`);
  await scenario('worst case: new addresses every answer', (i) => (i % 2 ? `h${i % 5000}.bench.test` : `a.b.d${i % 5000}.bench.test`));
  // Realistic: the pools get published by a first pass (as a running host's would be), then measured.
  await scenario('realistic: pools of 8–64, TTL 0–30', poolName, 6000);

  // sustained publishing: 64 concurrent clients, 16 fresh AAAA per answer
  const before = await counters();
  const t0 = Date.now();
  const clients = Array.from({ length: 64 }, client);
  let done = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (Date.now() - t0 < SECONDS * 1000) {
        await c.ask(PORT, `many.x.d${done++ % 5000}.bench.test`).catch(() => {});
      }
    }),
  );
  for (const c of clients) c.close();
  const secs = (Date.now() - t0) / 1000;
  const after = await counters();
  const throughput = { seconds: secs, published: after.published - before.published, perSecond: (after.published - before.published) / secs, holdTimeouts: after.holdTimeouts - before.holdTimeouts, servfail: after.servfail - before.servfail };
  log(`sustained: ${throughput.perSecond.toFixed(0)} published addresses/s, hold timeouts ${throughput.holdTimeouts}`);

  // memory: top up to ≥ 50,000 live elements, then read RSS
  const live = () => Number(execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'set', 'inet', 'egress', 'b6'], { maxBuffer: 1 << 28 }).toString().match(/expires/g)?.length ?? 0);
  let elements = live();
  for (let round = 0; elements < 50_000; round++) {
    if (round > 50) throw new Error(`only ${elements} live elements after ${round} rounds: answers are not being published`);
    const cs = Array.from({ length: 32 }, client);
    await Promise.all(cs.map(async (c, k) => {
      for (let i = 0; i < 50; i++) await c.ask(PORT, `many.m${k}.d${i}.bench.test`).catch(() => {});
    }));
    for (const c of cs) c.close();
    elements = live();
  }
  const memory = { liveElementsIpv6Set: elements, names: 10_000, forwarderRssMiB: rss(fwd.pid), nftRssMiB: nftPid() ? rss(nftPid()) : undefined, atStartMiB: atStart, atEndMiB: mib(await memory0()) };
  const final = await counters();
  const result = { latency: rows, throughput, memory, counters: final };
  if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else {
    const f = (x) => x.toFixed(3);
    const out = ['| scenario | clients | direct p50 / p99 (ms) | via forwarder p50 / p99 | added p50 / p99 | ratio p50 | answered without holding | forwarder CPU µs/query |', '| --- | --- | --- | --- | --- | --- | --- | --- |'];
    for (const r of rows)
      out.push(`| ${r.scenario} | ${r.clients} | ${f(r.direct.p50)} / ${f(r.direct.p99)} | ${f(r.via.p50)} / ${f(r.via.p99)} | ${f(r.via.p50 - r.direct.p50)} / ${f(r.via.p99 - r.direct.p99)} | ${(r.via.p50 / r.direct.p50).toFixed(1)}× | ${(r.fastShare * 100).toFixed(0)} % | ${r.cpuUsPerQuery.toFixed(0)} |`);
    out.push('', `sustained: ${throughput.perSecond.toFixed(0)} published addresses/s over ${secs.toFixed(1)} s (64 clients, 16 AAAA per answer), hold timeouts ${throughput.holdTimeouts}, servfail ${throughput.servfail}`);
    out.push(`memory: ${memory.liveElementsIpv6Set} live elements, 10,000 names: forwarder RSS ${memory.forwarderRssMiB.toFixed(1)} MiB, nft child RSS ${memory.nftRssMiB?.toFixed(1)} MiB; forwarder at start ${JSON.stringify(memory.atStartMiB)}, at end ${JSON.stringify(memory.atEndMiB)} (MiB)`);
    out.push(`failures: ${rows.map((r) => `${r.scenario} ${r.clients}c: direct ${r.direct.failed}, via ${r.via.failed} (hold timeouts ${r.holdTimeouts}, SERVFAIL ${r.servfail})`).join('; ')}; forwarder counters ${JSON.stringify(final)}`);
    out.push(`forwarder: node ${nodeFlags.join(' ') || '(defaults)'}${envFlags === undefined ? ` ${JSON.stringify(FORWARDER_ENV)}` : ''}`);
    process.stdout.write(out.join('\n') + '\n');
  }
  fwd.stdin.end();
  await new Promise((r) => fwd.on('close', r));
} finally {
  upstream.close();
  cleanup();
}
