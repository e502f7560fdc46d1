/**
 * The stage lines of compile, plan, apply and status (cli/progress.ts
 * withStages): drawn on standard error only on a terminal and without -q,
 * only once the command has run the threshold (a seam: 0 here, with a clock
 * that does not move, so nothing depends on speed), cleared before any other
 * text, and never a change to standard output. plan, apply and status run
 * in-process against the in-memory kernel (kernel/fake-kernel.testkit.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { captureIo, tempDir } from '../../test/helpers.js';
import { fakeExecer } from '../kernel/exec.js';
import { FakeKernel } from '../kernel/fake-kernel.testkit.js';
import { applyCommand } from './commands/apply.js';
import { compileCommand } from './commands/compile.js';
import { planCommand } from './commands/plan.js';
import { statusCommand } from './commands/status.js';
import type { Io } from './io.js';
import type { KernelSeams } from './kernel-flags.js';
import { withStages } from './progress.js';

const CLEAR = '\r\x1b[K';
const STAGE = /\r\x1b\[K(?:egress: ([^\r]*?) …(?: \d+\.\d s)?)?/g;

/** An Io that keeps standard output and error apart and, in `log`, in the order they were written. */
function ttyIo(cwd: string, tty: boolean, env: Record<string, string> = {}) {
  const io = captureIo(cwd, env);
  const log: ['out' | 'err', string][] = [];
  const out = io.stdout;
  const err = io.stderr;
  return Object.assign(io, {
    stderrTty: tty,
    log,
    stdout: (s: string) => (log.push(['out', s]), out(s)),
    stderr: (s: string) => (log.push(['err', s]), err(s)),
  });
}

/** The stages drawn, in order, each once (a stage is drawn again after other text on stderr cleared it). */
function stagesOf(err: string): string[] {
  const out: string[] = [];
  for (const m of err.matchAll(STAGE)) if (m[1] !== undefined && out[out.length - 1] !== m[1]) out.push(m[1]);
  return out;
}

/** Every stage line is cleared before the first byte of standard output, and standard error holds nothing else but `rest`. */
function expectClearedBeforeOutput(io: ReturnType<typeof ttyIo>, rest = ''): void {
  const first = io.log.findIndex(([k]) => k === 'out');
  expect(first).toBeGreaterThan(0);
  expect(io.log[first - 1]).toEqual(['err', CLEAR]);
  const before = io.log.slice(0, first).filter(([k]) => k === 'err').map(([, s]) => s).join('');
  expect(before.endsWith(CLEAR)).toBe(true);
  expect(io.err.replace(STAGE, '')).toBe(rest);
}

const NOW0 = { stagesAfterMs: 0, clock: () => 0 };

describe('withStages', () => {
  test('off (not a terminal, -q): the Io is passed on as it is, with no stage to say', async () => {
    const io = ttyIo(tempDir('egress-stages-'), false);
    const seen = await withStages(io, false, NOW0, async (i) => i);
    expect(seen).toBe(io);
    expect(seen.stage).toBeUndefined();
  });

  test('nothing before the threshold; then the stage, cleared before any other text, stopped by standard output', async () => {
    const io = ttyIo(tempDir('egress-stages-'), true);
    let clock = 0;
    await withStages(io, true, { stagesAfterMs: 500, clock: () => clock }, async (i) => {
      i.stage!('reading');
      expect(io.err).toBe('');
      clock = 600;
      i.stage!('lowering');
      expect(io.err).toBe(`${CLEAR}egress: lowering …`);
      i.stderr('egress: warning: w\n');
      expect(io.err).toBe(`${CLEAR}egress: lowering …${CLEAR}egress: warning: w\n`);
      i.stage!('loading with nft -f');
      i.stdout('report\n');
      i.stage!('after the report');
      i.stderr('a note\n');
    });
    expect(io.log).toEqual([
      ['err', `${CLEAR}egress: lowering …`],
      ['err', CLEAR],
      ['err', 'egress: warning: w\n'],
      ['err', `${CLEAR}egress: loading with nft -f …`],
      ['err', CLEAR],
      ['out', 'report\n'],
      ['err', 'a note\n'],
    ]);
  });

  test('a stage that runs a second shows its seconds (redrawn by the timer); the line is cut to the terminal and cleared when the command throws', async () => {
    const io = Object.assign(ttyIo(tempDir('egress-stages-'), true), { stderrColumns: 40 });
    let clock = 0;
    const failed = withStages(io, true, { stagesAfterMs: 0, clock: () => clock }, async (i) => {
      i.stage!('listing the new ruleset in a scratch namespace (nft -f)');
      clock = 1500;
      // The timer's redraw (every 250 ms) is the condition waited for; the clock itself does not move.
      await new Promise<void>((r) => {
        const t = setInterval(() => io.err.includes('1.5 s') && (clearInterval(t), r()), 10);
      });
      throw new Error('boom');
    });
    await expect(failed).rejects.toThrow('boom');
    const lines = io.log.map(([, s]) => s);
    expect(lines[0]).toBe(`${CLEAR}egress: listing the new ruleset in a …`);
    expect(lines[1]).toBe(`${CLEAR}egress: listing the new ruleset … 1.5 s`);
    expect(lines.slice(2)).toEqual([CLEAR]);
    for (const l of lines) expect(l.length - CLEAR.length).toBeLessThan(40);
  });
});

