/**
 * The hostile-input campaign, class "state directory" (issue 12;
 * docs/lifecycle.md "Crashes", "Concurrency", "The state directory";
 * reliability notes 3a–3n, D1–D3, D10–D13): the real CLI, built once, run
 * in throwaway network namespaces against everything that can happen to its
 * state directory — commands killed at random points (also in the
 * kernel-change window after `applying.json` appears), a second apply killed
 * over a pending confirmation, concurrent applies, a killed watchdog, a full
 * or read-only state directory, corrupted state files, and a directory
 * another user owns or has planted links in.
 *
 * The standard for every trial: a plain error (exit 1, `egress: error:`, no
 * stack trace, no "internal error") or the documented handling; the live
 * ruleset exactly the old or the new one (iptables: each family), unchanged
 * by a command that failed unless its documented job is to change it (and
 * then the message says the kernel changed); and the next command settles:
 * after it `status --json` shows no drift and no intent record, and what
 * live.json says is live is what the kernel has.
 *
 * In the test suite, attacks 1 and 8 run a seeded part (16 kills per backend;
 * each damaged file against 2 of the 5 commands); scripts/campaign.sh
 * (EGRESS_CAMPAIGN_FULL=1) runs them whole: 40 kills, all 175 combinations.
 */
import { type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lchownSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, symlinkSync, watch, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, test } from 'vitest';
import { realExecer } from '../../src/kernel/exec.js';
import { readHistory } from '../../src/kernel/history.js';
import { sweepStale } from '../../src/kernel/netns.js';
import { readState, sha256 } from '../../src/kernel/state.js';
import { tempDir } from '../helpers.js';
import { useRootGuard } from '../kernel/harness.js';
import { buildCli, groupAlive, iptFamily, lcEnv, nftOwned, pendingOf, running, sleep, until, type Lc, type Ran } from '../kernel/lifecycle-env.js';
import { kernelDescribe } from '../netns.js';
import { attack, expectNoCrash, FULL, sample, SEED } from './tally.js';
import { resultOf } from '../json.js';

const CLASS = 'state directory';
type Backend = 'nft' | 'iptables';
const BACKENDS: readonly Backend[] = ['nft', 'iptables'];

// The policies of the reliability notes: A and B alternate, C is the confirmed baseline under a pending apply.
const POLICIES = {
  A: `version: 1
default: reject
allow:
  - name: dns
    reason: resolver
    to: [192.0.2.53, "2001:db8::53"]
    ports: [udp/53, tcp/53]
  - name: web
    reason: web
    to: [198.51.100.0/24]
    ports: [tcp/443]
`,
  B: `version: 1
default: drop
allow:
  - name: mail
    reason: mail relay
    to: [203.0.113.25, "2001:db8::25"]
    ports: [tcp/25]
deny:
  - name: smtp
    reason: no direct mail
    ports: [tcp/25, tcp/465]
    except: { user: root }
`,
  C: `version: 1
default: reject
allow:
  - name: mail
    reason: baseline C
    to: [203.0.113.25, "2001:db8::25"]
    ports: [tcp/25]
`,
  // A snapshot of about 158 KB (three 50,000-character reasons): what fills a small state directory.
  BIG: `version: 1
default: reject
allow:
${[1, 2, 3].map((n) => `  - name: web${n}\n    reason: ${'r'.repeat(50_000)}\n    to: [198.51.100.${n}]\n    ports: [tcp/443]\n`).join('')}`,
};
type Policy = keyof typeof POLICIES;

const x = realExecer();
let cli = '';
/** The policy files, one set for every world, so the kernel's listing of each is learned once per backend. */
let P = {} as Record<Policy, string>;
const open: World[] = [];

/** What the kernel has of egress, per transaction: nft the whole table; iptables each family. */
type View = string[];

/** The kernel's view of each policy (by file; '' = nothing of egress), learned per backend in a world of its own. */
const known: Partial<Record<Backend, Promise<Map<string, View>>>> = {};

interface World {
  lc: Lc;
  b: Backend;
  views: Map<string, View>;
  mounted?: string;
}

const label = (file: string) => (file === '' ? 'nothing' : ((Object.entries(P) as [Policy, string][]).find(([, p]) => p === file)?.[0] ?? file));

async function view(lc: Lc, b: Backend): Promise<View> {
  return b === 'nft' ? [await nftOwned(lc)] : [await iptFamily(lc, 'ipv4'), await iptFamily(lc, 'ipv6')];
}

const viewOf = (w: World) => view(w.lc, w.b);

function same(a: View, b: View): boolean {
  return a.join('\n\0\n') === b.join('\n\0\n');
}

/** Name a view by the policies it matches, transaction by transaction ("A", or "v4 A / v6 B"). */
function nameOf(w: World, v: View): string {
  const per = v.map((f, i) => [...w.views].find(([, k]) => k[i] === f)?.[0]);
  if (per.every((p) => p === per[0])) return per[0] === undefined ? 'unknown' : label(per[0]);
  return per.map((p, i) => `${i ? 'v6 ' : 'v4 '}${p === undefined ? 'unknown' : label(p)}`).join(' / ');
}

const want = (w: World, file: string) => w.views.get(file)!;

/** Each transaction of `v` is that of one of `files`: nothing half-loaded, nothing else. */
function oneOf(w: World, v: View, files: string[]): void {
  if (!v.every((f, i) => files.some((p) => want(w, p)[i] === f))) throw new Error(`the kernel has ${nameOf(w, v)}: none of ${files.map(label).join(', ')} (per transaction)`);
}

