#!/usr/bin/env node
// Explain throughput: the indexed evaluator against the naive linear scan over
// the same IR, in the same run. Policy: 10,000 rules, 100,000 destinations.
// Then the CLI's `explain --flows` over the same policy and flows, in process
// (the command as `egress explain POLICY --flows -` runs it): its rate counts
// from when the command reads the flows (the policy loaded, the index built)
// to its last line of output, so it is the per-flow path alone.
// Usage: node bench/explain.mjs [--rules N] [--dests-per-rule K] [--flows F] [--cli-flows C] [--cli-json] [--json]
// (--cli-json: the CLI's explain --flows --json instead of its table)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadPolicyText, indexedEvaluator, linearEvaluator, staticResolver } from '../dist/index.js';
import { main } from '../dist/cli/main.js';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const RULES = arg('rules', 10_000);
const PER = arg('dests-per-rule', 10);
const FLOWS = arg('flows', 1_000_000);
const LINEAR_FLOWS = Math.min(FLOWS, arg('linear-flows', 2_000));
const CLI_FLOWS = Math.min(FLOWS, arg('cli-flows', 20_000));
const json = process.argv.includes('--json');
const cliJson = process.argv.includes('--cli-json');
const log = (s) => json || process.stderr.write(s + '\n');

// Deterministic PRNG so every run measures the same policy and flows.
let seed = 0x2545f491;
const rand = () => ((seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const v4 = (n) => `${10 + (n >>> 24) % 200}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const v6 = (n) => `2001:db8:${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}::1`;

function policy() {
  const lines = ['version: 1', 'default: reject', 'allow:'];
  const deny = ['deny:'];
  const ports = ['tcp/80', 'tcp/443', 'udp/53', 'tcp/8000-8100', 'tcp/22', 'udp/123'];
  for (let r = 0; r < RULES; r++) {
    const to = [];
    for (let k = 0; k < PER; k++) {
      const n = Math.floor(rand() * 2 ** 31);
      const kind = rand();
      to.push(kind < 0.6 ? v4(n) : kind < 0.75 ? `${v4(n & ~255)}/24` : `"${v6(n)}"`);
    }
    const isDeny = r % 10 === 9;
    const out = isDeny ? deny : lines;
    out.push(`  - name: r${r}`, '    reason: generated', `    to: [${to.join(', ')}]`, `    ports: [${pick(ports)}, ${pick(ports)}]`);
    if (!isDeny && r % 5 === 0) out.push(`    user: ${pick(['www-data', 'postfix', '1001'])}`);
    if (isDeny && r % 20 === 19) out.push('    except: { user: postfix }');
  }
  for (let g = 0; g < 50; g++) lines.push(`  - name: g${g}`, '    reason: global', `    ports: [tcp/${9000 + g}]`);
  return [...lines, ...deny, ''].join('\n');
}

function flows(n, ir) {
  // Half the flows hit a policy destination, half a random address.
  const dsts = ir.rules.filter((r) => r.dst).map((r) => [r.family, r.dst[0].lo]);
  const out = [];
  const users = [{ id: 0, name: 'root' }, { id: 33, name: 'www-data' }, { id: 107, name: 'postfix' }];
  for (let i = 0; i < n; i++) {
    const [family, dst] = rand() < 0.5 ? pick(dsts) : rand() < 0.7 ? ['ipv4', BigInt(Math.floor(rand() * 2 ** 32))] : ['ipv6', (0x20010db8n << 96n) | BigInt(Math.floor(rand() * 2 ** 40)) << 64n];
    const proto = rand() < 0.8 ? 'tcp' : 'udp';
    out.push({ family, dst, proto, port: pick([22, 53, 80, 123, 443, 8050, 9001]), user: pick(users) });
  }
  return out;
}

function rate(evaluate, fs) {
  // Warm up, then time.
  for (let i = 0; i < Math.min(fs.length, 1000); i++) evaluate(fs[i]);
  // CPU time of this process, not wall time: the machine is shared and noisy.
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let accepts = 0;
  for (const f of fs) if (evaluate(f).verdict === 'accept') accepts++;
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  return { flowsPerSecond: fs.length / cpu, wallFlowsPerSecond: fs.length / wall, seconds: cpu, accepts };
}

const accounts = { users: new Map([['root', 0], ['www-data', 33], ['postfix', 107]]), groups: new Map(), primaryGroup: new Map() };
log(`generating a policy of ${RULES} rules × ${PER} destinations…`);
const text = policy();
let t = performance.now();
const l = await loadPolicyText('bench.yaml', text, { resolver: staticResolver({}, {}, accounts), now: new Date('2026-01-01') });
const loadS = (performance.now() - t) / 1000;
if (!l.ir) throw new Error('bench policy did not load: ' + l.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message).join('; '));
const destinations = l.ir.rules.reduce((n, r) => n + (r.dst?.length ?? 0), 0);
log(`loaded in ${loadS.toFixed(2)} s: ${l.ir.rules.length} IR rules, ${destinations} merged destination intervals`);
t = performance.now();
const indexed = indexedEvaluator(l.ir);
const indexS = (performance.now() - t) / 1000;
const linear = linearEvaluator(l.ir);
const fs = flows(FLOWS, l.ir);
log(`index built in ${indexS.toFixed(2)} s; answering ${FLOWS} flows (linear: ${LINEAR_FLOWS})…`);
const lin = rate(linear, fs.slice(0, LINEAR_FLOWS));
const idx = rate(indexed, fs);
// Same answers on the linear sample: the benchmark is only meaningful if they agree.
for (const f of fs.slice(0, LINEAR_FLOWS)) if (indexed(f).verdict !== linear(f).verdict) throw new Error('indexed and linear evaluators disagree');

// The CLI: the same policy from a file, the first CLI_FLOWS flows as a CSV on standard input.
const address = (family, v) =>
  family === 'ipv4' ? [24, 16, 8, 0].map((s) => Number((v >> BigInt(s)) & 255n)).join('.') : [112, 96, 80, 64, 48, 32, 16, 0].map((s) => ((v >> BigInt(s)) & 0xffffn).toString(16)).join(':');
const csv = ['to,port,user', ...fs.slice(0, CLI_FLOWS).map((f) => `${address(f.family, f.dst)},${f.proto}/${f.port},${f.user.name}`)].join('\n') + '\n';
const dir = mkdtempSync(join(tmpdir(), 'egress-bench-'));
let cli;
try {
  writeFileSync(join(dir, 'bench.yaml'), text);
  let c0, t0, rows = 0;
  const t = performance.now();
  const code = await main(['explain', join(dir, 'bench.yaml'), '--flows', '-', ...(cliJson ? ['--json'] : [])], {
    resolver: staticResolver({}, {}, accounts),
    now: new Date('2026-01-01'),
    env: {},
    cwd: dir,
    // Counting lines (or --json answers) without splitting the output into strings: the count is inside the measured time.
    stdout: (s) => {
      const mark = cliJson ? '"verdict"' : '\n';
      for (let i = s.indexOf(mark); i >= 0; i = s.indexOf(mark, i + 1)) rows++;
    },
    stderr: (s) => process.stderr.write(s),
    stdin: async () => {
      c0 = process.cpuUsage();
      t0 = performance.now();
      return csv;
    },
  });
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  if (code !== 0 || rows < CLI_FLOWS) throw new Error(`explain --flows exited ${code} with ${rows} ${cliJson ? 'answers' : 'lines'} for ${CLI_FLOWS} flows`);
  cli = { flows: CLI_FLOWS, output: cliJson ? 'json' : 'table', flowsPerSecond: Math.round(CLI_FLOWS / ((c.user + c.system) / 1e6)), wallFlowsPerSecond: Math.round(CLI_FLOWS / wall), commandSeconds: +((performance.now() - t) / 1000).toFixed(3) };
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const result = {
  rules: RULES,
  destinations: RULES * PER,
  mergedIntervals: destinations,
  loadSeconds: +loadS.toFixed(3),
  indexBuildSeconds: +indexS.toFixed(3),
  indexed: { flows: FLOWS, flowsPerSecond: Math.round(idx.flowsPerSecond), wallFlowsPerSecond: Math.round(idx.wallFlowsPerSecond) },
  linear: { flows: LINEAR_FLOWS, flowsPerSecond: Math.round(lin.flowsPerSecond), wallFlowsPerSecond: Math.round(lin.wallFlowsPerSecond) },
  speedup: +(idx.flowsPerSecond / lin.flowsPerSecond).toFixed(1),
  cli: { ...cli, ofIndexed: +(cli.flowsPerSecond / idx.flowsPerSecond).toFixed(4) },
};
if (json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(`explain: ${result.destinations} destinations in ${RULES} rules`);
  console.log(`  indexed  ${result.indexed.flowsPerSecond.toLocaleString('en')} flows per CPU-second (${result.indexed.wallFlowsPerSecond.toLocaleString('en')}/s wall; ${FLOWS.toLocaleString('en')} flows)`);
  console.log(`  linear   ${result.linear.flowsPerSecond.toLocaleString('en')} flows per CPU-second (${result.linear.wallFlowsPerSecond.toLocaleString('en')}/s wall; ${LINEAR_FLOWS.toLocaleString('en')} flows, same run)`);
  console.log(`  ratio    indexed/linear = ${result.speedup}×`);
  console.log(`  CLI      explain --flows${cliJson ? ' --json' : ''}: ${result.cli.flowsPerSecond.toLocaleString('en')} flows per CPU-second (${result.cli.wallFlowsPerSecond.toLocaleString('en')}/s wall; ${CLI_FLOWS.toLocaleString('en')} flows) = ${result.cli.ofIndexed}× the indexed rate; the whole command ${result.cli.commandSeconds} s`);
  console.log(`  load ${result.loadSeconds} s, index build ${result.indexBuildSeconds} s`);
}
