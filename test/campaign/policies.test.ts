/**
 * Campaign class "malformed policies": alias bombs, deep nesting, 10 MB
 * lines, broken encodings, CRLF and tabs, duplicate keys, wrong types, YAML
 * oddities, huge and hostile set files, and policy paths that are not
 * files at all — each run through the real CLI (`check`, and `compile` for
 * what check accepts) as its own process, with a wall-clock bound and a
 * memory cap, so a hang or unbounded growth fails the trial instead of the
 * machine.
 *
 * The standard for every trial: exit 0 (accepted) or exit 1 with located
 * errors — FILE:LINE:COL for content, FILE for a file that cannot be read
 * as a policy at all — no stack trace or internal error, no control
 * character echoed raw, nothing written next to the policy, and the process
 * done within its bound. Peak memory is measured (GNU time) and printed.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildCli } from '../kernel/lifecycle-env.js';
import { tempDir } from '../helpers.js';
import { CASES, materialize, type Case } from './malformed.js';
import { attack, expectNoCrash } from './tally.js';

const CLASS = 'malformed policies';
/** Heap cap for each run: growth past it kills the process, which fails the trial. */
const HEAP_MB = 768;
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

let cli: string;
const dir = tempDir('egress-campaign-policies-');
let peakKb = 0;

beforeAll(() => {
  cli = buildCli('campaign-policies');
}, 120_000);
afterAll(() => {
  if (cli) rmSync(dirname(dirname(cli)), { recursive: true, force: true });
});

function runCli(args: string[], cwd: string): { code: number | null; out: string; said: string; rssKb: number } {
  const r = spawnSync('/usr/bin/time', ['-f', '@@RSS %M', process.execPath, cli, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, NODE_OPTIONS: `--max-old-space-size=${HEAP_MB}`, EGRESS_STATE_DIR: join(cwd, 'state') },
  });
  if (r.error) throw new Error(`did not finish: ${r.error.message}`);
  const m = /@@RSS (\d+)\s*$/.exec(r.stderr);
  const rssKb = m ? Number(m[1]) : 0;
  peakKb = Math.max(peakKb, rssKb);
  return { code: r.status, out: r.stdout + r.stderr.replace(/@@RSS \d+\s*$/, ''), said: r.stderr.replace(/@@RSS \d+\s*$/, ''), rssKb };
}

/** Run one case: check, then compile what check accepts; returns nothing, throws what broke the standard. */
function trial(c: Case, i: number): void {
  const d = join(dir, `${i}`);
  const path = materialize(c, d);
  const before = readdirSync(d).sort();
  const chk = c.compileOnly ? undefined : runCli(['check', path, '--offline'], d);
  if (chk) judge('check', { ...chk, said: chk.out }, c);
  if (!chk || chk.code === 0) judge('compile', runCli(['compile', path, '--target', 'nft', '--offline'], d), c);
  expect(readdirSync(d).sort(), 'files next to the policy').toEqual(before);
}

/** `said`: what is meant for a terminal (all of check's output; compile's diagnostics, not its ruleset). */
function judge(what: string, r: { code: number | null; out: string; said: string }, c: Case): void {
  expectNoCrash(r.out);
  if (RAW_CONTROL.test(r.said)) throw new Error(`${what} echoed a raw control character: ${JSON.stringify(r.out.slice(0, 300))}`);
  if (r.code !== 0 && r.code !== 1) throw new Error(`${what} exited ${r.code}: ${r.out.slice(0, 400)}`);
  if (c.want === 'accepted' && r.code !== 0) throw new Error(`${what} refused what it should accept: ${r.out.slice(0, 400)}`);
  if (c.want === 'refused' && r.code !== 1) throw new Error(`${what} accepted what it should refuse: ${r.out.slice(0, 400)}`);
  if (r.code === 1 && !/^\S+:\d+:\d+: error: /m.test(r.out) && !/^\S+: error: cannot read /m.test(r.out))
    throw new Error(`${what} refused it without a located error: ${r.out.slice(0, 400)}`);
}

describe('campaign: malformed policies', () => {
  test.each(Object.keys(CASES))('%s', async (attackName) => {
    const cases = CASES[attackName]!;
    await attack(CLASS, attackName, cases, (c) => c.name, (c, i) => trial(c, Object.keys(CASES).indexOf(attackName) * 100 + i));
  }, 600_000);

  test('peak memory of any run', () => {
    process.stderr.write(`campaign: malformed policies: peak RSS of any run ${Math.round(peakKb / 1024)} MiB (heap cap ${HEAP_MB} MiB)\n`);
    expect(peakKb).toBeGreaterThan(0);
  });
});
