#!/usr/bin/env node
// Kernel benchmark runner: connection-setup and UDP datagram rates through an
// egress policy with N destinations (nft sets vs the iptables chain) against
// no firewall, measured in the same run, in throwaway network namespaces.
// Needs root and a build (npm run build). Method: src/lab/bench-kernel.ts and
// BENCHMARKS.md (section "Kernel").
//
//   node bench/kernel.mjs [--sizes 1000,10000,100000] [--rounds 3] [--seconds 1.5] [--hash-experiment] [--json]
import { parseArgs } from 'node:util';
import { benchMarkdown, DEFAULT_BENCH, runKernelBench } from '../dist/bench/kernel.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string' },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    json: { type: 'boolean' },
    'hash-experiment': { type: 'boolean' },
  },
});
if (process.getuid?.() !== 0) {
  process.stderr.write('bench/kernel.mjs needs root (network namespaces)\n');
  process.exit(1);
}
const opts = {
  sizes: values.sizes ? values.sizes.split(',').map(Number) : DEFAULT_BENCH.sizes,
  rounds: values.rounds ? Number(values.rounds) : DEFAULT_BENCH.rounds,
  durationMs: values.seconds ? Math.round(Number(values.seconds) * 1000) : DEFAULT_BENCH.durationMs,
  hashExperiment: !!values['hash-experiment'],
  progress: (l) => process.stderr.write(`bench: ${l}\n`),
};
const rows = await runKernelBench(opts);
if (values.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
else process.stdout.write(benchMarkdown(rows, opts));