async function learnViews(b: Backend): Promise<Map<string, View>> {
  const lc = await lcEnv(x, cli);
  try {
    const views = new Map<string, View>([['', await view(lc, b)]]);
    for (const p of Object.values(P)) {
      const r = await lc.egress(['apply', '--backend', b, p]);
      if (r.code !== 0) throw new Error(`apply ${label(p)}: ${r.stderr}`);
      views.set(p, await view(lc, b));
    }
    return views;
  } finally {
    await lc.close();
  }
}

async function world(b: Backend): Promise<World> {
  const views = await (known[b] ??= learnViews(b));
  const w: World = { lc: await lcEnv(x, cli), b, views };
  open.push(w);
  return w;
}

async function closeWorld(w: World): Promise<void> {
  for (const pid of watchdogsOf(w.lc.stateDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (w.mounted) await umount(w);
  // A state directory handed to another user (attack 9) is root's again, so close() can clear it.
  if (existsSync(w.lc.stateDir)) chownSync(w.lc.stateDir, 0, 0);
  await w.lc.close();
}

/** Confirm watchdogs (process kind) still running for this state directory: found by their environment, stopped by pid. */
function watchdogsOf(stateDir: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const env = readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
      if (env.includes(`EGRESS_STATE_DIR=${stateDir}`) && readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('_auto-rollback') && running(Number(d))) pids.push(Number(d));
    } catch {
      /* exited while we looked */
    }
  }
  return pids;
}

/** Run egress; whatever it says must not be a crash. */
async function egress(w: World, args: string[]): Promise<Ran> {
  const r = await w.lc.egress(args);
  expectNoCrash(r.stdout + r.stderr);
  return r;
}

/** Run a command that must succeed. */
async function ok(w: World, args: string[]): Promise<Ran> {
  const r = await egress(w, args);
  if (r.code !== 0) throw new Error(`egress ${args.join(' ')} exited ${r.code}: ${r.stderr.slice(0, 400)}`);
  return r;
}

/** A plain failure: exit 1 and an `egress: error:` line. */
function plainError(r: Ran, what: string, pattern?: RegExp): void {
  if (r.code !== 1) throw new Error(`${what}: expected exit 1, got ${r.code}: ${(r.stdout + r.stderr).slice(0, 400)}`);
  if (!/^egress: error: \S/m.test(r.stderr)) throw new Error(`${what}: no plain error line: ${r.stderr.slice(0, 400)}`);
  if (pattern && !pattern.test(r.stderr)) throw new Error(`${what}: the error does not say ${pattern}: ${r.stderr.slice(0, 400)}`);
}

/** The policy live.json says is live ('' = nothing). */
function liveFile(w: World): string {
  const s = readState(w.lc.stateDir, 'live');
  return s?.kind === 'ruleset' ? s.policyFile : '';
}

/**
 * The standard after "the next command": status --json runs and shows no
 * drift, no intent record and no pending confirmation; no intent record or
 * lock is left; the kernel (`have`, when just read) has what live.json says
 * is live.
 */
async function settled(w: World, have?: View): Promise<void> {
  const st = await egress(w, ['status', '--json']);
  if (st.code !== 0) throw new Error(`status --json exited ${st.code}: ${st.stderr.slice(0, 400)}`);
  const j = resultOf(st.stdout, 'status', st.code);
  if (j.drift) throw new Error('status shows drift after the next command');
  if (j.interrupted || j.interruptedBy) throw new Error(`status still shows an intent record: ${JSON.stringify(j.interruptedBy)}`);
  if (j.pending) throw new Error(`status shows a pending confirmation: ${JSON.stringify(j.pending)}`);
  if (existsSync(join(w.lc.stateDir, 'applying.json'))) throw new Error('applying.json left behind');
  if (existsSync(join(w.lc.stateDir, 'lock'))) throw new Error('lock left behind');
  const file = liveFile(w);
  have ??= await viewOf(w);
  if (!w.views.has(file) || !same(want(w, file), have)) throw new Error(`live.json says ${label(file)} is live; the kernel has ${nameOf(w, have)}`);
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/** The child has exited and so has every process of its group (nft, iptables-restore die with it, not at the same instant). */
async function gone(child: ChildProcess): Promise<void> {
  await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('close', r)));
  await until(() => !groupAlive(child.pid!), `process group ${child.pid} still has members`);
}

/** Resolves true when the intent record `applying.json` is written (inotify on the state directory), false when `child` ends first. */
function intentWritten(stateDir: string, child: ChildProcess): Promise<boolean> {
  return new Promise((resolve) => {
    const watcher = watch(stateDir, (_event, name) => {
      if (name === 'applying.json') done(true);
    });
    const onClose = () => done(false);
    child.once('close', onClose);
    function done(seen: boolean) {
      watcher.close();
      child.off('close', onClose);
      resolve(seen);
    }
  });
}

