#!/usr/bin/env node
// How compile, apply, plan and status grow with the number of destinations,
// against the floor of nft alone loading the same ruleset (issue 13: "a
// table of how each grows with N"). For each N: N separate destinations
// (half IPv4 in 10.0.0.0/8, stride 2, half IPv6 2001:db8:H:L::1; none
// adjacent, so none merge) in one `{ file: }` set, then in a fresh network
// namespace each of
//   nft -f          the compiled ruleset loaded by nft alone (the floor)
//   compile         egress compile --target nft
//   apply           egress apply (the first: creates the table)
//   plan            egress plan of the same policy (nothing to change)
//   apply again     egress apply of the same policy (nothing to change)
//   status          egress status
//   plan changed    egress plan of the policy with one more port (exit 3: changes pending)
//   apply changed   egress apply of that policy over the applied one (the table replaced)
// measured with /usr/bin/time: wall, CPU (user + system, children included)
// and peak RSS. Ratios are against the floor measured in the same round.
// Needs root and a build (npm run build). Results: BENCHMARKS.md, "Growth with N".
//
//   node bench/apply.mjs [--sizes 1000,10000,100000] [--rounds 3] [--bin [LABEL=]PATH ...] [--json]
//
// With several --bin builds (e.g. a copy of an earlier commit, built), each
// runs every egress step in its own namespace in the same round.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { builds, flag, manyPolicy, opt, quantile, requireRoot } from './cli-args.mjs';

const SIZES = String(opt('sizes', '1000,10000,100000')).split(',').map(Number);
const ROUNDS = Number(opt('rounds', 3));
const json = flag('json');
const BUILDS = builds();
requireRoot('apply.mjs');
if (spawnSync('/usr/bin/time', ['-f', '%e', 'true']).status !== 0) {
  process.stderr.write('bench/apply.mjs needs /usr/bin/time (Debian package "time")\n');
  process.exit(1);
}

/** Destination k: even k an IPv4 address, odd k an IPv6 one (j = k >> 1 numbers each family; every IPv4 last octet even, so none adjacent). */
const address = (k) => {
  const j = k >>> 1;
  return k % 2 === 0 ? `10.${(j >>> 15) & 255}.${(j >>> 7) & 255}.${(j & 127) * 2}` : `2001:db8:${(j >>> 16).toString(16)}:${(j & 0xffff).toString(16)}::1`;
};
const POLICY = manyPolicy(['tcp/443']);
const CHANGED = manyPolicy(['tcp/443', 'tcp/80']);

/** Run `args` under /usr/bin/time in namespace `ns` (or outside it); wall s, CPU s, peak RSS MiB. */
function timed(dir, ns, args, ok = [0]) {
  const out = join(dir, 'time.out');
  const cmd = [...(ns ? ['ip', 'netns', 'exec', ns] : []), ...args];
  const r = spawnSync('/usr/bin/time', ['-o', out, '-f', '%e %U %S %M', ...cmd], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 30, env: { ...process.env, EGRESS_STATE_DIR: join(dir, `state-${ns}`), NO_COLOR: '1' } });
  if (!ok.includes(r.status)) throw new Error(`${args.join(' ')}: exit ${r.status}: ${r.stderr.slice(0, 400)}`);
  const [wall, user, sys, rssKb] = readFileSync(out, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { wall, cpu: user + sys, rss: rssKb / 1024, stdout: r.stdout };
}

