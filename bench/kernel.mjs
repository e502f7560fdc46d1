#!/usr/bin/env node
// Kernel benchmark runner: connection-setup and UDP datagram rates through an
// egress policy with N destinations (nft sets vs the iptables chain) against
// no firewall, measured in the same run, in throwaway network namespaces.
// Needs root and a build (npm run build); the C load generator (the default)
// needs a C compiler, `cc` (Debian: apt install gcc). Method:
// src/bench/kernel.ts and BENCHMARKS.md (section "Kernel").
//
//   node bench/kernel.mjs [--sizes 1000,10000,100000] [--rounds 9] [--seconds 1]
//                         [--generator c|node] [--targets all|last] [--experiments a,b] [--no-iptables] [--json]
//
// --generator c (the default when `cc` exists): bench/loadgen.c, compiled
// with `cc -O2` into a temporary directory at start; node: the node generator
// (src/bench/load-guest.ts), kept for comparison.
// --experiments adds edited forms of egress's nft ruleset, measured beside it
// (EXPERIMENTS in src/bench/kernel.ts): nft-interval (single addresses in
// interval sets, as egress emitted them before), nft-nocounters,
// nft-anon-counters, nft-sized, floor (a hand-written minimal ruleset) and
// floor-noports (its address lookup alone). --hash-experiment is
// --experiments nft-interval. --no-iptables leaves out the iptables chain
// (slow to load at 100k).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from './cli-args.mjs';
import { benchMarkdown, DEFAULT_BENCH, EXPERIMENTS, runKernelBench } from '../dist/bench/kernel.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string' },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    generator: { type: 'string' },
    targets: { type: 'string' },
    json: { type: 'boolean' },
    'hash-experiment': { type: 'boolean' },
    experiments: { type: 'string' },
    'no-iptables': { type: 'boolean' },
  },
});
const fail = (msg) => {
  process.stderr.write(`bench/kernel.mjs: ${msg}\n`);
  process.exit(1);
};
if (values.generator !== undefined && !['c', 'node'].includes(values.generator)) fail(`--generator is c or node, not "${values.generator}"`);
if (values.targets !== undefined && !['all', 'last'].includes(values.targets)) fail(`--targets is all or last, not "${values.targets}"`);
if (values.targets !== undefined && values.generator === 'node') fail('--targets applies to the C generator only (the node one loads the last destination)');
const experiments = [...new Set([...(values['hash-experiment'] ? ['nft-interval'] : []), ...(values.experiments ? values.experiments.split(',') : [])])];
for (const e of experiments) if (!(e in EXPERIMENTS)) fail(`no experiment "${e}": ${Object.keys(EXPERIMENTS).join(', ')}`);
if (process.getuid?.() !== 0) fail('needs root (network namespaces)');

const haveCc = spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0;
const kind = values.generator ?? (haveCc ? 'c' : 'node');
if (kind === 'c' && !haveCc) fail('the C load generator needs a C compiler: no `cc` on PATH (Debian: apt install gcc), or run with --generator node');
if (!values.generator && !haveCc) process.stderr.write('bench: no C compiler (`cc`; Debian: apt install gcc): using the node load generator, which hides most of the kernel\'s per-packet cost\n');

let tmp;
let generator = { kind: 'node' };
if (kind === 'c') {
  tmp = mkdtempSync(join(tmpdir(), 'egress-loadgen-'));
  const bin = join(tmp, 'loadgen');
  const cc = spawnSync('cc', ['-O2', '-Wall', '-o', bin, join(ROOT, 'bench', 'loadgen.c')], { encoding: 'utf8' });
  if (cc.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    fail(`cc -O2 bench/loadgen.c failed:\n${cc.stderr}`);
  }
  generator = { kind: 'c', path: bin };
}
const opts = {
  sizes: values.sizes ? values.sizes.split(',').map(Number) : DEFAULT_BENCH.sizes,
  rounds: values.rounds ? Number(values.rounds) : DEFAULT_BENCH.rounds,
  durationMs: values.seconds ? Math.round(Number(values.seconds) * 1000) : DEFAULT_BENCH.durationMs,
  experiments,
  iptables: !values['no-iptables'],
  generator,
  targets: values.targets ?? DEFAULT_BENCH.targets,
  progress: (l) => process.stderr.write(`bench: ${l}\n`),
};
try {
  const rows = await runKernelBench(opts);
  if (values.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
  else process.stdout.write(benchMarkdown(rows, opts));
} finally {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}