/** Start `args` in its own process group and signal the group `delay` ms after the start, or after the intent record appears. */
async function killAt(w: World, args: string[], when: 'start' | 'intent', delay: number, sig: NodeJS.Signals = 'SIGKILL'): Promise<{ intentSeen: boolean }> {
  const child = w.lc.start(args);
  const said: Buffer[] = [];
  child.stderr?.on('data', (b: Buffer) => said.push(b));
  child.stdout?.on('data', (b: Buffer) => said.push(b));
  const intentSeen = when === 'intent' ? await intentWritten(w.lc.stateDir, child) : false;
  await sleep(delay);
  killGroup(child, sig);
  if (sig !== 'SIGKILL') {
    // A hang-up ends node and what it runs; anything that survives it would be a hang: end it, then judge.
    await until(async () => child.exitCode !== null || child.signalCode !== null, `egress ${args[0]} survived ${sig}`, 20_000);
    killGroup(child, 'SIGKILL');
  }
  await gone(child);
  expectNoCrash(Buffer.concat(said).toString());
  return { intentSeen };
}

/**
 * After a kill: which side the kernel is on ("old", "new", "mixed"; "+intent"
 * when the intent record is left), checking that status (no lock, settles
 * nothing) names the cut-off command and that side.
 */
async function cutOff(w: World, after: View, old: string, next: string): Promise<string> {
  const side = same(after, want(w, next)) ? 'new' : same(after, want(w, old)) ? 'old' : 'neither';
  if (!existsSync(join(w.lc.stateDir, 'applying.json'))) return side === 'neither' ? 'mixed' : side;
  const j = resultOf((await egress(w, ['status', '--json'])).stdout, 'status');
  if (j.interruptedBy?.kernel !== side) throw new Error(`status says the cut-off command left ${j.interruptedBy?.kernel ?? 'no intent'}; the kernel has ${side}`);
  return `${side === 'neither' ? 'mixed' : side}+intent`;
}

/**
 * The next command settles: `confirm` (it settles, changes nothing of its
 * own, then has nothing to confirm: the kernel must stay as the kill left it,
 * a half-way iptables change undone) or a command that must succeed; then
 * the standard of `settled`.
 */
async function settleWith(w: World, args: string[], after: View, old: string, next: string): Promise<void> {
  if (args[0] === 'confirm') {
    plainError(await egress(w, ['confirm']), 'confirm after the kill', /nothing to confirm/);
    const now = await viewOf(w);
    const expected = same(after, want(w, next)) ? next : old;
    if (!same(now, want(w, expected))) throw new Error(`after settling, the kernel has ${nameOf(w, now)}; expected ${label(expected)}`);
    await settled(w, now); // status changes nothing in the kernel
  } else {
    await ok(w, args);
    await settled(w);
  }
}

/** Run each trial in a world of its own, all at once, then tally them one by one: waiting out deadlines need not add up. */
function inParallel<T>(inputs: readonly T[], trial: (t: T, i: number) => Promise<void>): (t: T, i: number) => Promise<void> {
  const runs = inputs.map((t, i) => {
    const p = trial(t, i);
    p.catch(() => {}); // tallied when attack() awaits it
    return p;
  });
  return (_t, i) => runs[i]!;
}

/** Each backend's trials in its own world, both backends at once. */
async function perBackend(run: (b: Backend) => Promise<void>): Promise<void> {
  const results = await Promise.allSettled(BACKENDS.map(run));
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
  if (failed.length) throw new Error(failed.join('\n'));
}

async function mountTmpfs(w: World, size: string): Promise<void> {
  mkdirSync(w.lc.stateDir, { recursive: true, mode: 0o700 });
  const r = await x.run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'egress-campaign', w.lc.stateDir]);
  if (r.code !== 0) throw new Error(`mount: ${r.stderr}`);
  w.mounted = w.lc.stateDir;
}

async function remount(w: World, how: 'ro' | 'rw'): Promise<void> {
  const r = await x.run('mount', ['-o', `remount,${how}`, w.mounted!]);
  if (r.code !== 0) throw new Error(`remount ${how}: ${r.stderr}`);
}

async function umount(w: World): Promise<void> {
  const r = await x.run('umount', [w.mounted!]);
  if (r.code !== 0) throw new Error(`umount ${w.mounted}: ${r.stderr}`);
  delete w.mounted;
}

/** A file as it is: content, size, time, mode and owner (a write through a link shows in one of them). */
function stamp(f: string): string {
  const st = lstatSync(f);
  return `${readFileSync(f, 'utf8')}|${st.size}|${st.mtimeMs}|${st.mode}|${st.uid}`;
}

/** Put the base ruleset back after a command changed it (attack 8 resets between trials). */
async function restoreKernel(w: World, ruleset: string, base: View): Promise<void> {
  if (w.b === 'nft') {
    const r = await w.lc.sh(['nft', '-f', '-'], ruleset);
    if (r.code !== 0) throw new Error(`nft -f: ${r.stderr}`);
  } else {
    // What egress put in each family's filter table, as saved; the namespace has nothing else there.
    for (const [i, tool] of (['iptables-restore', 'ip6tables-restore'] as const).entries()) {
      const r = await w.lc.sh([tool], base[i]! + '\n');
      if (r.code !== 0) throw new Error(`${tool}: ${r.stderr}`);
    }
  }
  if (!same(await viewOf(w), base)) throw new Error('the base ruleset could not be put back');
}

/** Every snapshot egress keeps reads back whole, and live.json names `file`. */
function intactState(w: World, file: string): void {
  for (const f of ['live', 'previous', 'confirmed', 'pending', 'applying'] as const) readState(w.lc.stateDir, f); // throws StateError when cut
  if (liveFile(w) !== file) throw new Error(`live.json names ${label(liveFile(w))}, not ${label(file)}`);
}