/** A `{ file: }` set (read in the "resolving" stage) and one literal address: four destinations. */
const POLICY = `version: 1
default: drop
allow:
  - name: web
    reason: the web
    ports: [tcp/443]
    to: [192.0.2.80]
  - name: mirrors
    to: [$mirrors]
    reason: package mirrors, from a file
    ports: [tcp/80, tcp/443]
sets:
  mirrors: { file: dests.txt }
`;

function policyDir(): string {
  const dir = tempDir('egress-stages-');
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  writeFileSync(join(dir, 'dests.txt'), '198.51.100.1\n198.51.100.3\n2001:db8::1\n');
  return dir;
}

const LOADING = ['reading policy.yaml', 'checking the policy', 'resolving names and reading sets', 'lowering', 'linting', 'compiling the nft ruleset (4 destinations)'];

describe('compile', () => {
  test('on a terminal: the stages in order, cleared before the ruleset; standard output as without them', async () => {
    const dir = policyDir();
    const io = ttyIo(dir, true);
    expect(await compileCommand(io, 'policy.yaml', { target: 'nft' }, NOW0)).toBe(0);
    expect(stagesOf(io.err)).toEqual(LOADING);
    expectClearedBeforeOutput(io);
    for (const [tty, seams] of [[false, NOW0], [true, { clock: () => 0 }]] as const) {
      // Not a terminal; or a terminal and a run quicker than the default threshold: not one byte on stderr.
      const plain = ttyIo(dir, tty);
      expect(await compileCommand(plain, 'policy.yaml', { target: 'nft' }, seams)).toBe(0);
      expect(plain.err).toBe('');
      expect(plain.out).toBe(io.out);
    }
    // -q on a terminal: nothing on stderr, the same ruleset.
    const quiet = ttyIo(dir, true);
    expect(await compileCommand(quiet, 'policy.yaml', { target: 'nft', quiet: true }, NOW0)).toBe(0);
    expect(quiet.err).toBe('');
    expect(quiet.out).toBe(io.out);
  });

  test('diagnostics on stderr are never on the stage line; --json output is unchanged', async () => {
    const dir = policyDir();
    writeFileSync(join(dir, 'policy.yaml'), POLICY.replace('    reason: the web\n', ''));
    const io = ttyIo(dir, true);
    expect(await compileCommand(io, 'policy.yaml', { target: 'nft' }, NOW0)).toBe(0);
    const warning = io.err.replace(STAGE, '');
    expect(warning).toMatch(/^policy\.yaml:\d+:\d+: warning: /);
    expect(io.err).toContain(`${CLEAR}${warning}`);
    expectClearedBeforeOutput(io, warning);
    const json = ttyIo(dir, true);
    const plain = ttyIo(dir, false);
    expect(await compileCommand(json, 'policy.yaml', { target: 'nft', json: true }, NOW0)).toBe(0);
    expect(await compileCommand(plain, 'policy.yaml', { target: 'nft', json: true }, NOW0)).toBe(0);
    expect(stagesOf(json.err)).toEqual(LOADING);
    expect(json.out).toBe(plain.out);
  });
});

