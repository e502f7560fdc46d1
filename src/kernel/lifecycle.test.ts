/**
 * The life cycle's state machine against the in-memory kernel
 * (fake-kernel.ts): apply, rollback, remove, refresh, the confirmation
 * deadline, and a process that dies at each step, settled by the next
 * command. No root, no processes (the watchdog is a systemd timer "armed"
 * through a fake Execer), no sleeps (a fake clock). The same life cycle
 * against the real kernel, with a real kill -9: test/kernel/lifecycle.kernel.test.ts.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { BACKENDS } from '../backends/registry.js';
import { hasErrors } from '../diag/diagnostic.js';
import { loadPolicyText } from '../index.js';
import { liveFingerprint } from '../plan/diff.js';
import type { LinuxTarget } from '../backends/types.js';
import { staticResolver } from '../resolve/resolver.js';
import { fakeExecer } from './exec.js';
import { FORWARDER_ENV, FORWARDER_NODE_FLAGS, forwarderCommand, forwarderSpec, forwarderUnit } from './forwarder.js';
import { FakeKernel, type CrashStep } from './fake-kernel.testkit.js';
import { readHistory } from './history.js';
import { apply, confirm, LifecycleError, planAgainstLive, readAhead, refresh, remove, rollback, settle, type Ctx, type Desired } from './lifecycle.js';
import { acquireLock, LOCK_FILE, processStartTime } from './lock.js';
import { readState, sha256, type StateFile } from './state.js';
import { DNS_UNIT_NAME } from './units.js';
import { KernelError } from './where.js';

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
const T0 = new Date('2026-06-01T12:00:00.000Z');
type Hosts = Record<string, { ipv4: string[]; ipv6?: string[] }>;
const MIRROR: Hosts = { 'mirror.test': { ipv4: ['192.0.2.80'], ipv6: ['2001:db8::80'] } };
/** mirror.test moved, in both families. */
const MOVED: Hosts = { 'mirror.test': { ipv4: ['192.0.2.81'], ipv6: ['2001:db8::81'] } };
const SELF = ['/usr/bin/node', '/usr/lib/egress/run.js'];

/** Compiled once per (backend, text, hosts): compiling is most of a case's time, and the life cycle never mutates a Desired. */
const compiled = new Map<string, Desired>();
async function desired(backend: LinuxTarget, text: string, hosts: Hosts = MIRROR): Promise<Desired> {
  const key = JSON.stringify([backend, text, hosts]);
  const hit = compiled.get(key);
  if (hit) return hit;
  const loaded = await loadPolicyText('/etc/egress/policy.yaml', text, { resolver: staticResolver(hosts), now: T0 });
  expect(hasErrors(loaded.diagnostics), JSON.stringify(loaded.diagnostics)).toBe(false);
  const art = BACKENDS[backend]!.emit(loaded.ir!);
  const d: Desired = { backend, ir: loaded.ir!, artifact: art.value!, policyFile: '/etc/egress/policy.yaml', policyText: text, policyHash: sha256(text) };
  compiled.set(key, d);
  return d;
}