kernelDescribe(`campaign: ${CLASS} (kernel)`, () => {
  useRootGuard(x);
  beforeAll(() => {
    cli = buildCli('campaign-state');
    const dir = tempDir('egress-campaign-state-');
    P = Object.fromEntries(Object.keys(POLICIES).map((k) => [k, join(dir, `${k}.yaml`)])) as Record<Policy, string>;
    for (const [k, text] of Object.entries(POLICIES)) writeFileSync(P[k as Policy], text);
  }, 180_000);
  afterAll(async () => {
    if (cli) rmSync(dirname(dirname(cli)), { recursive: true, force: true });
    // Scratch namespaces of applies killed half-way (egress sweeps them on its next run; its last run here may have been killed).
    await sweepStale(x);
  }, 60_000);
  afterEach(async () => {
    for (const w of open.splice(0)) await closeWorld(w);
  }, 60_000);

  test('1. kill -9 of apply at random points, timed and in the kernel-change window after applying.json appears', async () => {
    await perBackend(async (b) => {
      const w = await world(b);
      await ok(w, ['apply', '--backend', b, P.A]);
      const N = FULL ? 40 : 16; // per backend
      const timed = sample(fc.integer({ min: 0, max: 700 }), N / 2, b === 'nft' ? 1 : 2);
      const windowed = sample(fc.integer({ min: 0, max: 300 }), N / 2, b === 'nft' ? 3 : 4);
      const trials = Array.from({ length: N }, (_, i) => ({
        when: i % 2 ? ('intent' as const) : ('start' as const),
        delay: (i % 2 ? windowed : timed)[i >> 1]!,
        settleWith: (i >> 1) % 2 ? ('apply' as const) : ('confirm' as const),
      }));
      const seen = new Map<string, number>();
      const t0 = Date.now();
      try {
        await attack(
          CLASS,
          `kill -9 of apply (${b})`,
          trials,
          (t, i) => `${b} #${i}: ${t.delay} ms after ${t.when === 'start' ? 'the start' : 'applying.json'}, settled by ${t.settleWith} (seed ${SEED})`,
          async (t) => {
            const old = liveFile(w);
            const next = old === P.A ? P.B : P.A;
            await killAt(w, ['apply', next], t.when, t.delay);
            const after = await viewOf(w);
            oneOf(w, after, [old, next]);
            const outcome = await cutOff(w, after, old, next);
            seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
            await settleWith(w, t.settleWith === 'apply' ? ['apply', next] : ['confirm'], after, old, next);
          },
        );
      } finally {
        process.stderr.write(`kill -9 of apply (${b}): ${N} trials in ${((Date.now() - t0) / 1000).toFixed(1)} s; outcomes: ${[...seen].map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
      }
    });
  }, 300_000);

  test('2. kill -9 of rollback and of remove after their intent record appears', async () => {
    await perBackend(async (b) => {
      const w = await world(b);
      await ok(w, ['apply', '--backend', b, P.B]);
      const delays = sample(fc.integer({ min: 0, max: 120 }), 6, b === 'nft' ? 5 : 6);
      const trials = delays.map((delay, i) => ({ cmd: i % 2 ? ('remove' as const) : ('rollback' as const), delay }));
      await attack(
        CLASS,
        `kill -9 of rollback and remove (${b})`,
        trials,
        (t, i) => `${b} #${i}: ${t.cmd} killed ${t.delay} ms after applying.json (seed ${SEED})`,
        async (t) => {
          // Something to roll back to: the other policy applied over what is live.
          const was = liveFile(w);
          const cur = was === P.A ? P.B : P.A;
          await ok(w, ['apply', cur]);
          const next = t.cmd === 'rollback' ? was : '';
          const { intentSeen } = await killAt(w, [t.cmd], 'intent', t.delay);
          if (!intentSeen) throw new Error(`${t.cmd} ended without writing applying.json`);
          const after = await viewOf(w);
          oneOf(w, after, [cur, next]);
          await cutOff(w, after, cur, next);
          await settleWith(w, ['confirm'], after, cur, next);
        },
      );
    });
  }, 300_000);

  test('3. a second apply killed (SIGKILL, SIGHUP) while an earlier apply --confirm is pending: that confirmation survives and its deadline rolls back (D1)', async () => {
    const delays = sample(fc.integer({ min: 0, max: 150 }), 8, 7);
    const trials = BACKENDS.flatMap((b, bi) => (['SIGKILL', 'SIGHUP'] as const).flatMap((sig, si) => (['intent', 'start'] as const).map((when, wi) => ({ b, sig, when, delay: delays[bi * 4 + si * 2 + wi]! * (when === 'start' ? 4 : 1) }))));
    await attack(
      CLASS,
      'second apply killed over a pending one (D1)',
      trials,
      (t) => `${t.b}: ${t.sig} ${t.delay} ms after ${t.when === 'start' ? 'the start' : 'applying.json'} (seed ${SEED})`,
      inParallel(trials, async (t) => {
        const w = await world(t.b);
        await ok(w, ['apply', '--backend', t.b, P.C]);
        await ok(w, ['apply', '--confirm', '10', P.A]);
        const first = pendingOf(w.lc);
        const deadline = Date.parse((readState(w.lc.stateDir, 'pending') as { deadline: string }).deadline);
        await killAt(w, ['apply', '--confirm', '5', P.B], t.when, t.delay, t.sig);
        const after = await viewOf(w);
        oneOf(w, after, [P.A, P.B]);
        if (Date.now() >= deadline) throw new Error('inconclusive: the first deadline passed before the second apply was killed');
        // Until the second apply's ruleset is live, the first confirmation is the one pending, its watchdog waiting.
        if (!same(after, want(w, P.B))) {
          const p = pendingOf(w.lc);
          if (p.token !== first.token) throw new Error(`pending.json holds ${p.token}, not the earlier confirmation ${first.token}`);
          if (!running(first.watchdog.pid)) throw new Error(`the earlier confirmation's watchdog ${first.watchdog.pid} is gone`);
        }
        // Nobody runs egress now: a watchdog must bring back the confirmed C by itself.
        await until(async () => same(await viewOf(w), want(w, P.C)) && !existsSync(join(w.lc.stateDir, 'pending.json')) && liveFile(w) === P.C, `C is not back (the kernel has ${nameOf(w, await viewOf(w))})`);
        await until(() => watchdogsOf(w.lc.stateDir).length === 0, 'a watchdog is still running after the rollback');
        const last = readHistory(w.lc.stateDir).entries.at(-1);
        if (last?.action !== 'auto-rollback' || last.outcome !== 'ok') throw new Error(`last history entry: ${JSON.stringify(last)}`);
        await settled(w);
      }),
    );
  }, 120_000);

  test('4. two or three applies at once: one at a time (the others wait, or fail naming the holder); the state ends consistent', async () => {
    const sets: Policy[][] = [
      ['A', 'B'],
      ['B', 'A'],
      ['A', 'B', 'C'],
      ['C', 'C', 'B'],
    ];
    await perBackend(async (b) => {
      const w = await world(b);
      await ok(w, ['apply', '--backend', b, P.C]);
      await attack(
        CLASS,
        `concurrent applies (${b})`,
        sets,
        (s) => `${b}: ${s.join(' + ')} at once`,
        async (s) => {
          const before = readHistory(w.lc.stateDir).entries.length;
          const runs = await Promise.all(s.map((p) => egress(w, ['apply', P[p]])));
          for (const [i, r] of runs.entries()) if (r.code !== 0) plainError(r, `apply ${s[i]}`, /another egress command holds the lock: egress apply \(pid \d+\)/);
          const won = s.filter((_, i) => runs[i]!.code === 0);
          if (!won.length) throw new Error('no apply succeeded');
          // An apply of what is already live loads nothing and records nothing (apply is idempotent).
          const loaded = s.filter((_, i) => runs[i]!.code === 0 && !/^nothing to change: /m.test(runs[i]!.stdout));
          const h = readHistory(w.lc.stateDir).entries.slice(before);
          if (h.length !== loaded.length || !h.every((e) => e.action === 'apply' && e.outcome === 'ok')) throw new Error(`history has ${JSON.stringify(h.map((e) => [e.action, e.outcome]))} for ${loaded.length} applies that loaded`);
          if (!won.some((p) => P[p] === liveFile(w))) throw new Error(`live.json names ${label(liveFile(w))}, which no successful apply loaded`);
          if (h.length && h.at(-1)!.policyFile !== liveFile(w)) throw new Error(`the last apply recorded is ${label(h.at(-1)!.policyFile)}, but live.json names ${label(liveFile(w))}`);
          await settled(w);
        },
      );
    });
  }, 120_000);

  test('5. a killed watchdog: status says so; after the deadline the next locking command rolls back first', async () => {
    const trials = (['confirm', 'apply', 'rollback', 'remove'] as const).map((next, i) => ({ b: BACKENDS[i % 2]!, next }));
    await attack(
      CLASS,
      'killed watchdog',
      trials,
      (t) => `${t.b}: watchdog killed, then ${t.next}`,
      inParallel(trials, async (t) => {
        const w = await world(t.b);
        await ok(w, ['apply', '--backend', t.b, P.C]);
        await ok(w, ['apply', '--confirm', '5', P.B]);
        const { watchdog } = pendingOf(w.lc);
        const deadline = Date.parse((readState(w.lc.stateDir, 'pending') as { deadline: string }).deadline);
        process.kill(watchdog.pid, 'SIGKILL');
        await until(() => !running(watchdog.pid), `watchdog ${watchdog.pid} survived SIGKILL`);
        const text = await ok(w, ['status']);
        if (!/pending: +NOT CONFIRMED: .*\(GONE: the next egress command rolls back\)/.test(text.stdout)) throw new Error(`status does not say the watchdog is gone:\n${text.stdout}`);
        const j = resultOf((await ok(w, ['status', '--json'])).stdout, 'status');
        if (j.pending?.watchdogAlive !== false) throw new Error(`status --json: pending ${JSON.stringify(j.pending)}`);
        if (!same(await viewOf(w), want(w, P.B))) throw new Error('B is not live after its watchdog was killed');
        await until(() => Date.now() > deadline + 50, 'the deadline did not pass');
        const args = t.next === 'apply' ? ['apply', P.A] : [t.next];
        const r = await egress(w, args);
        if (!/not confirmed by .* and its watchdog is gone: rolling back now/.test(r.stderr)) throw new Error(`${t.next} did not say it rolled back: ${r.stderr.slice(0, 400)}`);
        const h = readHistory(w.lc.stateDir).entries;
        if (!h.some((e) => e.action === 'auto-rollback' && e.outcome === 'ok' && /watchdog was gone/.test(e.message ?? ''))) throw new Error(`no auto-rollback in history: ${JSON.stringify(h.map((e) => [e.action, e.outcome]))}`);
        // What each command does after the rollback to C: confirm has nothing to confirm, rollback has no previous left.
        const expected = { confirm: P.C, apply: P.A, rollback: P.C, remove: '' }[t.next];
        if (t.next === 'confirm') plainError(r, 'confirm', /nothing to confirm/);
        else if (t.next === 'rollback') plainError(r, 'rollback', /no previous ruleset/);
        else if (r.code !== 0) throw new Error(`${t.next} exited ${r.code}: ${r.stderr.slice(0, 400)}`);
        const now = await viewOf(w);
        if (!same(now, want(w, expected))) throw new Error(`after ${t.next}, the kernel has ${nameOf(w, now)}; expected ${label(expected)}`);
        await settled(w);
      }),
    );
  }, 120_000);

  test('6. a full state directory (tmpfs): apply succeeds with whole state files or fails plainly, saying when the kernel changed; freed, the next command settles', async () => {
    const free = [50, 200, 300, 400, 800];
    await perBackend(async (b) => {
      await attack(
        CLASS,
        `full state directory (${b})`,
        free,
        (kb) => `${b}: BIG applied with ${kb} KB free`,
        async (kb) => {
          const w = await world(b);
          try {
            await mountTmpfs(w, '2m');
            await ok(w, ['apply', '--backend', b, P.C]);
            const filler = join(w.lc.stateDir, 'filler');
            const s = statfsSync(w.lc.stateDir);
            writeFileSync(filler, Buffer.alloc(Math.max(0, s.bavail * s.bsize - kb * 1024)));
            const r = await egress(w, ['apply', P.BIG]);
            const after = await viewOf(w);
            oneOf(w, after, [P.C, P.BIG]);
            const changed = !same(after, want(w, P.C));
            if (r.code === 0) {
              if (!changed) throw new Error('apply exited 0, but BIG is not live');
              intactState(w, P.BIG);
            } else {
              plainError(r, 'apply', /no space left/);
              if (changed && !/changed the kernel/.test(r.stderr)) throw new Error(`apply failed after loading BIG without saying so: ${r.stderr.slice(0, 400)}`);
              if (!changed && /changed the kernel/.test(r.stderr)) throw new Error(`apply says it changed the kernel, which has C: ${r.stderr.slice(0, 400)}`);
            }
            rmSync(filler);
            const next = await egress(w, ['confirm']); // settles; then nothing to confirm
            plainError(next, 'confirm once freed', /nothing to confirm/);
            if (!same(await viewOf(w), after)) throw new Error(`settling changed the kernel from ${nameOf(w, after)} to ${nameOf(w, await viewOf(w))}`);
            await settled(w);
          } finally {
            if (w.mounted) await umount(w);
          }
        },
      );
    });
  }, 180_000);

  test('7. a read-only state directory: every command fails plainly (status reads), the ruleset unchanged', async () => {
    const cmds: string[][] = [['status'], ['status', '--json'], ['apply', 'A'], ['apply', '--confirm', '30', 'A'], ['rollback'], ['confirm'], ['remove'], ['refresh', 'B']];
    await perBackend(async (b) => {
      const w = await world(b);
      try {
        await mountTmpfs(w, '2m');
        await ok(w, ['apply', '--backend', b, P.A]);
        await ok(w, ['apply', P.B]);
        const before = await viewOf(w);
        await remount(w, 'ro');
        await attack(
          CLASS,
          `read-only state directory (${b})`,
          cmds,
          (c) => `${b}: ${c.join(' ')}`,
          async (c) => {
            const args = c.map((a) => (a in P ? P[a as Policy] : a));
            const r = await egress(w, args);
            if (c[0] === 'status') {
              if (r.code !== 0) throw new Error(`status exited ${r.code}: ${r.stderr.slice(0, 400)}`);
            } else plainError(r, c.join(' '), /read-only file system/);
            const now = await viewOf(w);
            if (!same(now, before)) throw new Error(`the kernel changed to ${nameOf(w, now)}`);
          },
        );
        await remount(w, 'rw');
        await settled(w);
      } finally {
        if (w.mounted) await umount(w);
      }
    });
  }, 120_000);

  test('8. corrupt, truncated and misplaced state files × status, apply, rollback, confirm, remove: a plain error or the documented handling, the ruleset changed only by a command whose job that is', async () => {
    const files = ['live.json', 'confirmed.json', 'previous.json', 'pending.json', 'applying.json', 'history.jsonl', 'lock'] as const;
    const kinds = ['truncated', 'garbage', 'empty', 'directory', 'bogus body'] as const;
    const cmds = ['status', 'apply', 'rollback', 'confirm', 'remove'] as const;
    type Case = { file: (typeof files)[number]; kind: (typeof kinds)[number]; cmd: (typeof cmds)[number] };
    const all: Case[] = files.flatMap((file) => kinds.flatMap((kind) => cmds.map((cmd) => ({ file, kind, cmd }))));
    // Outside the full campaign: every file and kind of damage, each against 2 of the 5 commands (seeded).
    const picks = sample(fc.shuffledSubarray([...cmds], { minLength: 2, maxLength: 2 }), files.length * kinds.length, 9);
    const cases = FULL ? all : all.filter((c) => picks[files.indexOf(c.file) * kinds.length + kinds.indexOf(c.kind)]!.includes(c.cmd));
    const garbage = sample(fc.uint8Array({ minLength: 1, maxLength: 300 }), cases.length, 8);
    // Two worlds, one per backend, each taking half the files.
    const half = (b: Backend) => cases.filter((c) => files.indexOf(c.file) % 2 === (b === 'nft' ? 0 : 1));
    const outcomes = new Map<string, string[]>();
    await perBackend(async (b) => {
      const w = await world(b);
      const dir = w.lc.stateDir;
      // The base: A then B applied (live B, previous A, confirmed B), no lock, no pending, no intent.
      await ok(w, ['apply', '--backend', b, P.A]);
      await ok(w, ['apply', P.B]);
      const pristine = new Map(readdirSync(dir).map((f) => [f, { data: readFileSync(join(dir, f)), mode: statSync(join(dir, f)).mode & 0o777 }]));
      const base = await viewOf(w);
      const live = readState(dir, 'live')!;
      const prev = readState(dir, 'previous')!;
      const stateText = (body: unknown) => JSON.stringify({ format: 1, body, checksum: sha256(JSON.stringify(body)) }) + '\n';
      // Well-formed contents for the files the base does not have, to cut or replace (their processes long gone).
      const valid: Record<string, string> = {
        'pending.json': stateText({ token: 'abc123', deadline: new Date(Date.now() + 3_600_000).toISOString(), appliedAt: live.appliedAt, appliedBy: live.appliedBy, watchdog: { kind: 'process', pid: 4_000_000, start: '1' } }),
        'applying.json': stateText({ action: 'apply', next: live, prior: prev, nextFingerprint: live.fingerprint, priorFingerprint: prev.fingerprint, checkBackend: b, pid: 4_000_000, startedAt: live.appliedAt }),
        lock: '4000000 12345\n',
      };
      let changed = false; // whether the last trial left the kernel other than the base
      const reset = async () => {
        for (const f of readdirSync(dir)) rmSync(join(dir, f), { recursive: true, force: true });
        for (const [f, { data, mode }] of pristine) writeFileSync(join(dir, f), data, { mode });
        if (changed && !same(await viewOf(w), base)) await restoreKernel(w, live.ruleset, base);
        changed = false;
      };
      const corrupt = (c: Case, i: number) => {
        const path = join(dir, c.file);
        const whole = valid[c.file] ?? readFileSync(path, 'utf8');
        if (c.kind === 'directory') {
          rmSync(path, { force: true });
          mkdirSync(path);
          writeFileSync(join(path, 'x'), 'x');
        } else if (c.kind === 'truncated') writeFileSync(path, c.file === 'history.jsonl' ? whole.slice(0, whole.length - 20) : whole.slice(0, whole.length >> 1));
        else if (c.kind === 'garbage') writeFileSync(path, garbage[i]!);
        else if (c.kind === 'empty') writeFileSync(path, '');
        else if (c.file === 'history.jsonl') writeFileSync(path, whole + '{"foo":1}\n');
        else if (c.file === 'lock') writeFileSync(path, `${process.pid} 1\n`); // a live process, but not the one that took it
        else writeFileSync(path, stateText({ foo: 1 }));
      };
      const job: Record<Case['cmd'], string> = { status: P.B, apply: P.A, rollback: P.A, confirm: P.B, remove: '' };
      await attack(
        CLASS,
        `corrupt state files (${b})`,
        half(b),
        (c) => `${b}: ${c.file} ${c.kind}, then ${c.cmd}`,
        async (c) => {
          await reset();
          corrupt(c, cases.indexOf(c));
          changed = true; // until seen otherwise (a trial that throws leaves the reset to look)
          const r = await egress(w, c.cmd === 'apply' ? ['apply', P.A] : [c.cmd]);
          if (r.code !== 0) plainError(r, c.cmd);
          const after = await viewOf(w);
          changed = !same(after, base);
          // Unchanged, or what the command is for when it succeeds or says it changed the kernel;
          // a corrupt pending.json is an unconfirmed apply that every locked command first rolls back (to A).
          const allowed = [P.B];
          if (r.code === 0 || /changed the kernel/.test(r.stderr)) allowed.push(job[c.cmd]);
          if (c.file === 'pending.json' && c.cmd !== 'status') allowed.push(P.A, job[c.cmd]);
          if (!allowed.some((p) => same(after, want(w, p)))) throw new Error(`exit ${r.code}, and the kernel has ${nameOf(w, after)} (allowed: ${[...new Set(allowed)].map(label).join(', ')}): ${r.stderr.slice(0, 300)}`);
          if (c.file === 'pending.json' && changed && !/pending\.json is corrupted; the unconfirmed apply it recorded is rolled back/.test(r.stderr)) throw new Error(`the kernel was rolled back without saying why: ${r.stderr.slice(0, 300)}`);
          // A refusal names the damaged file, or is the command's ordinary one (nothing to confirm, nothing to roll back to).
          if (r.code !== 0 && !r.stderr.includes(`/${c.file}`) && !/nothing to confirm|no previous ruleset/.test(r.stderr)) throw new Error(`the error does not name ${c.file}: ${r.stderr.slice(0, 300)}`);
          // Documented: remove works over a live.json it cannot read.
          if (c.file === 'live.json' && c.cmd === 'remove' && c.kind !== 'directory' && (r.code !== 0 || !same(after, want(w, '')))) throw new Error(`remove over a corrupt live.json: exit ${r.code}, the kernel has ${nameOf(w, after)}`);
          const key = r.code === 0 ? (same(after, base) ? 'ok' : 'ok, kernel changed') : same(after, base) ? 'refused' : 'refused after changing the kernel';
          outcomes.set(key, [...(outcomes.get(key) ?? []), `${c.file} ${c.kind} ${c.cmd}`]);
        },
      );
      await reset();
    });
    process.stderr.write(`corrupt state files: ${[...outcomes].map(([k, v]) => `${k} ${v.length}`).join(', ')}; refused after changing the kernel: ${outcomes.get('refused after changing the kernel')?.join(', ') ?? 'none'}\n`);
  }, 300_000);

  test('9. a state directory another user owns or may write, and links planted there: refused, the ruleset and the link targets unchanged', async () => {
    const NOBODY = 65534;
    type Setup = { name: string; make: (w: World, victim: string) => void };
    const setups: Setup[] = [
      { name: 'owned by nobody (0700)', make: (w) => chownSync(w.lc.stateDir, NOBODY, NOBODY) },
      { name: 'root, world-writable (0777)', make: (w) => chmodSync(w.lc.stateDir, 0o777) },
      { name: 'root, sticky world-writable (1777)', make: (w) => chmodSync(w.lc.stateDir, 0o1777) },
      { name: 'root, group-writable (0770)', make: (w) => chmodSync(w.lc.stateDir, 0o770) },
      ...['history.jsonl', 'watchdog.log', 'live.json', 'previous.json', 'pending.json', 'applying.json', 'lock'].map((f) => ({
        name: `owned by nobody (0777), ${f} a link nobody planted to a root 0600 file`,
        make: (w: World, victim: string) => {
          chownSync(w.lc.stateDir, NOBODY, NOBODY);
          chmodSync(w.lc.stateDir, 0o777);
          rmSync(join(w.lc.stateDir, f), { force: true });
          symlinkSync(victim, join(w.lc.stateDir, f));
          lchownSync(join(w.lc.stateDir, f), NOBODY, NOBODY);
        },
      })),
      // The state path itself: a link nobody planted where it may write (a shared parent; /tmp is the sticky case),
      // to a root 0700 directory holding a 0600 history.jsonl.
      ...[0o777, 0o1777].map((mode) => ({
        name: `the state path a link nobody planted in a parent of mode ${mode.toString(8)}, to root's 0700 directory`,
        make: (w: World, victim: string) => {
          const parent = dirname(w.lc.stateDir);
          const real = join(parent, 'real-state');
          mkdirSync(real, { mode: 0o700 });
          for (const f of readdirSync(w.lc.stateDir)) writeFileSync(join(real, f), readFileSync(join(w.lc.stateDir, f)), { mode: 0o600 });
          writeFileSync(join(real, 'history.jsonl'), readFileSync(victim), { mode: 0o600 });
          rmSync(w.lc.stateDir, { recursive: true, force: true });
          chmodSync(parent, mode);
          symlinkSync(real, w.lc.stateDir);
          lchownSync(w.lc.stateDir, NOBODY, NOBODY);
        },
      })),
    ];
    // One command per way in: status and rollback require the directory, apply creates it (and starts a watchdog logging there).
    const cmds: string[][] = [['status'], ['apply', '--confirm', '30', 'A'], ['rollback']];
    const trials = setups.flatMap((s) => cmds.map((c) => ({ s, c })));
    // One world per setup, the setups at once; each setup's commands in turn.
    const worlds = new Map<Setup, Promise<{ w: World; victims: string[]; base: View }>>();
    const queue = new Map<Setup, Promise<unknown>>();
    const setUp = async (s: Setup) => {
      const w = await world('nft');
      await ok(w, ['apply', P.A]); // previous.json: nothing, so a rollback that got through would show
      const victim = join(w.lc.dir, 'victim');
      writeFileSync(victim, 'SECRET\n', { mode: 0o600 });
      s.make(w, victim);
      const real = join(dirname(w.lc.stateDir), 'real-state', 'history.jsonl');
      return { w, victims: [victim, ...(existsSync(real) ? [real] : [])], base: await viewOf(w) };
    };
    async function refused(t: (typeof trials)[number]): Promise<void> {
      if (!worlds.has(t.s)) worlds.set(t.s, setUp(t.s));
      const { w, victims, base } = await worlds.get(t.s)!;
      const before = victims.map(stamp);
      const r = await egress(w, t.c.map((a) => (a in P ? P[a as Policy] : a)));
      plainError(r, t.c[0]!, /refusing the state directory/);
      const now = await viewOf(w);
      if (!same(now, base)) throw new Error(`the kernel changed to ${nameOf(w, now)}`);
      for (const [i, v] of victims.entries()) if (stamp(v) !== before[i]) throw new Error(`${v} changed: ${readFileSync(v, 'utf8').slice(0, 200)}`);
    }
    await attack(
      CLASS,
      'foreign-owned or writable state directory, planted links',
      trials,
      (t) => `${t.s.name}: ${t.c.join(' ')}`,
      inParallel(trials, (t) => {
        const run = (queue.get(t.s) ?? Promise.resolve()).catch(() => {}).then(() => refused(t));
        queue.set(t.s, run);
        return run;
      }),
    );
  }, 180_000);
});