const EGRESS_STEPS = ['compile', 'apply', 'plan', 'apply again', 'status', 'plan changed', 'apply changed'];
const label = (b, step) => (BUILDS.length > 1 ? `${b.label}: ${step}` : step);
const STEPS = ['nft -f', ...BUILDS.flatMap((b) => EGRESS_STEPS.map((s) => label(b, s)))];
const rows = [];
const dir = mkdtempSync(join(tmpdir(), 'egress-apply-bench-'));
try {
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  writeFileSync(join(dir, 'changed.yaml'), CHANGED);
  for (const n of SIZES) {
    writeFileSync(join(dir, 'dests.txt'), Array.from({ length: n }, (_, k) => address(k)).join('\n') + '\n');
    const samples = new Map(STEPS.map((s) => [s, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // The builds take turns going first, so neither always runs on a warmer cache.
      const order = BUILDS.map((_, i) => BUILDS[(i + round) % BUILDS.length]);
      for (const [i, b] of order.entries()) {
        const egress = [process.execPath, b.path];
        const c = timed(dir, undefined, [...egress, 'compile', '--target', 'nft', 'policy.yaml']);
        samples.get(label(b, 'compile')).push(c);
        for (const which of i === 0 ? ['floor', 'egress'] : ['egress']) {
          const ns = `egap-${process.pid}-${which}`;
          if (which === 'floor') writeFileSync(join(dir, 'ruleset.nft'), c.stdout);
          if (spawnSync('ip', ['netns', 'add', ns]).status !== 0) throw new Error(`ip netns add ${ns} failed`);
          try {
            if (which === 'floor') samples.get('nft -f').push(timed(dir, ns, ['nft', '-f', 'ruleset.nft']));
            else {
              rmSync(join(dir, `state-${ns}`), { recursive: true, force: true });
              mkdirSync(join(dir, `state-${ns}`), { mode: 0o700 });
              samples.get(label(b, 'apply')).push(timed(dir, ns, [...egress, 'apply', '--backend', 'nft', 'policy.yaml']));
              samples.get(label(b, 'plan')).push(timed(dir, ns, [...egress, 'plan', '--backend', 'nft', 'policy.yaml']));
              samples.get(label(b, 'apply again')).push(timed(dir, ns, [...egress, 'apply', '--backend', 'nft', 'policy.yaml']));
              samples.get(label(b, 'status')).push(timed(dir, ns, [...egress, 'status']));
              samples.get(label(b, 'plan changed')).push(timed(dir, ns, [...egress, 'plan', '--backend', 'nft', 'changed.yaml'], [3]));
              samples.get(label(b, 'apply changed')).push(timed(dir, ns, [...egress, 'apply', '--backend', 'nft', 'changed.yaml']));
            }
          } finally {
            spawnSync('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'egress']);
            spawnSync('ip', ['netns', 'del', ns]);
          }
        }
      }
      process.stderr.write(`bench: N=${n} round ${round + 1}/${ROUNDS}\n`);
    }
    const floor = samples.get('nft -f');
    for (const step of STEPS) {
      const xs = samples.get(step);
      // /usr/bin/time counts CPU in 10 ms steps: below 50 ms of floor CPU a ratio would be noise (NaN: printed "-").
      const ratio = (k) => (floor.some((f) => f[k] < 0.05) ? NaN : quantile(xs.map((x, i) => x[k] / floor[i][k]), 0.5));
      rows.push({ n, step, wall: quantile(xs.map((x) => x.wall), 0.5), cpu: quantile(xs.map((x) => x.cpu), 0.5), rssMiB: Math.round(quantile(xs.map((x) => x.rss), 0.5)), wallVsFloor: ratio('wall'), cpuVsFloor: ratio('cpu') });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const cell = (r, x) => (r.step === 'nft -f' ? '1' : Number.isNaN(x) ? '-' : `${x.toFixed(1)}×`);
if (json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
else {
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  process.stdout.write(`${ROUNDS} rounds, medians; ratios are each round's against its own nft -f; load average at the end ${load}\n\n`);
  process.stdout.write('| N | step | wall s | CPU s | peak RSS MiB | wall / nft -f | CPU / nft -f |\n|---:|---|---:|---:|---:|---:|---:|\n');
  for (const r of rows) process.stdout.write(`| ${r.n.toLocaleString('en-US')} | ${r.step} | ${r.wall.toFixed(2)} | ${r.cpu.toFixed(2)} | ${r.rssMiB} | ${cell(r, r.wallVsFloor)} | ${cell(r, r.cpuVsFloor)} |\n`);
}
