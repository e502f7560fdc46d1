#!/usr/bin/env node
// `egress status` on a big applied policy: N separate IPv6 destinations
// (2001:db8::/32, one `{ file: }` set, none adjacent: src/bench/kernel.ts
// benchAddress) applied with nft (or iptables) in a throwaway network
// namespace, then `egress status` (text and --json) timed RUNS times, and
// the bytes of the kernel listing it read. Paired and interleaved when given
// several builds: every round runs each --bin once, the order rotating.
// --commands times others on the same applied policy: `plan` and `apply` of
// the unchanged policy (nothing to change, so nothing is loaded), beside the
// floor `nft -c -f` of its ruleset (nft alone reading and checking it).
// Needs root and a build (npm run build). Results: BENCHMARKS.md, "status"
// and "Unchanged plan".
//
//   node bench/status.mjs [--size 100000] [--runs 7] [--backend nft] [--commands 'status,status --json,plan,apply'] [--bin [LABEL=]PATH]... [--json]
//   --bin   an egress entry to time (default bin/egress.js); give several to
//           compare builds, e.g. a copy of the base commit's dist/ and bin/.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { builds, flag, manyPolicy, opt, quantile, requireRoot } from './cli-args.mjs';

const SIZE = Number(opt('size', 100_000));
const RUNS = Number(opt('runs', 7));
const BACKEND = opt('backend', 'nft');
const json = flag('json');
const COMMANDS = String(opt('commands', 'status,status --json')).split(',').map((c) => c.trim().split(/\s+/));
const entries = builds();
requireRoot('status.mjs');

/** Destination k: 2001:db8:H:L::1 with k = H·65536 + L (as src/bench/kernel.ts benchAddress). */
const address = (k) => `2001:db8:${(k >>> 16).toString(16)}:${(k & 0xffff).toString(16)}::1`;
const POLICY = manyPolicy(['tcp/443', 'udp/53'], `  - name: web
    reason: one small rule beside it
    to: [192.0.2.80]
    ports: [tcp/443]
`);

const ns = `egst-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'egress-status-bench-'));
const state = join(dir, 'state');
const run = (args, input) => {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...args], { cwd: dir, input, encoding: 'utf8', maxBuffer: 1 << 30, env: { ...process.env, EGRESS_STATE_DIR: state, NO_COLOR: '1' } });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r;
};
const median = (xs) => quantile(xs, 0.5);

const results = [];
try {
  if (spawnSync('ip', ['netns', 'add', ns]).status !== 0) throw new Error(`ip netns add ${ns} failed`);
  mkdirSync(state, { mode: 0o700 });
  writeFileSync(join(dir, 'dests.txt'), Array.from({ length: SIZE }, (_, k) => address(k)).join('\n') + '\n');
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  const t0 = performance.now();
  run([process.execPath, entries[0].path, 'apply', '--backend', BACKEND, 'policy.yaml']);
  process.stderr.write(`bench: applied ${SIZE} destinations (${BACKEND}) in ${Math.round(performance.now() - t0)} ms\n`);
  const whole = BACKEND === 'nft' ? run(['nft', '-j', 'list', 'table', 'inet', 'egress']).stdout.length + run(['nft', '-a', 'list', 'table', 'inet', 'egress']).stdout.length : 0;
  const withPolicy = (args) => (args[0] === 'plan' || args[0] === 'apply' ? [...args, '--backend', BACKEND, 'policy.yaml'] : args);
  const floor = BACKEND === 'nft' && COMMANDS.some((a) => a[0] === 'plan' || a[0] === 'apply');
  if (floor) writeFileSync(join(dir, 'ruleset.nft'), run([process.execPath, entries[0].path, 'compile', '--target', 'nft', 'policy.yaml']).stdout);
  const times = new Map([...(floor ? [['nft -c -f (the ruleset)', []]] : []), ...entries.flatMap((e) => COMMANDS.map((args) => [`${e.label} ${args.join(' ')}`, []]))]);
  for (let round = 0; round < RUNS; round++) {
    if (floor) {
      const t = performance.now();
      run(['nft', '-c', '-f', 'ruleset.nft']);
      times.get('nft -c -f (the ruleset)').push(performance.now() - t);
    }
    const order = entries.map((_, i) => entries[(i + round) % entries.length]);
    for (const e of order)
      for (const args of COMMANDS) {
        const t = performance.now();
        run([process.execPath, e.path, ...withPolicy(args)]);
        times.get(`${e.label} ${args.join(' ')}`).push(performance.now() - t);
      }
  }
  for (const [what, xs] of times) results.push({ what, size: SIZE, backend: BACKEND, runs: xs.length, medianMs: Math.round(median(xs)), minMs: Math.round(Math.min(...xs)), maxMs: Math.round(Math.max(...xs)) });
  if (json) process.stdout.write(JSON.stringify({ results, wholeListingBytes: whole }, null, 2) + '\n');
  else {
    process.stdout.write(`status on ${SIZE} destinations, ${BACKEND}, ${RUNS} runs each (whole-table listing, JSON + text: ${(whole / 1048576).toFixed(1)} MiB)\n\n`);
    process.stdout.write('| command | median ms | min | max |\n|---|---:|---:|---:|\n');
    for (const r of results) process.stdout.write(`| ${r.what} | ${r.medianMs} | ${r.minMs} | ${r.maxMs} |\n`);
  }
} finally {
  spawnSync('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'egress']);
  spawnSync('ip', ['netns', 'del', ns]);
  rmSync(dir, { recursive: true, force: true });
}