interface World {
  k: FakeKernel;
  ctx: Ctx;
  stateDir: string;
  notes: string[];
  /** What `systemctl is-active` says of the confirmation timer. */
  watchdog: { alive: boolean };
  x: ReturnType<typeof fakeExecer>;
  advance(seconds: number): void;
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** tmpfs where there is one: state.ts fsyncs every write, which costs milliseconds each on a disk. */
const TMP = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

function world(): World {
  const dir = mkdtempSync(join(TMP, 'egress-lifecycle-'));
  dirs.push(dir);
  let now = T0.getTime();
  const watchdog = { alive: true };
  const x = fakeExecer(({ argv }) => (argv[0] === 'systemctl' && argv[1] === 'is-active' ? { code: watchdog.alive ? 0 : 3 } : {}));
  const k = new FakeKernel();
  const notes: string[] = [];
  const stateDir = join(dir, 'state');
  const ctx: Ctx = { w: { execer: x }, stateDir, env: { EGRESS_WATCHDOG: 'systemd', EGRESS_FORWARDER: 'process' }, now: () => new Date(now), who: { user: 'alice', uid: 1000 }, note: (l) => notes.push(l), self: SELF, kernel: k };
  return { k, ctx, stateDir, notes, watchdog, x, advance: (s) => (now += s * 1000) };
}

/** What `d` looks like live, applied to an empty kernel (`b`: that backend's part only). */
async function dumpOf(d: Desired, b?: LinuxTarget): Promise<string> {
  const w = world();
  await apply(w.ctx, d);
  return w.k.dump(b);
}
const NONE = new FakeKernel().dump();

const state = <K extends StateFile>(w: World, f: K) => readState(w.stateDir, f);
const history = (w: World) => readHistory(w.stateDir).entries.map((e) => [e.action, e.outcome]);

/** What the `lock` held by `settle`'s callers does (withLock), for calling settle alone. */
async function settleNow(w: World): Promise<void> {
  const lock = acquireLock(w.stateDir);
  try {
    await settle(w.ctx);
  } finally {
    lock.release();
  }
}

/**
 * Run `cmd` and have its process die at `step`: the kernel keeps what was
 * committed, and the state directory is put back as it was at that instant,
 * so no catch or finally of the dying command counts. Its lock goes too: a
 * dead owner's lock is stale and taken over (lock.ts, tested in state.test.ts).
 */
async function dies(w: World, step: CrashStep, cmd: () => Promise<unknown>, nth = 1): Promise<void> {
  let frozen: Map<string, Buffer> | undefined;
  w.k.crashAt(step, { nth, onCrash: () => (frozen = readDir(w.stateDir)) });
  const err = await cmd().then(
    () => undefined,
    (e: unknown) => e,
  );
  // The command's own catch may wrap the crash (refresh does): what counts is that it died there.
  expect(err, 'the command ran to its end').toBeInstanceOf(Error);
  expect(w.k.crashed).toBe(step);
  for (const f of readdirSync(w.stateDir)) if (!frozen!.has(f)) unlinkSync(join(w.stateDir, f));
  for (const [f, bytes] of frozen!) writeFileSync(join(w.stateDir, f), bytes);
  w.k.revive();
}

function readDir(dir: string): Map<string, Buffer> {
  return new Map(
    readdirSync(dir)
      .filter((f) => f !== LOCK_FILE)
      .map((f) => [f, readFileSync(join(dir, f))]),
  );
}

/** live.json agrees with the kernel: the same listing it recorded (or nothing of egress, for a "none"). */
async function expectStateAgrees(w: World): Promise<void> {
  const live = state(w, 'live')!;
  if (live.kind === 'none') for (const b of ['nft', 'iptables'] as const) expect((await w.k.readLive(b)).live.present, b).toBe(false);
  else expect(liveFingerprint((await w.k.readLive(live.backend)).live)).toBe(live.fingerprint);
}

describe('apply, rollback, remove', () => {
  test.each(['nft', 'iptables'] as const)('%s: the first apply loads the policy, records it as live and confirmed, and leaves "nothing" to roll back to', async (b) => {
    const w = world();
    const d1 = await desired(b, P1);
    const r = await apply(w.ctx, d1);
    expect(r.plan.table).toBe('create');
    expect(r.warnings).toEqual([]);
    expect(w.k.dump()).not.toBe(NONE);
    expect(state(w, 'live')!.ruleset).toBe(d1.artifact.text);
    expect(state(w, 'confirmed')!.ruleset).toBe(d1.artifact.text);
    expect(state(w, 'previous')!.kind).toBe('none');
    expect(state(w, 'applying')).toBeUndefined();
    expect(history(w)).toEqual([['apply', 'ok']]);
    await expectStateAgrees(w);
    const again = await planAgainstLive(w.ctx, d1);
    expect(again).toEqual({ backend: b, rules: [], sets: [], objects: [], reordered: [] });
  });

  test.each(['nft', 'iptables'] as const)('%s: a verifying listing that fails after the load is a warning; the apply is recorded and goes on', async (b) => {
    const w = world();
    let loaded = false;
    // The fake kernel, with every listing after the load failing.
    w.ctx.kernel = Object.assign(Object.create(w.k) as FakeKernel, {
      load: async (...a: Parameters<FakeKernel['load']>) => ((loaded = true), w.k.load(...a)),
      readLive: async (...a: Parameters<FakeKernel['readLive']>) => {
        if (loaded) throw new KernelError('cannot list table inet egress: out of memory');
        return w.k.readLive(...a);
      },
    });
    const d1 = await desired(b, P1);
    const r = await apply(w.ctx, d1);
    expect(r.changed).toBe(true);
    expect(r.warnings).toEqual(['the loaded ruleset could not be listed to verify it (cannot list table inet egress: out of memory); check "egress plan"']);
    expect(state(w, 'live')!.ruleset).toBe(d1.artifact.text);
    expect(state(w, 'applying')).toBeUndefined();
    expect(history(w)).toEqual([['apply', 'ok']]);
    w.ctx.kernel = w.k;
    await expectStateAgrees(w);
  });

  test.each(['nft', 'iptables'] as const)('%s: plan reads the live table ahead only when egress applied this very policy file on that backend, and gets the plan a read after compiling gets', async (b) => {
    const w = world();
    const dir = mkdtempSync(join(tmpdir(), 'egress-ahead-'));
    try {
      const file = join(dir, 'policy.yaml');
      writeFileSync(file, P1);
      const [d1, d2] = [{ ...(await desired(b, P1)), policyFile: file }, { ...(await desired(b, P2)), policyFile: file }];
      expect(readAhead(w.ctx, b, file).live).toBeUndefined(); // nothing applied
      await apply(w.ctx, d1);
      expect(readAhead(w.ctx, b === 'nft' ? 'iptables' : 'nft', file).live).toBeUndefined();
      expect(readAhead(w.ctx, b, join(dir, 'other.yaml')).live).toBeUndefined();
      const early = readAhead(w.ctx, b, file);
      expect(early.live).toBeDefined();
      expect(await planAgainstLive(w.ctx, d1, early)).toEqual({ backend: b, rules: [], sets: [], objects: [], reordered: [] });
      // The file edited since: no read ahead.
      writeFileSync(file, P2);
      expect(readAhead(w.ctx, b, file).live).toBeUndefined();
      // A read ahead given anyway is not what plan compares another ruleset with (the rule text is read with it).
      writeFileSync(file, P1);
      const changed = await planAgainstLive(w.ctx, d2, readAhead(w.ctx, b, file));
      expect(changed.default).toEqual({ from: 'reject', to: 'drop' });
      expect(changed).toEqual(await planAgainstLive(w.ctx, d2));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.each(['nft', 'iptables'] as const)('%s: apply over an applied policy keeps it as previous; rollback restores it once, and a second rollback has nothing left', async (b) => {
    const w = world();
    const [d1, d2] = [await desired(b, P1), await desired(b, P2)];
    await apply(w.ctx, d1);
    const OLD = w.k.dump();
    const r = await apply(w.ctx, d2);
    expect(r.plan.default).toEqual({ from: 'reject', to: 'drop' });
    expect(w.k.dump()).toBe(await dumpOf(d2));
    expect(state(w, 'previous')!.ruleset).toBe(d1.artifact.text);
    const back = await rollback(w.ctx);
    expect(back.restored!.ruleset).toBe(d1.artifact.text);
    expect(w.k.dump()).toBe(OLD);
    expect(state(w, 'live')!.ruleset).toBe(d1.artifact.text);
    expect(state(w, 'confirmed')!.ruleset).toBe(d1.artifact.text);
    expect(state(w, 'previous')).toBeUndefined();
    await expect(rollback(w.ctx)).rejects.toThrow(/^no previous ruleset to roll back to/);
    expect(history(w)).toEqual([['apply', 'ok'], ['apply', 'ok'], ['rollback', 'ok']]);
  });

  test.each(['nft', 'iptables'] as const)('%s: the same policy again loads nothing, so history and the rollback target stay: apply A; apply B; apply B; rollback brings back A', async (b) => {
    const w = world();
    const [d1, d2] = [await desired(b, P1), await desired(b, P2)];
    await apply(w.ctx, d1);
    await apply(w.ctx, d2);
    const load = vi.spyOn(w.k, 'load');
    const again = await apply(w.ctx, d2);
    expect(again.changed).toBe(false);
    expect(load).not.toHaveBeenCalled();
    expect(history(w)).toEqual([['apply', 'ok'], ['apply', 'ok']]);
    expect(state(w, 'previous')!.ruleset).toBe(d1.artifact.text);
    // With --confirm there is nothing to confirm either: no watchdog, nothing pending.
    expect((await apply(w.ctx, d2, { confirmSeconds: 30 })).changed).toBe(false);
    expect(state(w, 'pending')).toBeUndefined();
    await rollback(w.ctx);
    expect(state(w, 'live')!.ruleset).toBe(d1.artifact.text);
    // --reload loads it even so, and makes what was live the rollback target.
    await apply(w.ctx, d1, { reload: true });
    expect(load).toHaveBeenCalledTimes(2);
    expect(history(w).at(-1)).toEqual(['apply', 'ok']);
    expect(state(w, 'previous')!.ruleset).toBe(d1.artifact.text);
  });

  test('the same policy is loaded again when the kernel drifted, when an apply awaits confirmation, or from another file', async () => {
    const w = world();
    const d1 = await desired('nft', P1);
    await apply(w.ctx, d1);
    const load = vi.spyOn(w.k, 'load');
    w.k.runNft('flush set inet egress allow_dns_v4_addr\n');
    expect((await apply(w.ctx, d1)).changed).toBe(true);
    expect((await apply(w.ctx, d1, { confirmSeconds: 30 })).changed).toBe(false);
    await apply(w.ctx, await desired('nft', P2), { confirmSeconds: 30 });
    expect((await apply(w.ctx, d1)).changed).toBe(true);
    expect((await apply(w.ctx, { ...d1, policyFile: '/srv/other.yaml' })).changed).toBe(true);
    expect(load).toHaveBeenCalledTimes(4);
  });

  test.each(['nft', 'iptables'] as const)('%s: rollback of the first apply takes egress out; remove takes it out and rollback puts it back', async (b) => {
    const w = world();
    const d1 = await desired(b, P1);
    await apply(w.ctx, d1);
    const OLD = w.k.dump();
    await rollback(w.ctx);
    expect(w.k.dump()).toBe(NONE);
    expect(readHistory(w.stateDir).entries.at(-1)).toMatchObject({ action: 'rollback', outcome: 'ok', message: 'nothing of egress was live before: removed' });
    await apply(w.ctx, d1);
    expect(await remove(w.ctx)).toEqual({ removed: [b] });
    expect(w.k.dump()).toBe(NONE);
    expect(state(w, 'live')!.kind).toBe('none');
    await rollback(w.ctx);
    expect(w.k.dump()).toBe(OLD);
    await expectStateAgrees(w);
  });

  test('switching backends loads the new one and takes the old one out; rollback switches back', async () => {
    const w = world();
    const n1 = await desired('nft', P1);
    await apply(w.ctx, n1);
    const r = await apply(w.ctx, await desired('iptables', P2));
    expect(r.plan.objects).toContainEqual({ op: 'remove', kind: 'backend', name: 'nft' });
    expect((await w.k.readLive('nft')).live.present).toBe(false);
    expect(w.k.dump()).toBe(await dumpOf(await desired('iptables', P2)));
    await rollback(w.ctx);
    expect(w.k.dump()).toBe(await dumpOf(n1));
  });

  test.each([
    ['nft', 'check', undefined],
    ['nft', 'load', undefined],
    ['iptables', 'check', 'ipv6'],
    ['iptables', 'load', 'ipv6'],
    ['iptables', 'load', 'ipv4'], // IPv6 already committed: apply must put the prior IPv6 side back
  ] as const)('%s: a refused %s (%s) leaves the prior ruleset live, no pending confirmation, and says which loader refused', async (b, op, family) => {
    const w = world();
    await apply(w.ctx, await desired(b, P1));
    const OLD = w.k.dump();
    w.k.failNext(op, { ...(family ? { family } : {}), message: 'Could not process rule: Operation not supported' });
    const err = await apply(w.ctx, await desired(b, P2), { confirmSeconds: 60 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifecycleError);
    expect((err as { failure?: { message: string } }).failure?.message).toMatch(
      b === 'nft' ? /^nft rejected the ruleset: Could not process rule/ : new RegExp(`^(${family === 'ipv4' ? 'iptables' : 'ip6tables'}-restore) rejected the ruleset: \\1: line 1 failed: Could not process rule`),
    );
    expect(w.k.dump()).toBe(OLD);
    expect(state(w, 'applying')).toBeUndefined();
    expect(state(w, 'pending')).toBeUndefined();
    expect(history(w)).toEqual([['apply', 'ok'], ['apply', 'failed']]);
  });

  test('a first iptables apply refused at IPv4 leaves nothing of egress in either family', async () => {
    const w = world();
    w.k.failNext('load', { family: 'ipv4' });
    await expect(apply(w.ctx, await desired('iptables', P1))).rejects.toThrow(/^iptables-restore rejected the ruleset/);
    expect(w.k.dump()).toBe(NONE);
  });

  test('egress rules live with no state are not taken over without --force; a hand edit shows as drift', async () => {
    const w = world();
    const d1 = await desired('nft', P1);
    w.k.runNft(d1.artifact.text);
    await expect(apply(w.ctx, d1)).rejects.toThrow(/^rules of egress are live that the state directory .* has no record of/);
    expect((await apply(w.ctx, d1, { force: true })).warnings).toEqual([]);
    w.k.runNft('add element inet egress allow_mirror_v4_hosts { 192.0.2.99 }\n');
    expect((await apply(w.ctx, await desired('nft', P2))).warnings).toEqual([expect.stringMatching(/^the live ruleset was changed outside egress/)]);
  });
});

test.each(['nft', 'iptables'] as const)('%s: a foreign nft table and foreign iptables chains stay as they were through apply, refresh, rollback and remove', async (b) => {
  const w = world();
  w.k.runNft('table inet foreign {\n\tset keep {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.9 }\n\t}\n\tchain out {\n\t\ttype filter hook output priority 10; policy accept;\n\t\tip daddr @keep counter accept comment "not egress"\n\t}\n}\n');
  for (const [f, addr] of [['ipv4', '192.0.2.9/32'], ['ipv6', '2001:db8::9/128']] as const)
    w.k.restoreIptables(f, `*filter\n:FOREIGN - [0:0]\n-A FOREIGN -d ${addr} -m comment --comment "not egress" -j RETURN\n-A OUTPUT -j FOREIGN\nCOMMIT\n`);
  const FOREIGN = w.k.dump();
  const foreignParts = FOREIGN.split('\n').filter((l) => /foreign|FOREIGN|keep|not egress/.test(l));
  const expectForeign = () => {
    const now = w.k.dump().split('\n');
    for (const l of foreignParts) expect(now).toContain(l);
  };
  await apply(w.ctx, await desired(b, P1));
  expectForeign();
  await apply(w.ctx, await desired(b, P2));
  await refresh(w.ctx, await desired(b, P2, MOVED));
  expectForeign();
  await rollback(w.ctx);
  expectForeign();
  await remove(w.ctx);
  expect(w.k.dump()).toBe(FOREIGN);
});

describe('state that cannot be written after the kernel changed (D2)', () => {
  test('apply says the kernel changed and its state was not recorded; the kept intent record lets the next command record it', async () => {
    const w = world();
    await apply(w.ctx, await desired('nft', P1));
    const OLD = w.k.dump();
    // previous.json as a directory: writing it fails after the kernel took the new ruleset (as ENOSPC would).
    rmSync(join(w.stateDir, 'previous.json'), { force: true });
    mkdirSync(join(w.stateDir, 'previous.json'));
    await expect(apply(w.ctx, await desired('nft', P2))).rejects.toThrow(/^the apply changed the kernel, but its state could not be recorded in .* \(cannot write .*\/previous\.json: is a directory\)\. Its intent record is kept: once the state directory can be written \(free some space, or move aside what is in the way\), the next egress command records what is live$/);
    expect(w.k.dump()).not.toBe(OLD);
    expect(readState(w.stateDir, 'applying')).toBeDefined();
    rmSync(join(w.stateDir, 'previous.json'), { recursive: true });
    await apply(w.ctx, await desired('nft', P2)); // settles first: records the change the cut apply made
    expect(w.notes.join('\n')).toMatch(/had already changed the kernel; its state is now recorded/);
    expect(readState(w.stateDir, 'live')!.policyText).toBe(P2);
    expect(readState(w.stateDir, 'applying')).toBeUndefined();
  });

  test('a history that cannot take the line is a warning: the change and its state stand (a directory there was "internal error: EISDIR" after the kernel changed)', async () => {
    const w = world();
    await apply(w.ctx, await desired('nft', P1));
    rmSync(join(w.stateDir, 'history.jsonl'));
    mkdirSync(join(w.stateDir, 'history.jsonl'));
    await apply(w.ctx, await desired('nft', P2));
    expect(readState(w.stateDir, 'live')!.policyText).toBe(P2);
    expect(readState(w.stateDir, 'applying')).toBeUndefined();
    expect(w.notes.join('\n')).toMatch(/warning: cannot append this apply to .*history\.jsonl: is a directory/);
  });
});

describe('dns.proxy', () => {
  const DNS = P1.replace('default: reject', 'default: reject\ndns: { proxy: true, upstream: [192.0.2.53] }');

  test('the snapshot of a dns.proxy apply carries the forwarder it needs', async () => {
    const d = await desired('nft', DNS);
    expect(d.ir.dns).toBeDefined();
    const w = world();
    w.ctx.w = { execer: fakeExecer(({ argv }) => (argv[0] === 'getent' ? { stdout: 'egress-dns:x:990:\n' } : {})) };
    // The fake Execer starts no process (detach gives no pid): the forwarder cannot start, so the apply is undone.
    await apply(w.ctx, await desired('nft', P1));
    const before = w.k.dump();
    await expect(apply(w.ctx, d)).rejects.toThrow(/^cannot start the DNS forwarder; the ruleset from before this apply is restored$/);
    expect(w.k.dump()).toBe(before);
    expect(readState(w.stateDir, 'live')?.dns).toBeUndefined();
    expect(readState(w.stateDir, 'applying')).toBeUndefined();
    expect(readHistory(w.stateDir).entries.slice(-2).map((e) => [e.action, e.outcome])).toEqual([
      ['apply', 'ok'],
      ['rollback', 'ok'],
    ]);
    const detached = (w.ctx.w.execer as ReturnType<typeof fakeExecer>).calls.filter((c) => c.argv.includes('_dns-forwarder'));
    expect(detached).toEqual([{ argv: [SELF[0], ...FORWARDER_NODE_FLAGS, ...SELF.slice(1), '_dns-forwarder', join(w.stateDir, 'dns-forwarder.json')], opts: { gid: 990, env: FORWARDER_ENV } }]);
    const spec = JSON.parse(readFileSync(join(w.stateDir, 'dns-forwarder.json'), 'utf8')) as { config: { upstream: unknown; listen: unknown } };
    expect(spec.config).toMatchObject({ upstream: [{ address: '192.0.2.53', port: 53 }], listen: [{ address: '127.0.0.153', port: 153 }, { address: '::1', port: 153 }] });
  });
});

describe('dns.proxy under systemd: the forwarder is egress-dns.service', () => {
  const DNS = P1.replace('default: reject', 'default: reject\ndns: { proxy: true, upstream: [192.0.2.53] }');

  /**
   * systemctl through the fake Execer. Starting the unit does what the
   * forwarder does once it is up: print its ready line (the unit's
   * StandardOutput) and write its pid record, naming the unit (so nothing
   * ever signals that pid, this test's own).
   */
  function systemdWorld(opts: { startFails?: boolean; forwarderDies?: boolean; table?: { handle: number } } = {}) {
    const w = world();
    const base = join(w.stateDir, '..');
    const runDir = join(base, 'run');
    const etcDir = join(base, 'etc');
    w.ctx.env = { ...w.ctx.env, EGRESS_FORWARDER: 'systemd', EGRESS_SYSTEMD_RUNTIME_DIR: runDir, EGRESS_SYSTEMD_DIR: etcDir };
    const unit = { active: false, starts: 0 };
    const x = fakeExecer(({ argv }) => {
      if (argv[0] === 'getent') return { stdout: 'egress-dns:x:990:\n' };
      if (argv[0] === 'nft' && argv.join(' ') === 'nft -j list tables' && opts.table)
        return { stdout: JSON.stringify({ nftables: [{ metainfo: {} }, { table: { family: 'inet', name: 'egress', handle: opts.table.handle } }] }) };
      if (argv[0] !== 'systemctl') return {};
      if (argv[1] === 'is-active') return { code: w.watchdog.alive ? 0 : 3 };
      if (argv[2] !== DNS_UNIT_NAME) return {};
      if (argv[1] === 'restart') {
        if (opts.startFails) return { code: 1, stderr: `Job for ${DNS_UNIT_NAME} failed because the control process exited with error code.` };
        if (opts.forwarderDies) {
          // The unit started; the forwarder died (systemd will start it again, and again).
          writeFileSync(join(w.stateDir, 'dns-forwarder.out'), 'egress: error: DNS forwarder: listen EADDRINUSE: address already in use 127.0.0.153:153\n');
          return {};
        }
        unit.active = true;
        unit.starts++;
        writeFileSync(join(w.stateDir, 'dns-forwarder.out'), 'ready {"udp":["127.0.0.153:153"],"tcp":[]}\n');
        writeFileSync(join(w.stateDir, 'dns-forwarder.pid'), JSON.stringify({ pid: process.pid, start: processStartTime(process.pid), unit: DNS_UNIT_NAME }));
      }
      if (argv[1] === 'stop') unit.active = false;
      return {};
    });
    w.ctx.w = { execer: x };
    const unitCalls = () => x.calls.filter((c) => c.argv[0] === 'systemctl' && (c.argv[1] === 'daemon-reload' || c.argv[2] === DNS_UNIT_NAME)).map((c) => c.argv.slice(1).join(' '));
    return { ...w, x, unit, runDir, etcDir, unitCalls };
  }

  test('apply starts the unit; the same policy again keeps it; a policy without dns stops it; rollback and remove follow', async () => {
    const w = systemdWorld();
    await apply(w.ctx, await desired('nft', P1));
    expect(w.unitCalls()).toEqual([]); // no unit of ours yet: nothing to stop
    await apply(w.ctx, await desired('nft', DNS));
    expect(w.unitCalls()).toEqual(['daemon-reload', `restart ${DNS_UNIT_NAME}`]);
    expect(w.x.calls.filter((c) => c.argv.includes('_dns-forwarder'))).toEqual([]); // not detached
    const text = readFileSync(join(w.runDir, DNS_UNIT_NAME), 'utf8');
    expect(text).toBe(forwarderUnit(SELF, w.stateDir));
    expect(text).toContain(`\nExecStart=${forwarderCommand(SELF, w.stateDir).join(' ')}\n`);
    // node first (its flags may follow), egress, then the forwarder's spec: the same argv the detached path runs.
    const cmd = forwarderCommand(SELF, w.stateDir);
    expect([cmd[0], ...cmd.slice(-3)]).toEqual([...SELF, '_dns-forwarder', join(w.stateDir, 'dns-forwarder.json')]);
    expect(w.unit).toEqual({ active: true, starts: 1 });
    expect(forwarderSpec(w.stateDir)).toBe(JSON.stringify(readState(w.stateDir, 'live')?.dns));

    await apply(w.ctx, await desired('nft', DNS));
    expect(w.unit).toEqual({ active: true, starts: 1 });
    await apply(w.ctx, await desired('nft', P1));
    expect(w.unit).toEqual({ active: false, starts: 1 });
    expect(w.unitCalls().slice(2)).toEqual([`stop ${DNS_UNIT_NAME}`]);
    await rollback(w.ctx); // back to the dns policy
    expect(w.unit).toEqual({ active: true, starts: 2 });
    expect(w.unitCalls().slice(3)).toEqual([`stop ${DNS_UNIT_NAME}`, `restart ${DNS_UNIT_NAME}`]); // the unit file is unchanged: no reload
    await remove(w.ctx);
    expect(w.unit.active).toBe(false);
  });

  test('a reload that had to replace the table (a new handle) restarts the forwarder: what it took as surely live may be gone', async () => {
    const table = { handle: 7 };
    const w = systemdWorld({ table });
    await apply(w.ctx, await desired('nft', DNS));
    expect(w.unit).toEqual({ active: true, starts: 1 });
    await apply(w.ctx, await desired('nft', DNS));
    expect(w.unit).toEqual({ active: true, starts: 1 }); // the table kept (flush table): the same forwarder
    table.handle = 8;
    await apply(w.ctx, await desired('nft', DNS));
    expect(w.unit).toEqual({ active: true, starts: 2 });
    await apply(w.ctx, await desired('nft', DNS));
    expect(w.unit).toEqual({ active: true, starts: 2 });
  });

  test('the watchdog rolling back an unconfirmed apply stops the unit, or restarts it with the dns policy it restores', async () => {
    const w = systemdWorld();
    await apply(w.ctx, await desired('nft', P1));
    await apply(w.ctx, await desired('nft', DNS), { confirmSeconds: 60 });
    expect(w.unit).toEqual({ active: true, starts: 1 });
    w.advance(61);
    expect((await rollback(w.ctx, { token: readState(w.stateDir, 'pending')!.token })).restored?.dns).toBeUndefined();
    expect(w.unit).toEqual({ active: false, starts: 1 });
    expect(history(w).slice(-1)).toEqual([['auto-rollback', 'ok']]);

    await apply(w.ctx, await desired('nft', DNS));
    await apply(w.ctx, await desired('nft', P2), { confirmSeconds: 60 });
    expect(w.unit).toEqual({ active: false, starts: 2 });
    w.advance(61);
    await rollback(w.ctx, { token: readState(w.stateDir, 'pending')!.token });
    expect(readState(w.stateDir, 'live')?.dns).toBeDefined();
    expect(w.unit).toEqual({ active: true, starts: 3 });
  });

  test('a unit that does not start undoes the apply, and is stopped rather than left restarting', async () => {
    const w = systemdWorld({ startFails: true });
    await apply(w.ctx, await desired('nft', P1));
    const before = w.k.dump();
    await expect(apply(w.ctx, await desired('nft', DNS))).rejects.toThrow(
      new RegExp(`^the DNS forwarder did not start: systemctl restart ${DNS_UNIT_NAME}: Job for .* failed .*; the ruleset from before this apply is restored$`),
    );
    expect(w.k.dump()).toBe(before);
    expect(readState(w.stateDir, 'live')?.dns).toBeUndefined();
    expect(w.unitCalls()).toEqual(['daemon-reload', `restart ${DNS_UNIT_NAME}`, `stop ${DNS_UNIT_NAME}`, `stop ${DNS_UNIT_NAME}`]);
  });

  test('a forwarder that dies under the unit fails the apply at once with what it printed, and the unit is stopped', async () => {
    const w = systemdWorld({ forwarderDies: true });
    await apply(w.ctx, await desired('nft', P1));
    await expect(apply(w.ctx, await desired('nft', DNS))).rejects.toThrow(
      /^the DNS forwarder did not start: egress: error: DNS forwarder: listen EADDRINUSE: address already in use 127\.0\.0\.153:153; the ruleset from before this apply is restored$/,
    );
    expect(w.unitCalls()).toEqual(['daemon-reload', `restart ${DNS_UNIT_NAME}`, `stop ${DNS_UNIT_NAME}`, `stop ${DNS_UNIT_NAME}`]);
  });

  test('a persisted copy of the unit is kept equal to what runs, so boot starts the same forwarder', async () => {
    const w = systemdWorld();
    mkdirSync(w.etcDir, { recursive: true });
    writeFileSync(join(w.etcDir, DNS_UNIT_NAME), 'an older egress wrote this\n');
    await apply(w.ctx, await desired('nft', DNS));
    expect(readFileSync(join(w.etcDir, DNS_UNIT_NAME), 'utf8')).toBe(forwarderUnit(SELF, w.stateDir));
  });
});

describe('refresh', () => {
  test.each([
    ['nft', /^sets updated: allow_mirror_v4_hosts \+192\.0\.2\.81 -192\.0\.2\.80; allow_mirror_v6_hosts \+2001:db8::81 -2001:db8::80$/],
    ['iptables', /^chains reloaded$/],
  ] as const)('%s: a moved hostname goes live and is recorded; an unchanged one changes nothing', async (b, message) => {
    const w = world();
    const d1 = await desired(b, P1);
    await apply(w.ctx, d1);
    const OLD = w.k.dump();
    expect(await refresh(w.ctx, d1)).toEqual({ changed: false, sets: [], reloaded: false });
    expect(w.k.dump()).toBe(OLD);
    const moved = await desired(b, P1, MOVED);
    const r = await refresh(w.ctx, moved);
    expect(r.changed).toBe(true);
    expect(r.reloaded).toBe(b === 'iptables');
    expect(w.k.dump()).toBe(await dumpOf(moved));
    expect(state(w, 'live')!.hosts).toEqual([{ name: 'mirror.test', ipv4: ['192.0.2.81'], ipv6: ['2001:db8::81'], status: 'ok' }]);
    expect(readHistory(w.stateDir).entries.at(-1)).toMatchObject({ action: 'refresh', outcome: 'ok', message: expect.stringMatching(message) });
    await expectStateAgrees(w);
  });

  test('nft: a name that gains its first IPv6 address is refreshed in place (it failed every round: "changed more than set elements")', async () => {
    const w = world();
    const V4ONLY: Hosts = { 'mirror.test': { ipv4: ['192.0.2.80'] } };
    await apply(w.ctx, await desired('nft', P1, V4ONLY));
    const r = await refresh(w.ctx, await desired('nft', P1, MIRROR));
    expect(r).toMatchObject({ changed: true, reloaded: false });
    expect(w.k.dump()).toBe(await dumpOf(await desired('nft', P1, MIRROR)));
    // …and loses it again, in place too.
    expect(await refresh(w.ctx, await desired('nft', P1, V4ONLY))).toMatchObject({ changed: true, reloaded: false });
  });

  test('refresh after a rule expired says so and what to run (it said "changed more than set elements")', async () => {
    const w = world();
    const text = P1 + `  - name: temp\n    reason: until the migration\n    to: [192.0.2.99]\n    expires: 2026-06-02\n`;
    await apply(w.ctx, await desired('nft', text));
    w.advance(2 * 86_400);
    const later = await loadPolicyText('/etc/egress/policy.yaml', text, { resolver: staticResolver(MIRROR), now: new Date(T0.getTime() + 2 * 86_400_000) });
    const d = { ir: later.ir!, artifact: BACKENDS.nft.emit(later.ir!).value!, policyFile: '/etc/egress/policy.yaml', policyText: text, policyHash: sha256(text) };
    await expect(refresh(w.ctx, d)).rejects.toThrow(
      /^rule temp expired on 2026-06-02: the kernel stopped admitting it at the end of that day; run "egress apply \/etc\/egress\/policy\.yaml" to take it out of the ruleset/,
    );
  });

  test('a ruleset changed by hand is not refreshed over', async () => {
    const w = world();
    await apply(w.ctx, await desired('nft', P1));
    w.k.runNft('flush set inet egress allow_dns_v4_addr\n');
    const edited = w.k.dump();
    await expect(refresh(w.ctx, await desired('nft', P1, MOVED))).rejects.toThrow(/^the live ruleset was changed outside egress/);
    expect(w.k.dump()).toBe(edited);
  });
});

describe('confirmation', () => {
  async function pendingWorld(): Promise<World & { OLD: string; NEW: string; token: string }> {
    const w = world();
    await apply(w.ctx, await desired('nft', P1));
    const OLD = w.k.dump();
    const r = await apply(w.ctx, await desired('nft', P2), { confirmSeconds: 60 });
    expect(r.pending).toEqual({ deadline: '2026-06-01T12:01:00.000Z', watchdog: expect.stringMatching(/^systemd unit egress-confirm-[0-9a-f]{12}\.timer$/) });
    return Object.assign(w, { OLD, NEW: w.k.dump(), token: state(w, 'pending')!.token });
  }

  test('apply --confirm arms a systemd timer that runs egress _auto-rollback with its token, and records the apply as pending', async () => {
    const w = await pendingWorld();
    expect(w.x.calls.find((c) => c.argv[0] === 'systemd-run')?.argv).toEqual([
      'systemd-run',
      `--unit=egress-confirm-${w.token}`,
      '--on-active=60s',
      '--timer-property=AccuracySec=1s',
      `--setenv=EGRESS_STATE_DIR=${w.stateDir}`,
      '--description=egress: roll back an unconfirmed apply',
      '--',
      ...SELF,
      '_auto-rollback',
      '--token',
      w.token,
    ]);
    expect(history(w)).toEqual([['apply', 'ok'], ['apply', 'pending']]);
    expect(state(w, 'confirmed')!.policyText).toBe(P1);
  });

  // settle rolls back only when the deadline has passed and the watchdog is not there to do it.
  test.each([
    [59, false, false],
    [60, true, false],
    [60, false, true],
    [3600, false, true],
  ])('%i s after, watchdog alive %s: settle rolls back %s', async (after, alive, rolledBack) => {
    const w = await pendingWorld();
    w.advance(after);
    w.watchdog.alive = alive;
    await settleNow(w);
    expect(w.k.dump()).toBe(rolledBack ? w.OLD : w.NEW);
    expect(state(w, 'pending') === undefined).toBe(rolledBack);
    expect(state(w, 'live')!.policyText).toBe(rolledBack ? P1 : P2);
    expect(history(w).at(-1)).toEqual(rolledBack ? ['auto-rollback', 'ok'] : ['apply', 'pending']);
  });

  test('confirm before the deadline keeps the apply; the deadline then passes with no effect', async () => {
    const w = await pendingWorld();
    w.advance(30);
    expect((await confirm(w.ctx)).snapshot.policyText).toBe(P2);
    expect(state(w, 'confirmed')!.policyText).toBe(P2);
    expect(state(w, 'pending')).toBeUndefined();
    w.advance(3600);
    w.watchdog.alive = false;
    await expect(confirm(w.ctx)).rejects.toThrow(/^nothing to confirm: no apply is awaiting confirmation/);
    expect(w.k.dump()).toBe(w.NEW);
  });

  test('a command run after the deadline, with the watchdog gone, rolls back before anything else', async () => {
    const w = await pendingWorld();
    w.advance(61);
    w.watchdog.alive = false;
    await expect(confirm(w.ctx)).rejects.toThrow(/^nothing to confirm/);
    expect(w.notes).toEqual([expect.stringMatching(/^egress: the apply of .* was not confirmed by 2026-06-01T12:01:00.000Z and its watchdog is gone: rolling back now$/)]);
    expect(w.k.dump()).toBe(w.OLD);
    expect(readHistory(w.stateDir).entries.at(-1)).toMatchObject({ action: 'auto-rollback', outcome: 'ok', message: 'the confirmation deadline passed while its watchdog was gone' });
  });

  test('confirm after the deadline is too late while the watchdog is still to act', async () => {
    const w = await pendingWorld();
    w.advance(60);
    await expect(confirm(w.ctx)).rejects.toThrow(/^too late: the deadline 2026-06-01T12:01:00.000Z has passed/);
    expect(w.k.dump()).toBe(w.NEW);
  });

  test('the watchdog rolls back with its own token; with a stale token it does nothing', async () => {
    const w = await pendingWorld();
    expect(await rollback(w.ctx, { token: 'f00f00f00f00' })).toEqual({ skipped: 'the apply was confirmed, rolled back or replaced before its deadline' });
    expect(w.k.dump()).toBe(w.NEW);
    w.advance(60);
    expect((await rollback(w.ctx, { token: w.token })).restored!.policyText).toBe(P1);
    expect(w.k.dump()).toBe(w.OLD);
    expect(history(w).at(-1)).toEqual(['auto-rollback', 'ok']);
  });

  test('a corrupt pending.json is an unconfirmed apply: the watchdog (and any command) rolls it back instead of giving up (D10)', async () => {
    const w = await pendingWorld();
    writeFileSync(join(w.stateDir, 'pending.json'), 'garbage\n');
    const r = await rollback(w.ctx, { token: w.token });
    expect(r.skipped).toMatch(/rolled back/);
    expect(w.k.dump()).toBe(w.OLD);
    expect(w.notes).toEqual([expect.stringMatching(/pending\.json is corrupted; the unconfirmed apply it recorded is rolled back, to be safe$/)]);
    expect(readHistory(w.stateDir).entries.at(-1)).toMatchObject({ action: 'auto-rollback', outcome: 'ok', message: 'pending.json was corrupted: the unconfirmed apply was rolled back' });
    expect(existsSync(join(w.stateDir, 'pending.json'))).toBe(false);
    await expect(confirm(w.ctx)).rejects.toThrow(/^nothing to confirm/);
  });

  test('an apply that replaces a pending one, cut off before the kernel changed, leaves that one pending with its deadline (D1)', async () => {
    const w = await pendingWorld();
    const P3 = P2 + `  - name: irc\n    reason: no irc\n    ports: [tcp/6667]\n`;
    await dies(w, 'load:before', async () => apply(w.ctx, await desired('nft', P3), { confirmSeconds: 120 }));
    await settleNow(w);
    expect(w.k.dump()).toBe(w.NEW);
    expect(state(w, 'pending')!.token).toBe(w.token); // A's confirmation, not dropped
    w.advance(61);
    expect((await rollback(w.ctx, { token: w.token })).restored!.policyText).toBe(P1); // A's watchdog still rolls it back
    expect(w.k.dump()).toBe(w.OLD);
  });

  test('an apply that replaces a pending one, cut off after the kernel changed, is recorded with its own confirmation (D1)', async () => {
    const w = await pendingWorld();
    const P3 = P2 + `  - name: irc\n    reason: no irc\n    ports: [tcp/6667]\n`;
    await dies(w, 'load:after', async () => apply(w.ctx, await desired('nft', P3), { confirmSeconds: 120 }));
    await settleNow(w);
    const p = state(w, 'pending')!;
    expect(p.token).not.toBe(w.token);
    expect(p.deadline).toBe('2026-06-01T12:02:00.000Z');
    expect(w.x.calls.map((c) => c.argv.join(' ')).at(-1)).toBe(`systemctl stop egress-confirm-${w.token}.timer egress-confirm-${w.token}.service`); // A's watchdog stopped
    w.advance(121);
    expect((await rollback(w.ctx, { token: p.token })).restored!.policyText).toBe(P1); // B was never confirmed
    expect(w.k.dump()).toBe(w.OLD);
  });

  test('an apply that replaces a pending one keeps rollback aimed at the last confirmed ruleset', async () => {
    const w = await pendingWorld();
    await apply(w.ctx, await desired('nft', P2, MOVED));
    expect(state(w, 'pending')).toBeUndefined();
    expect(state(w, 'previous')!.policyText).toBe(P1);
    await rollback(w.ctx);
    expect(w.k.dump()).toBe(w.OLD);
  });
});

/** One side of an interrupted command: what the kernel and live.json hold. */
interface Side {
  dump: string;
  ruleset: string;
}
interface Scenario {
  w: World;
  action: string;
  cmd: () => Promise<unknown>;
  /** What was live before the command, and what it was changing to. */
  prior: Side;
  next: Side;
}

const SCENARIOS: Record<string, (b: LinuxTarget) => Promise<Scenario>> = {
  async apply(b) {
    const w = world();
    const [d1, d2] = [await desired(b, P1), await desired(b, P2)];
    await apply(w.ctx, d1);
    return { w, action: 'apply', cmd: () => apply(w.ctx, d2), prior: { dump: w.k.dump(), ruleset: d1.artifact.text }, next: { dump: await dumpOf(d2), ruleset: d2.artifact.text } };
  },
  async 'apply --confirm'(b) {
    const s = await SCENARIOS.apply!(b);
    const d2 = await desired(b, P2);
    return { ...s, cmd: () => apply(s.w.ctx, d2, { confirmSeconds: 60 }) };
  },
  async rollback(b) {
    const w = world();
    const [d1, d2] = [await desired(b, P1), await desired(b, P2)];
    await apply(w.ctx, d1);
    const OLD = w.k.dump();
    await apply(w.ctx, d2);
    return { w, action: 'rollback', cmd: () => rollback(w.ctx), prior: { dump: w.k.dump(), ruleset: d2.artifact.text }, next: { dump: OLD, ruleset: d1.artifact.text } };
  },
  async 'rollback to nothing'(b) {
    const w = world();
    const d1 = await desired(b, P1);
    await apply(w.ctx, d1);
    return { w, action: 'rollback', cmd: () => rollback(w.ctx), prior: { dump: w.k.dump(), ruleset: d1.artifact.text }, next: { dump: NONE, ruleset: '' } };
  },
  async remove(b) {
    const s = await SCENARIOS['rollback to nothing']!(b);
    return { ...s, action: 'remove', cmd: () => remove(s.w.ctx) };
  },
  async refresh(b) {
    return refreshScenario(b, MOVED);
  },
  /** Only the IPv4 address moves: an iptables refresh cut after its IPv6 commit changed nothing. */
  async 'refresh (IPv4 moved)'(b) {
    return refreshScenario(b, { 'mirror.test': { ipv4: ['192.0.2.81'], ipv6: ['2001:db8::80'] } });
  },
};

async function refreshScenario(b: LinuxTarget, hosts: Hosts): Promise<Scenario> {
  const w = world();
  const d1 = await desired(b, P1);
  const moved = await desired(b, P1, hosts);
  await apply(w.ctx, d1);
  return { w, action: 'refresh', cmd: () => refresh(w.ctx, moved), prior: { dump: w.k.dump(), ruleset: d1.artifact.text }, next: { dump: await dumpOf(moved), ruleset: moved.artifact.text } };
}

type Outcome = 'recorded' | 'dropped' | 'restored';
const SETTLED: Record<Outcome, RegExp> = {
  recorded: /had already changed the kernel; its state is now recorded$/,
  dropped: /had not changed the kernel; nothing to undo$/,
  restored: /was cut off half-way; the ruleset from before it is restored$/,
};

describe('a command that dies at each step is settled by the next one', () => {
  test.each([
    ['apply', 'nft', 'load:before', 'dropped'],
    ['apply', 'nft', 'load:after', 'recorded'],
    ['apply', 'iptables', 'load:before', 'dropped'],
    ['apply', 'iptables', 'load:between-families', 'restored'],
    ['apply', 'iptables', 'load:after', 'recorded'],
    ['apply --confirm', 'nft', 'load:before', 'dropped'],
    ['apply --confirm', 'nft', 'load:after', 'recorded'],
    ['apply --confirm', 'iptables', 'load:between-families', 'restored'],
    ['rollback', 'nft', 'load:before', 'dropped'],
    ['rollback', 'nft', 'load:after', 'recorded'],
    ['rollback', 'iptables', 'load:between-families', 'restored'],
    ['rollback', 'iptables', 'load:after', 'recorded'],
    ['rollback to nothing', 'nft', 'remove:before', 'dropped'],
    ['rollback to nothing', 'nft', 'remove:after', 'recorded'],
    ['rollback to nothing', 'iptables', 'remove:between-families', 'restored'],
    ['remove', 'nft', 'remove:before', 'dropped'],
    ['remove', 'nft', 'remove:after', 'recorded'],
    ['remove', 'iptables', 'remove:between-families', 'restored'],
    ['remove', 'iptables', 'remove:after', 'recorded'],
    ['refresh', 'nft', 'refresh:before', 'dropped'],
    ['refresh', 'nft', 'refresh:after', 'recorded'],
    ['refresh', 'iptables', 'load:between-families', 'restored'],
    ['refresh', 'iptables', 'load:after', 'recorded'],
    ['refresh (IPv4 moved)', 'iptables', 'load:between-families', 'dropped'],
  ] as const)('%s (%s) dies at %s: %s', async (name, b, step, outcome) => {
    const s = await SCENARIOS[name]!(b);
    const { w } = s;
    await dies(w, step, s.cmd);
    expect(state(w, 'applying')).toBeDefined();
    await settleNow(w);
    const side = outcome === 'recorded' ? s.next : s.prior;
    expect(w.k.dump()).toBe(side.dump);
    expect(state(w, 'live')!.ruleset).toBe(side.ruleset);
    expect(state(w, 'applying')).toBeUndefined();
    expect(w.notes).toEqual([expect.stringMatching(SETTLED[outcome])]);
    const pendingApply = name === 'apply --confirm' && outcome === 'recorded';
    expect(readHistory(w.stateDir).entries.at(-1)).toMatchObject({ action: s.action, outcome: outcome !== 'recorded' ? 'failed' : pendingApply ? 'pending' : 'ok' });
    expect(state(w, 'pending') !== undefined).toBe(pendingApply);
    await expectStateAgrees(w);
    // Settled means settled: another run finds nothing to do.
    await settleNow(w);
    expect(w.notes).toHaveLength(1);
  });

  // The first apply left "nothing" as previous: rollback after the settle takes egress out.
  test.each([
    // The policy that is live again after the settle: nothing to change, so nothing recorded after the settle's own entry.
    ['apply', (w: World, d: Desired) => apply(w.ctx, d), undefined, 'OLD', ['apply', 'failed']],
    ['confirm', (w: World) => confirm(w.ctx), /^nothing to confirm: no apply is awaiting confirmation/, 'OLD', ['apply', 'failed']],
    ['rollback', (w: World) => rollback(w.ctx), undefined, 'NONE', ['rollback', 'ok']],
    ['remove', (w: World) => remove(w.ctx), undefined, 'NONE', ['remove', 'ok']],
    ['refresh', (w: World, d: Desired) => refresh(w.ctx, d), undefined, 'OLD', ['refresh', 'ok']],
  ] as const)('%s settles an iptables apply cut between its two families before doing its own work', async (_name, next, error, after, last) => {
    const w = world();
    const d1 = await desired('iptables', P1);
    await apply(w.ctx, d1);
    const OLD = w.k.dump();
    const d2 = await desired('iptables', P2);
    await dies(w, 'load:between-families', () => apply(w.ctx, d2));
    const err = await next(w, d1).then(
      () => undefined,
      (e: Error) => e.message,
    );
    if (error) expect(err).toMatch(error);
    else expect(err).toBeUndefined();
    expect(w.notes[0]).toMatch(SETTLED.restored);
    expect(w.k.dump()).toBe(after === 'OLD' ? OLD : NONE);
    expect(state(w, 'applying')).toBeUndefined();
    expect(history(w).at(-1)).toEqual(last);
  });

  test('a settle that dies while restoring is settled again by the next run', async () => {
    const w = world();
    const d1 = await desired('iptables', P1);
    await apply(w.ctx, d1);
    const OLD = w.k.dump();
    const d2 = await desired('iptables', P2);
    await dies(w, 'load:between-families', () => apply(w.ctx, d2));
    await dies(w, 'load:before', () => settleNow(w));
    await settleNow(w);
    expect(w.notes).toEqual([expect.stringMatching(SETTLED.restored)]);
    expect(w.k.dump()).toBe(OLD);
    expect(state(w, 'live')!.ruleset).toBe(d1.artifact.text);
    expect(history(w)).toEqual([['apply', 'ok'], ['apply', 'failed']]);
  });

  test.each([
    // The new backend was loaded, the old one not yet taken out: both are live (stricter, never looser) and the new one is recorded.
    ['remove:before', 'recorded'],
    ['load:between-families', 'restored'],
  ] as const)('switching nft → iptables dies at %s: %s', async (step, outcome) => {
    const w = world();
    const n1 = await desired('nft', P1);
    const i2 = await desired('iptables', P2);
    await apply(w.ctx, n1);
    await dies(w, step, () => apply(w.ctx, i2));
    await settleNow(w);
    expect(w.notes).toEqual([expect.stringMatching(SETTLED[outcome])]);
    expect(w.k.dump('nft')).toBe(await dumpOf(n1, 'nft'));
    expect(w.k.dump('iptables')).toBe(outcome === 'recorded' ? await dumpOf(i2, 'iptables') : new FakeKernel().dump('iptables'));
    expect(state(w, 'live')!.backend).toBe(outcome === 'recorded' ? 'iptables' : 'nft');
    if (outcome === 'recorded') {
      // The next apply takes the old backend out.
      await apply(w.ctx, i2);
      expect((await w.k.readLive('nft')).live.present).toBe(false);
    }
  });
});