describe('plan, apply and status (in-memory kernel)', () => {
  function world() {
    const dir = policyDir();
    const env = {
      EGRESS_SYSTEMD_DIR: join(dir, 'systemd'),
      EGRESS_SYSTEMD_RUNTIME_DIR: join(dir, 'run-systemd'),
      EGRESS_PACKAGED_UNIT_DIR: join(dir, 'lib-systemd'),
      EGRESS_IFUPDOWN_DIR: join(dir, 'if-pre-up.d'),
    };
    const seams: KernelSeams = { uid: 0, execer: fakeExecer(), kernel: new FakeKernel(), self: ['/usr/bin/node', '/usr/lib/egress/run.js'], ...NOW0 };
    const io = (tty: boolean): ReturnType<typeof ttyIo> & Io => ttyIo(dir, tty, env);
    return { dir, seams, io };
  }

  test('plan: the stages in order, cleared before the plan; -q and not a terminal draw nothing; the same plan', async () => {
    const w = world();
    const io = w.io(true);
    expect(await planCommand(io, 'policy.yaml', { backend: 'nft' }, w.seams)).toBe(3);
    expect(stagesOf(io.err)).toEqual([
      ...LOADING,
      'reading the live ruleset, the new one in a scratch netns (nft -f)',
      'comparing',
      'reading what egress has live in iptables (iptables-save)',
    ]);
    expectClearedBeforeOutput(io);
    const plain = w.io(false);
    expect(await planCommand(plain, 'policy.yaml', { backend: 'nft' }, w.seams)).toBe(3);
    expect(plain.err).toBe('');
    expect(plain.out).toBe(io.out);
    const quiet = [w.io(true), w.io(false)];
    for (const q of quiet) expect(await planCommand(q, 'policy.yaml', { backend: 'nft', quiet: true }, w.seams)).toBe(3);
    expect(quiet.map((q) => q.err)).toEqual(['', '']);
    expect(quiet[0]!.out).toBe(quiet[1]!.out);
  });

  test('apply, then status: the stages in order, cleared before the report; the same report without them, and with -q none', async () => {
    const applied: string[] = [];
    for (const tty of [true, false]) {
      const w = world();
      const io = w.io(tty);
      expect(await applyCommand(io, 'policy.yaml', { backend: 'nft' }, w.seams)).toBe(0);
      applied.push(io.out);
      if (!tty) {
        expect(io.err).toBe('');
        continue;
      }
      expect(stagesOf(io.err)).toEqual([
        ...LOADING,
        "taking the state directory's lock",
        'reading the live ruleset, the new one in a scratch netns (nft -f)',
        'reading what egress has live in iptables (iptables-save)',
        'checking with nft -c, listing in a scratch namespace (nft -f)',
        'comparing',
        'loading with nft -f',
        'verifying (nft list table inet egress), recording the state',
      ]);
      expectClearedBeforeOutput(io);
      const quiet = w.io(true);
      expect(await applyCommand(quiet, 'policy.yaml', { backend: 'nft', quiet: true, reload: true }, w.seams)).toBe(0);
      expect(quiet.err).toBe('');

      const status = w.io(true);
      expect(await statusCommand(status, {}, w.seams)).toBe(0);
      expect(stagesOf(status.err)).toEqual(['reading the state directory', 'reading the counters (nft list table inet egress)', 'reading what the host forwards']);
      expectClearedBeforeOutput(status);
      const plain = w.io(false);
      expect(await statusCommand(plain, {}, w.seams)).toBe(0);
      expect(plain.err).toBe('');
      expect(plain.out).toBe(status.out);
      // -q: the first line alone, no stage lines.
      const brief = w.io(true);
      expect(await statusCommand(brief, { quiet: true }, w.seams)).toBe(0);
      expect(brief.err).toBe('');
      expect(brief.out).toBe('status:   active\n');
    }
    expect(applied[0]).toBe(applied[1]);
    expect(applied[0]).toMatch(/^applied policy\.yaml with nft /m);
  });
});
