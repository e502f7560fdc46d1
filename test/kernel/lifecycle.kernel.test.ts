/**
 * The life cycle against the real kernel, each test in its own network
 * namespace: plan exit codes, invalid policies, foreign objects left byte for
 * byte, the confirmation watchdog surviving its session, corrupted and
 * missing state, refresh with a failing resolver, and kill -9 at random
 * points of apply.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { realExecer } from '../../src/kernel/exec.js';
import { readHistory } from '../../src/kernel/history.js';
import { processStartTime } from '../../src/kernel/lock.js';
import { readState, writeState } from '../../src/kernel/state.js';
import { kernelDescribe, useRootGuard } from './harness.js';
import { addForeign, buildCli, foreign, iptFamily, iptOwned, groupAlive, lcEnv, nftOwned, pendingOf, running, sleep, until, type Lc } from './lifecycle-env.js';
import { envelope, resultOf } from '../json.js';

const P1 = `version: 1
default: reject
allow:
  - name: dns
    reason: the resolver
    to: [192.0.2.53, "2001:db8::53"]
    ports: [udp/53, tcp/53]
  - name: mirror
    reason: package updates
    to: [mirror.test]
    ports: [tcp/443]
deny:
  - name: metadata
    reason: no instance metadata
    to: [169.254.169.254]
`;
const P2 = P1.replace('default: reject', 'default: drop') + `  - name: smtp\n    reason: no mail\n    ports: [tcp/25]\n`;
const INVALID = P1.replace('ports: [tcp/443]', 'port: [tcp/443]');

const x = realExecer();
let cli = '';
const open: Lc[] = [];

kernelDescribe('life cycle (kernel)', () => {
  useRootGuard(x);
  beforeAll(() => {
    cli = buildCli('lifecycle');
  }, 180_000);
  afterAll(() => {
    if (cli) rmSync(dirname(dirname(cli)), { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const lc of open.splice(0)) await lc.close();
  }, 60_000);

  async function env(): Promise<Lc & { p1: string; p2: string }> {
    const lc = await lcEnv(x, cli);
    open.push(lc);
    lc.hosts('192.0.2.80 mirror.test\n');
    return Object.assign(lc, { p1: lc.write('p1.yaml', P1), p2: lc.write('p2.yaml', P2) });
  }

  const owned = (lc: Lc, b: 'nft' | 'iptables') => (b === 'nft' ? nftOwned(lc) : iptOwned(lc));
  const ok = async (lc: Lc, args: string[]) => {
    const r = await lc.egress(args);
    expect(r.code, `egress ${args.join(' ')}\n${r.stderr}`).toBe(0);
    return r;
  };

  test.each(['nft', 'iptables'] as const)('%s: plan exits 3 while changes are pending and 0 after apply; an invalid policy changes nothing', async (b) => {
    const lc = await env();
    expect((await lc.egress(['plan', '--backend', b, lc.p1])).code).toBe(3);
    const planned = await lc.egress(['plan', '--backend', b, '--json', lc.p1]);
    // Changes pending: exit 3, and ok (only 1 and 2 are failures).
    expect(envelope(planned.stdout, 'plan', planned.code)).toMatchObject({ ok: true, result: { changes: true, backend: b, table: 'create' } });
    const applied = await ok(lc, ['apply', '--backend', b, lc.p1]);
    // Verified by the listing's fingerprint alone: the loaded ruleset lists as the scratch namespace listed it.
    expect(applied.stderr).not.toMatch(/lists the loaded ruleset differently/);
    const r = await lc.egress(['plan', lc.p1]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^no changes/);
    expect((await lc.egress(['plan', lc.p2])).code).toBe(3);
    // The same plan as Markdown for a pull request: exit 3 too, a diff block, the summary line in bold.
    const md = await lc.egress(['plan', '--markdown', lc.p2]);
    expect(md.code, md.stderr).toBe(3);
    expect(md.stdout).toMatch(/^### egress plan: `[^`]+p2\.yaml` \((nft|iptables)\)\n\n\*\*\d+ changes? pending: [^\n]+\*\*\n/);
    expect(md.stdout).toMatch(/\n```diff\n([+!-] [^\n]+\n)+```\n$/);
    // -q: the summary line alone.
    const q = await lc.egress(['plan', '-q', lc.p2]);
    expect(q.code, q.stderr).toBe(3);
    expect(q.stdout).toMatch(/^\d+ changes? pending: [^\n]+\n$/);

    const before = await owned(lc, b);
    const bad = lc.write('bad.yaml', INVALID);
    const a = await lc.egress(['apply', bad]);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/bad\.yaml:\d+:\d+: error: unknown key "port"/);
    expect(a.stderr).toMatch(/nothing was changed/);
    expect((await lc.egress(['plan', bad])).code).toBe(1);
    expect(await owned(lc, b)).toBe(before);
    expect(readHistory(lc.stateDir).entries.map((e) => [e.action, e.outcome])).toEqual([['apply', 'ok']]);
    // apply -q: the line saying what was applied, no table.
    const qa = await lc.egress(['apply', '-q', lc.p2]);
    expect(qa.code, qa.stderr).toBe(0);
    expect(qa.stdout).toMatch(/^applied \S*p2\.yaml with (nft|iptables) \([^)]*\): \d+ changes? made: [^\n]+\n$/);
    expect((await lc.egress(['plan', '-q', lc.p2])).stdout).toMatch(/^no changes: /);
  }, 120_000);

  test('nft: a rule added by hand to the applied table is drift: plan and apply show it in nft\'s own words, and apply takes it out', async () => {
    const lc = await env();
    await ok(lc, ['apply', '--backend', 'nft', lc.p1]);
    // The same policy text as applied: plan and apply first read the table without its rule text, and must read it again here.
    expect((await lc.sh(['nft', 'add', 'rule', 'inet', 'egress', 'output', 'ip', 'daddr', '192.0.2.99', 'accept'])).code).toBe(0);
    const p = await lc.egress(['plan', lc.p1]);
    expect(p.code, p.stderr).toBe(3);
    expect(p.stdout).toMatch(/^-rule +output +ip daddr 192\.0\.2\.99 accept$/m);
    const a = await ok(lc, ['apply', lc.p1]);
    expect(a.stderr).toMatch(/changed outside egress/);
    expect(a.stdout).toMatch(/ip daddr 192\.0\.2\.99 accept/);
    expect((await lc.sh(['nft', 'list', 'chain', 'inet', 'egress', 'output'])).stdout).not.toMatch(/192\.0\.2\.99/);
  });

  test.each(['nft', 'iptables'] as const)('%s: a foreign nft table and foreign iptables chains stay byte-identical through apply, refresh, rollback and remove', async (b) => {
    const lc = await env();
    await addForeign(lc);
    const before = await foreign(lc);
    await ok(lc, ['apply', '--backend', b, lc.p1]);
    expect(await foreign(lc)).toBe(before);
    await ok(lc, ['apply', lc.p2]);
    lc.hosts('192.0.2.81 mirror.test\n');
    await ok(lc, ['refresh', lc.p2]);
    expect(await foreign(lc)).toBe(before);
    await ok(lc, ['rollback']);
    expect(await foreign(lc)).toBe(before);
    await ok(lc, ['remove']);
    expect(await foreign(lc)).toBe(before);
    expect(await nftOwned(lc)).toBe('(absent)');
    expect(await iptOwned(lc)).not.toMatch(/EGRESS/);
  }, 120_000);

  test('the rollback of an unconfirmed apply happens with the applying process and its session killed', async () => {
    const lc = await env();
    await ok(lc, ['apply', lc.p1]);
    const old = await nftOwned(lc);
    const child = lc.start(['apply', '--confirm', '5', lc.p2]);
    let out = '';
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (/waiting for confirmation/.test(out)) resolve();
      });
      child.on('close', (code) => reject(new Error(`apply ended (${code}) before arming: ${out}${err}`)));
    });
    expect(await nftOwned(lc)).not.toBe(old);
    const { watchdog } = pendingOf(lc);
    // The session dies: hang-up, then SIGKILL for its whole process group.
    // `apply` may already have returned after arming the watchdog, and the
    // hang-up may end the group: a group that is gone has nothing left to kill.
    for (const sig of ['SIGHUP', 'SIGKILL'] as const) {
      try {
        process.kill(-child.pid!, sig);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    }
    // Wait for the watchdog to finish: it exits once it has rolled back (kernel, then state and history).
    await until(() => !running(watchdog.pid), `watchdog ${watchdog.pid} did not finish`);
    expect(await nftOwned(lc)).toBe(old);
    const h = readHistory(lc.stateDir).entries;
    expect(h.map((e) => [e.action, e.outcome])).toEqual([
      ['apply', 'ok'],
      ['apply', 'pending'],
      ['auto-rollback', 'ok'],
    ]);
    const st = await lc.egress(['status', '--json']);
    expect(resultOf(st.stdout, 'status', st.code)).toMatchObject({ applied: true, policyFile: lc.p1, drift: false });
    expect(resultOf(st.stdout, 'status').pending).toBeUndefined();
  }, 60_000);

  test('confirm keeps the apply, and the watchdog then does nothing', async () => {
    const lc = await env();
    await ok(lc, ['apply', lc.p1]);
    // A deadline this test never reaches: with --confirm 5, a loaded machine
    // took longer than 5 s to start `confirm`, and the watchdog rolled back first.
    const waiting = await ok(lc, ['apply', '--confirm', '3600', '--json', lc.p2]);
    expect(resultOf(waiting.stdout, 'apply', 0).pending).toEqual({ deadline: expect.any(String), watchdog: expect.stringMatching(/^(process \d+|systemd unit .*\.timer)$/) });
    const applied = await nftOwned(lc);
    const { token, watchdog } = pendingOf(lc);
    expect(running(watchdog.pid)).toBe(true);
    const c = await ok(lc, ['confirm']);
    expect(c.stdout).toMatch(/^confirmed: /);
    // confirm stops the watchdog...
    await until(() => !running(watchdog.pid), `watchdog ${watchdog.pid} still running after confirm`);
    // ...and one that wakes after a confirm anyway (as if it had missed the signal) finds nothing to do.
    const late = await lc.egress(['_auto-rollback', '--token', token]);
    expect(late.code, late.stderr).toBe(0);
    expect(late.stderr).toMatch(new RegExp(`watchdog: ${token} was confirmed, rolled back or replaced; nothing to do`));
    expect(await nftOwned(lc)).toBe(applied);
    expect(readHistory(lc.stateDir).entries.map((e) => [e.action, e.outcome])).toEqual([
      ['apply', 'ok'],
      ['apply', 'pending'],
      ['confirm', 'ok'],
    ]);
    const again = await lc.egress(['confirm']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/nothing to confirm/);
    const json = await lc.egress(['confirm', '--json']);
    expect(envelope(json.stdout, 'confirm', json.code)).toMatchObject({ ok: false, result: null, diagnostics: [{ code: 'failed', message: expect.stringMatching(/nothing to confirm/) }] });
    // And a confirm in --json: what it kept, and that no boot restore is on here.
    await ok(lc, ['apply', '--confirm', '3600', lc.p1]);
    const kept = await ok(lc, ['confirm', '--json']);
    expect(resultOf(kept.stdout, 'confirm', 0)).toMatchObject({ confirmed: { policyFile: lc.p1, backend: 'nft' }, restoredAtBoot: false });
  }, 60_000);

  test('a corrupted or missing state directory gives a clear error and never a wrong rollback', async () => {
    const lc = await env();
    await ok(lc, ['apply', lc.p1]);
    await ok(lc, ['apply', lc.p2]);
    const live = await nftOwned(lc);
    const prev = join(lc.stateDir, 'previous.json');
    writeFileSync(prev, readFileSync(prev, 'utf8').replace('192.0.2.53', '192.0.2.99'));
    const r = await lc.egress(['rollback']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/previous\.json is corrupted \(checksum mismatch\)/);
    expect(await nftOwned(lc)).toBe(live);

    rmSync(lc.stateDir, { recursive: true, force: true });
    for (const cmd of ['rollback', 'confirm', 'status']) {
      const m = await lc.egress([cmd]);
      expect(m.code, cmd).toBe(1);
      expect(m.stderr, cmd).toMatch(/no egress state directory at .*: nothing was applied with it/);
    }
    expect(await nftOwned(lc)).toBe(live);
    // Without a record, apply will not silently take over what is live.
    const a = await lc.egress(['apply', lc.p1]);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/has no record of/);
    expect(await nftOwned(lc)).toBe(live);
  }, 60_000);

  test('refresh with the resolver failing keeps the old addresses; a new address is swapped in place, rules and counters untouched', async () => {
    const lc = await env();
    await ok(lc, ['apply', lc.p1]);
    const set = async () => (await lc.sh(['nft', 'list', 'set', 'inet', 'egress', 'allow_mirror_v4_hosts'])).stdout;
    const rules = async () => (await lc.sh(['nft', '-a', 'list', 'chain', 'inet', 'egress', 'output'])).stdout;
    expect(await set()).toMatch(/elements = \{ 192\.0\.2\.80 \}/);
    const before = await rules();

    lc.hosts(''); // mirror.test no longer resolves (and DNS is unreachable)
    const r = await lc.egress(['refresh', lc.p1]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/cannot resolve "mirror\.test".*keeping its last known addresses/);
    expect(await set()).toMatch(/elements = \{ 192\.0\.2\.80 \}/);

    lc.hosts('192.0.2.81 mirror.test\n');
    const r2 = await ok(lc, ['refresh', lc.p1]);
    expect(r2.stdout).toMatch(/allow_mirror_v4_hosts \(\+192\.0\.2\.81 -192\.0\.2\.80\)/);
    expect(await set()).toMatch(/elements = \{ 192\.0\.2\.81 \}/);
    expect(await rules()).toBe(before); // same handles: no rule was reloaded
    expect((await lc.egress(['plan', lc.p1])).code).toBe(0);

    // The last good addresses are kept across runs (state), not only within one.
    lc.hosts('');
    await ok(lc, ['refresh', lc.p1]);
    expect(await set()).toMatch(/elements = \{ 192\.0\.2\.81 \}/);
  }, 60_000);

  test('refresh --watch keeps looking names up and swaps a changed address in without being asked', async () => {
    const lc = await env();
    await ok(lc, ['apply', lc.p1]);
    const set = async () => (await lc.sh(['nft', 'list', 'set', 'inet', 'egress', 'allow_mirror_v4_hosts'])).stdout;
    expect((await lc.egress(['refresh', '--min-interval', '1', lc.p1])).stderr).toMatch(/go with --watch/);
    expect((await lc.egress(['refresh', '--watch', '--min-interval', '9', '--max-interval', '2', lc.p1])).code).toBe(2);
    // mirror.test is an /etc/hosts pin with no DNS TTL: looked up every --max-interval.
    const w = lc.start(['refresh', '--watch', '--min-interval', '1', '--max-interval', '1', lc.p1]);
    let stderr = '';
    w.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    try {
      const seen = (pred: () => Promise<boolean>, what: string) =>
        until(pred, what).catch((e: Error) => {
          throw new Error(`${e.message}\nwatch said:\n${stderr}`);
        });
      await seen(async () => /looked up mirror\.test; next mirror\.test in 1 s/.test(stderr), 'first round');
      lc.hosts('192.0.2.82 mirror.test\n');
      await seen(async () => /elements = \{ 192\.0\.2\.82 \}/.test(await set()), 'the new address went live');
      lc.hosts(''); // the name stops resolving: the last good address stays
      await seen(async () => /keeping its last known addresses/.test(stderr), 'a failed lookup');
      expect(await set()).toMatch(/elements = \{ 192\.0\.2\.82 \}/);
      expect(w.exitCode).toBe(null);
    } finally {
      if (w.pid) process.kill(-w.pid, 'SIGKILL');
    }
  }, 60_000);

  test('iptables refresh reloads the chains with the new address', async () => {
    const lc = await env();
    await ok(lc, ['apply', '--backend', 'iptables', lc.p1]);
    expect(await iptFamily(lc, 'ipv4')).toMatch(/-d 192\.0\.2\.80\/32/);
    lc.hosts('');
    await ok(lc, ['refresh', lc.p1]);
    expect(await iptFamily(lc, 'ipv4')).toMatch(/-d 192\.0\.2\.80\/32/);
    lc.hosts('192.0.2.81 mirror.test\n');
    const r = await ok(lc, ['refresh', lc.p1]);
    expect(r.stdout).toMatch(/reloaded/);
    const v4 = await iptFamily(lc, 'ipv4');
    expect(v4).toMatch(/-d 192\.0\.2\.81\/32/);
    expect(v4).not.toMatch(/192\.0\.2\.80/);
  }, 60_000);

  test('over SSH, a policy that would cut the session is refused unless --force', async () => {
    const lc = await env();
    const cut = lc.write('cut.yaml', 'version: 1\ndefault: reject\nbuiltins:\n  established: false\n');
    const ssh = { SSH_CONNECTION: '198.51.100.7 51234 192.0.2.10 22' };
    const r = await lc.egress(['apply', cut], ssh);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cut\.yaml:\d+:\d+: error: this policy would cut your SSH session/);
    expect(await nftOwned(lc)).toBe('(absent)');
    expect((await lc.egress(['apply', lc.p1], ssh)).code).toBe(0);
    expect((await lc.egress(['apply', '--force', cut], ssh)).code).toBe(0);
  }, 60_000);

  test('boot restores the last confirmed policy (not a pending one), and fails closed when it cannot', async () => {
    const lc = await env();
    await ok(lc, ['apply', lc.p1]);
    const confirmed = await nftOwned(lc);
    await ok(lc, ['apply', '--confirm', '600', lc.p2]);
    const pending = JSON.parse(readFileSync(join(lc.stateDir, 'pending.json'), 'utf8')) as { body: { watchdog: { pid: number } } };
    // "Reboot": the watchdog and the kernel's ruleset are gone.
    process.kill(pending.body.watchdog.pid, 'SIGKILL');
    expect((await lc.sh(['nft', 'delete', 'table', 'inet', 'egress'])).code).toBe(0);
    lc.hosts(''); // and no DNS at boot
    const r = await lc.egress(['_restore-boot']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/restored .*p1\.yaml/);
    expect(await nftOwned(lc)).toBe(confirmed);
    expect(readHistory(lc.stateDir).entries.at(-1)).toMatchObject({ action: 'auto-rollback', outcome: 'ok', policyFile: lc.p1 });
    const st = resultOf((await lc.egress(['status', '--json'])).stdout, 'status');
    expect(st.pending).toBeUndefined();
    expect(st.counters.map((c) => c.rule)).toEqual(expect.arrayContaining(['dns', 'mirror', 'metadata', 'established']));

    const c = join(lc.stateDir, 'confirmed.json');
    writeFileSync(c, readFileSync(c, 'utf8').replace('"enforce"', '"audit"'));
    await lc.sh(['nft', 'delete', 'table', 'inet', 'egress']);
    const bad = await lc.egress(['_restore-boot']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/corrupted.*locked down/);
    const lockdown = await nftOwned(lc);
    expect(lockdown).toMatch(/egress: lockdown/);
    expect(lockdown).toMatch(/ct state established,related accept/);
    expect(lockdown).toMatch(/reject with icmpx admin-prohibited/);
  }, 60_000);

  test('status after a cut-off apply says what it left and what the next command does, not "changed outside egress?"', async () => {
    const lc = await env();
    await ok(lc, ['apply', lc.p1]);
    const live = readState(lc.stateDir, 'live')!;
    // The intent record of an apply that died right after its load: its "next" is what is live now.
    const intent = { action: 'apply', next: live, prior: null, nextFingerprint: live.fingerprint, priorFingerprint: 'none', checkBackend: 'nft', pid: 999999, startedAt: '2026-06-01T12:00:00.000Z' };
    writeState(lc.stateDir, 'applying', intent as never);
    const st = await lc.egress(['status']);
    expect(st.stdout).toMatch(/^warning: +egress apply \(pid 999999, started 2026-06-01T12:00:00Z\) was cut off: it had already loaded its ruleset, which is live; the next egress command .* records it$/m);
    writeState(lc.stateDir, 'applying', { ...intent, nextFingerprint: 'other', priorFingerprint: live.fingerprint } as never);
    expect((await lc.egress(['status'])).stdout).toMatch(/was cut off: it had not changed the kernel/);
    await ok(lc, ['apply', lc.p1]); // settles
    expect(existsSync(join(lc.stateDir, 'applying.json'))).toBe(false);
  }, 60_000);

  test('boot with the lock held by a live process (say a recycled pid whose start time matches) locks down instead of booting open (D11)', async () => {
    const lc = await env();
    await ok(lc, ['apply', lc.p1]);
    const holder = spawn('sleep', ['600'], { stdio: 'ignore' });
    try {
      await until(() => processStartTime(holder.pid!) !== undefined, 'sleep did not start');
      writeFileSync(join(lc.stateDir, 'lock'), `${holder.pid} ${processStartTime(holder.pid!)}\n`);
      expect((await lc.sh(['nft', 'delete', 'table', 'inet', 'egress'])).code).toBe(0);
      const r = await lc.egress(['_restore-boot']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/holds the lock.*locked down/);
      expect(await nftOwned(lc)).toMatch(/egress: lockdown/);
    } finally {
      holder.kill('SIGKILL');
    }
  }, 60_000);

  test.each(['nft', 'iptables'] as const)('%s: kill -9 of apply at random points leaves exactly the old or the new ruleset, and state that agrees', async (b) => {
    const lc = await env();
    await ok(lc, ['apply', '--backend', b, lc.p2]);
    const NEW = await owned(lc, b);
    const newFam = b === 'iptables' ? [await iptFamily(lc, 'ipv4'), await iptFamily(lc, 'ipv6')] : [];
    await ok(lc, ['apply', lc.p1]);
    const OLD = await owned(lc, b);
    const oldFam = b === 'iptables' ? [await iptFamily(lc, 'ipv4'), await iptFamily(lc, 'ipv6')] : [];
    expect(NEW).not.toBe(OLD);
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const delay = Math.floor(Math.random() * 1200);
      const child = lc.start(['apply', lc.p2]);
      await sleep(delay);
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already done */
      }
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.on('close', r)));
      // Its children (nft, iptables-restore) die with the group, but not at the same instant.
      await until(() => !groupAlive(child.pid!), `process group ${child.pid} still has members`);
      const after = await owned(lc, b);
      let expected: string;
      if (b === 'nft') {
        expect([OLD, NEW], `kill after ${delay} ms`).toContain(after);
        expected = after;
      } else {
        // Each family is one transaction: each is exactly old or new.
        expect([oldFam[0], newFam[0]], `ipv4, kill after ${delay} ms`).toContain(await iptFamily(lc, 'ipv4'));
        expect([oldFam[1], newFam[1]], `ipv6, kill after ${delay} ms`).toContain(await iptFamily(lc, 'ipv6'));
        expected = after === NEW ? NEW : OLD; // half-way is undone by the next run
      }
      seen.add(after === OLD ? 'old' : after === NEW ? 'new' : 'mixed');
      // status says what the cut-off apply left, not "changed outside egress?" (it said that for a change of egress's own).
      if (existsSync(join(lc.stateDir, 'applying.json'))) {
        const st = await lc.egress(['status']);
        expect(st.stdout).toMatch(/^warning: +egress apply \(pid \d+, started [^)]+\) was cut off: /m);
        expect(st.stdout).not.toMatch(/changed outside egress/);
        const j = resultOf((await lc.egress(['status', '--json'])).stdout, 'status');
        expect(j.interruptedBy?.kernel).toBe(after === NEW ? 'new' : after === OLD ? 'old' : 'neither');
        seen.add('intent left');
      }
      // The next run settles; remove + rollback must bring back exactly what the state says was live.
      await ok(lc, ['remove']);
      await ok(lc, ['rollback']);
      expect(await owned(lc, b), `state after kill at ${delay} ms`).toBe(expected);
      await ok(lc, ['apply', lc.p1]);
      expect(await owned(lc, b)).toBe(OLD);
    }
    process.stderr.write(`kill -9 (${b}): outcomes seen: ${[...seen].join(', ')}\n`);
  }, 240_000);
});
