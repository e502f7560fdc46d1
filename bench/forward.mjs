#!/usr/bin/env node
// Forward-path benchmark: forwarded new-flow rates (TCP setups, UDP datagrams)
// and the established fast path (ICMPv6 echo round trips) through the forward
// scope with N destinations (nft sets vs the iptables chain), against no
// firewall and against the output-only ruleset, measured in the same run, in
// throwaway network namespaces (client → host → world). Needs root and a
// build (npm run build). Method: src/bench/forward.ts and BENCHMARKS.md
// (section "Forwarded traffic (forward scope)").
//
//   node bench/forward.mjs [--sizes 1000,10000,100000] [--iptables-max 100000] [--rounds 9] [--seconds 1]
//                          [--rules 0] [--json]
import { parseArgs } from 'node:util';
import { DEFAULT_FWD_BENCH, forwardBenchMarkdown, runForwardBench } from '../dist/bench/forward.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string' },
    'iptables-max': { type: 'string' },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    rules: { type: 'string' },
    json: { type: 'boolean' },
  },
});
if (process.getuid?.() !== 0) {
  process.stderr.write('bench/forward.mjs needs root (network namespaces)\n');
  process.exit(1);
}
const opts = {
  sizes: values.sizes ? values.sizes.split(',').map(Number) : DEFAULT_FWD_BENCH.sizes,
  iptablesMax: values['iptables-max'] ? Number(values['iptables-max']) : DEFAULT_FWD_BENCH.iptablesMax,
  rounds: values.rounds ? Number(values.rounds) : DEFAULT_FWD_BENCH.rounds,
  durationMs: values.seconds ? Math.round(Number(values.seconds) * 1000) : DEFAULT_FWD_BENCH.durationMs,
  rules: values.rules ? Number(values.rules) : DEFAULT_FWD_BENCH.rules,
  progress: (l) => process.stderr.write(`bench: ${l}\n`),
};
const rows = await runForwardBench(opts);
if (values.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
else process.stdout.write(forwardBenchMarkdown(rows, opts));
