#!/usr/bin/env node
// Start-up: how long a short egress command takes against `node -e 0`, the
// floor of any node program on this machine. Paired and interleaved: every
// round runs `node -e 0` and then each command once (the order rotates), and
// each command's ratio is taken against the floor of its own round, so load
// from other work on the machine hits both sides alike. Reported: medians of
// the wall times, the median ratio with its quartiles, and how many modules
// each command loads (one extra traced run, test/cli/load-trace.mjs).
//
// Usage: node bench/startup.mjs [--runs N] [--bin [LABEL=]PATH]... [--json]
//   --bin   an egress entry to time (default bin/egress.js); give several to
//           compare builds in the same run, e.g. a copy of the base commit.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { builds, flag, opt, quantile, ROOT } from './cli-args.mjs';

const RUNS = Number(opt('runs', 30));
const json = flag('json');
const entries = builds();

const POLICY = 'examples/apt-only.yaml';
const COMMANDS = [
  ['--version', ['--version']],
  ['--help', ['--help']],
  ['check', ['check', POLICY, '--offline']],
  ['explain', ['explain', POLICY, '--offline', '--to', '192.0.2.1', '--port', 'tcp/443']],
];
const floor = { label: 'node -e 0', args: ['-e', '0'] };
const cases = [floor, ...entries.flatMap((e) => COMMANDS.map(([name, args]) => ({ label: entries.length > 1 ? `${e.label}: ${name}` : name, entry: e.path, args: [e.path, ...args] })))];

function once(args, env) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'ignore', env });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status ?? r.signal}`);
  return ms;
}


function modules(c) {
  if (c === floor) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'egress-bench-'));
  const trace = join(dir, 'loads');
  try {
    once(['--import', join(ROOT, 'test/cli/load-trace.mjs'), ...c.args], { ...process.env, EGRESS_LOAD_TRACE: trace });
    const urls = new Set(readFileSync(trace, 'utf8').split('\n').filter(Boolean));
    const pkgs = (name) => [...urls].filter((u) => u.includes(`/node_modules/${name}/`)).length;
    return { total: urls.size, zod: pkgs('zod'), yaml: pkgs('yaml') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const times = cases.map(() => []);
const ratios = cases.map(() => []);
for (const c of cases) once(c.args); // warm the file cache
const log = (s) => json || process.stderr.write(s);
for (let r = 0; r < RUNS; r++) {
  const f = once(floor.args);
  times[0].push(f);
  ratios[0].push(1);
  // Rotate the order of the commands each round, so none always runs first after the floor.
  for (let k = 0; k < cases.length - 1; k++) {
    const i = 1 + ((k + r) % (cases.length - 1));
    const ms = once(cases[i].args);
    times[i].push(ms);
    ratios[i].push(ms / f);
  }
  log(`\r${r + 1}/${RUNS} rounds`);
}
log('\n');

const rows = cases.map((c, i) => ({
  command: c.label,
  medianMs: +quantile(times[i], 0.5).toFixed(1),
  ratio: +quantile(ratios[i], 0.5).toFixed(2),
  ratioIqr: [+quantile(ratios[i], 0.25).toFixed(2), +quantile(ratios[i], 0.75).toFixed(2)],
  modules: modules(c),
}));
const result = { runs: RUNS, node: process.version, policy: POLICY, rows };
if (json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(`start-up, ${RUNS} interleaved rounds (node ${process.version}; check/explain of ${POLICY})`);
  console.log('| command | median ms | × node -e 0 (IQR) | modules (zod, yaml) |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const r of rows) {
    const m = r.modules ? `${r.modules.total} (${r.modules.zod}, ${r.modules.yaml})` : '';
    console.log(`| ${r.command} | ${r.medianMs} | ${r.ratio} (${r.ratioIqr[0]}–${r.ratioIqr[1]}) | ${m} |`);
  }
}
