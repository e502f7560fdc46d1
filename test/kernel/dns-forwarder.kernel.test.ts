/**
 * The forwarder's promise, with the kernel as the oracle: a program that
 * resolves a name through the forwarder and connects at once is never
 * blocked, while addresses no answer named stay blocked.
 *
 *   client namespace (a lab host)                         world namespace
 *   table inet egress: tcp/443 only to @allowed_4/6     ── every documentation address answers
 *   forwarder (src/dns/main.ts, real nft writer)            tcp/443 (accept, close);
 *     on 127.0.0.153:53 and [::1]:53                       fake authority on 192.0.2.53 and
 *   probes as two unprivileged uids                         2001:db8::53 (rotating, TTL 0–1)
 *
 * The forwarder runs as its own process inside the client namespace (`ip
 * netns exec`), so its sockets, its nft child and its /proc/net uid lookup
 * are the namespace's. The probes send their queries straight to the
 * forwarder's address (the kernel redirect of all port-53 traffic is the
 * ruleset's job, not this test's).
 *
 * Negative control: the same run with `publishAfterAnswer` (answer first,
 * insert after) must see false denials, which shows the test can fail.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import ipaddr from 'ipaddr.js';
import type { Execer, Started } from '../../src/kernel/exec.js';
import type { Counters, ForwarderConfig } from '../../src/dns/types.js';
import { mustRun } from '../../src/kernel/where.js';
import { kernelDescribe, useKernel } from './harness.js';

const ROOT = join(import.meta.dirname, '..', '..');
const REGISTER = join(ROOT, 'test', 'kernel', 'fixtures', 'register-ts.mjs');
const AUTHORITY = join(ROOT, 'test', 'kernel', 'fixtures', 'dns-authority.ts');
const PROBE = join(ROOT, 'test', 'kernel', 'fixtures', 'dns-probe.ts');
const MAIN = join(ROOT, 'src', 'dns', 'main.ts');
const USERS = [4_100_101, 4_100_102];
const CYCLES_PER_USER = 1100;

// Only the forwarder (uid 0 here) may send DNS out, and that check comes BEFORE `ct state established`:
// the forwarder asks from a new random port each time, so a program whose ephemeral port happens to
// equal one the forwarder used recently would otherwise ride on that flow's conntrack entry (seen in
// this test: a direct query from a probe uid answered by the upstream).
const RULESET = `table inet egress {
  set allowed_4 { type ipv4_addr; flags timeout; }
  set allowed_6 { type ipv6_addr; flags timeout; }
  chain output {
    type filter hook output priority filter; policy accept;
    oifname "lo" accept
    meta l4proto { tcp, udp } th dport 53 meta skuid != 0 reject
    ct state established,related accept
    meta l4proto { tcp, udp } th dport 53 ip daddr 192.0.2.53 accept
    meta l4proto { tcp, udp } th dport 53 ip6 daddr 2001:db8::53 accept
    tcp dport 443 ip daddr @allowed_4 accept
    tcp dport 443 ip6 daddr @allowed_6 accept
    meta l4proto tcp reject with tcp reset
    reject
  }
}
`;

const sets = { ipv4: 'allowed_4', ipv6: 'allowed_6' };
const CONFIG: ForwarderConfig = {
  listen: [
    { address: '127.0.0.153', port: 53 },
    { address: '::1', port: 53 },
  ],
  upstream: [
    { address: '192.0.2.53', port: 53 },
    { address: '2001:db8::53', port: 53 },
  ],
  // Short lifetimes, so an address answered earlier has mostly expired when the pool hands it out again:
  // each cycle's connects depend on that cycle's publish, which is what the negative control needs to see.
  graceSec: 0,
  minLifetimeSec: 1,
  holdMs: 1000,
  names: [
    { pattern: 'rot.allowed.test', action: 'allow', rule: 'allowed', sets },
    { pattern: '*.cdn.allowed.test', action: 'allow', rule: 'allowed', sets },
    { pattern: 'alias.allowed.test', action: 'allow', rule: 'allowed', sets },
    { pattern: 'tcp-only.allowed.test', action: 'allow', rule: 'allowed', sets },
    { pattern: 'big.allowed.test', action: 'allow', rule: 'allowed', sets },
    { pattern: 'denied.test', action: 'deny', rule: 'denied', sets: {} },
  ],
  table: 'inet egress',
};

// Inside the pools' ranges, but never handed out by the authority (see dns-authority.ts).
const NEVER = [...Array.from({ length: 10 }, (_, i) => `198.51.100.${200 + i}`), ...Array.from({ length: 10 }, (_, i) => `2001:db8:1::${(0x8000 + i).toString(16)}`)];

interface Tally {
  cycles: number;
  byFamily: { A: number; AAAA: number };
  byDepth: Record<string, number>;
  connects: number;
  ok: number;
  falseDenials: number;
  falseDenialSamples: string[];
  unlistedAdmitted: number;
  unlistedRejected: number;
  refused: number;
  deniedNotRefused: number;
  servfail: number;
  tcpFallbacks: number;
  bigAnswers: number;
  otherErrors: Record<string, number>;
  answered: string[];
  never: { rejected: number; admitted: string[] };
  bypass: Record<string, string>;
}

async function line(s: Started, what: string, ms = 30_000): Promise<string> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([s.nextLine(), new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: no line within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

async function startAuthority(x: Execer, worldNs: string): Promise<Started> {
  const s = x.start(process.execPath, ['--import', REGISTER, AUTHORITY], { netns: worldNs });
  try {
    const first = await line(s, 'fake authority');
    if (first !== 'ready') throw new Error(`fake authority said ${JSON.stringify(first)}`);
  } catch (e) {
    const r = await s.stop();
    throw new Error(`${(e as Error).message}; stderr: ${r.stderr.slice(0, 500)}`);
  }
  return s;
}

interface Run {
  tallies: Tally[];
  counters: Counters;
  log: Record<string, unknown>[];
  elements4: string;
}

/** One client namespace with the ruleset, a forwarder process, and one probe per user; everything removed at the end. */
interface RunOptions {
  publishAfterAnswer?: boolean;
  refresh?: 'readd' | 'delete-readd';
  cyclesPerUser: number;
  /** Runs while the probes run; it ends when `probesDone` is true. */
  during?: (logFile: string, probesDone: () => boolean) => Promise<void>;
}

async function run(env: ReturnType<typeof useKernel>, opts: RunOptions): Promise<Run> {
  const host = await env.world.addHost();
  const dir = mkdtempSync(join(tmpdir(), 'egress-dnsfwd-'));
  let fwd: Started | undefined;
  try {
    await mustRun({ execer: env.x, netns: host.ns }, ['nft', '-f', '-'], RULESET);
    const spec = join(dir, 'spec.json');
    const logFile = join(dir, 'dns.log');
    writeFileSync(spec, JSON.stringify({ config: CONFIG, logFile, control: true, ...(opts.refresh ? { refresh: opts.refresh } : {}), ...(opts.publishAfterAnswer ? { publishAfterAnswer: true } : {}) }));
    fwd = env.x.start(process.execPath, ['--import', REGISTER, MAIN, spec], { netns: host.ns });
    const ready = await line(fwd, 'forwarder').catch(async (e: Error) => {
      const r = await fwd!.stop();
      throw new Error(`${e.message}; stderr: ${r.stderr.slice(0, 800)}`);
    });
    expect(ready).toMatch(/^ready /);
    let done = false;
    const probing = Promise.all(
      USERS.map((uid) => env.x.run(process.execPath, ['--import', REGISTER, PROBE, JSON.stringify({ cycles: opts.cyclesPerUser, workers: 8, never: NEVER })], { netns: host.ns, uid, gid: uid, timeoutMs: 120_000 })),
    ).finally(() => (done = true));
    const [probes] = await Promise.all([probing, opts.during?.(logFile, () => done)]);
    const tallies = probes.map((r, i) => {
      if (r.code !== 0) throw new Error(`probe as uid ${USERS[i]} failed (${r.code}): ${r.stderr.slice(0, 800)}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as Tally;
    });
    fwd.write('counters\n');
    const c = await line(fwd, 'forwarder counters');
    const counters = JSON.parse(c.replace(/^counters /, '')) as Counters;
    const elements4 = await mustRun({ execer: env.x, netns: host.ns }, ['nft', 'list', 'set', 'inet', 'egress', 'allowed_4']);
    process.stderr.write(
      `dns-forwarder kernel run${opts.publishAfterAnswer ? ' (publishAfterAnswer)' : ''}: ${sum(tallies, (t) => t.cycles)} cycles, ${sum(tallies, (t) => t.connects)} connects, ` +
        `${sum(tallies, (t) => t.falseDenials)} false denials, ${sum(tallies, (t) => t.unlistedAdmitted)} unlisted admits, published ${counters.published}, hold timeouts ${counters.holdTimeouts}\n`,
    );
    await fwd.stop();
    const log = readFileSync(logFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    return { tallies, counters, log, elements4 };
  } finally {
    await fwd?.stop();
    await host.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const sum = (ts: Tally[], f: (t: Tally) => number) => ts.reduce((n, t) => n + f(t), 0);
const canon = (a: string) => ipaddr.parse(a).toNormalizedString();

const records = (logFile: string) =>
  readFileSync(logFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event: string; pid?: number; generation?: number });

/** SIGKILL the forwarder's nft child `kills` times, each time once the new one has published again. */
function killWriter(kills: number, killed: number[]) {
  return async (logFile: string, probesDone: () => boolean) => {
    for (let k = 0; k < kills && !probesDone(); ) {
      const rs = records(logFile);
      const ups = rs.filter((r) => r.event === 'writer-up');
      const last = ups[ups.length - 1];
      const since = last ? rs.slice(rs.lastIndexOf(last)).filter((r) => r.event === 'dns-publish').length : 0;
      if (last?.pid && !killed.includes(last.pid) && since >= 20) {
        process.kill(last.pid, 'SIGKILL');
        killed.push(last.pid);
        k++;
      }
      await new Promise((r) => setTimeout(r, 10)); // polling the log file for the condition above
    }
  };
}

kernelDescribe('DNS forwarder in the kernel', () => {
  const env = useKernel();

  test('≥ 2,000 resolve-then-connect cycles, both families, two users: no connect to an answered address is blocked, nothing unanswered gets through', async () => {
    await env.world.listen({ tcp: [443] });
    const authority = await startAuthority(env.x, env.world.ns);
    try {
      const { tallies, counters, log } = await run(env, { cyclesPerUser: CYCLES_PER_USER });
      const cycles = sum(tallies, (t) => t.cycles);
      expect(cycles).toBeGreaterThanOrEqual(2000);
      expect(sum(tallies, (t) => t.byFamily.A)).toBeGreaterThanOrEqual(1000);
      expect(sum(tallies, (t) => t.byFamily.AAAA)).toBeGreaterThanOrEqual(1000);
      for (const d of ['1', '2', '3']) expect(sum(tallies, (t) => t.byDepth[d] ?? 0)).toBeGreaterThan(0);
      // the oracle: zero false denials, zero unlisted admits
      expect(tallies.flatMap((t) => t.falseDenialSamples)).toEqual([]);
      expect(sum(tallies, (t) => t.falseDenials)).toBe(0);
      expect(sum(tallies, (t) => t.unlistedAdmitted)).toBe(0);
      expect(sum(tallies, (t) => t.unlistedRejected)).toBeGreaterThan(0);
      expect(tallies.flatMap((t) => t.never.admitted)).toEqual([]);
      expect(sum(tallies, (t) => t.never.rejected)).toBe(NEVER.length * USERS.length);
      // and the run was what it claims: real connects, TCP fallbacks, 64-address answers, refusals
      expect(sum(tallies, (t) => t.ok)).toBeGreaterThan(4000);
      expect(sum(tallies, (t) => t.tcpFallbacks)).toBeGreaterThan(100);
      expect(sum(tallies, (t) => t.bigAnswers)).toBeGreaterThan(50);
      expect(sum(tallies, (t) => t.refused)).toBeGreaterThan(50);
      expect(sum(tallies, (t) => t.deniedNotRefused)).toBe(0);
      expect(sum(tallies, (t) => t.servfail)).toBe(0);
      expect(Object.assign({}, ...tallies.map((t) => t.otherErrors))).toEqual({});
      // bypass: DNS straight to the upstream from a program is rejected
      for (const t of tallies) for (const [k, v] of Object.entries(t.bypass)) expect(`${k} ${v}`).toMatch(/ (ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EACCES|EPERM)$/);
      expect(counters).toMatchObject({ holdTimeouts: 0, publishFailures: 0, malformed: 0, servfail: 0 });
      expect(counters.published).toBeGreaterThan(4000);
      // what the authority handed out includes everything the probes were told, and none of NEVER
      authority.write('handed\n');
      const handed = new Set((JSON.parse((await line(authority, 'authority')).replace(/^handed /, '')) as string[]).map(canon));
      for (const a of tallies.flatMap((t) => t.answered)) expect(handed.has(canon(a))).toBe(true);
      for (const a of NEVER) expect(handed.has(canon(a))).toBe(false);
      // log lines name the asking uid for UDP queries over loopback
      const publishes = log.filter((r) => r.event === 'dns-publish');
      expect(publishes.length).toBeGreaterThan(1000);
      const uids = new Set(publishes.map((r) => r.uid));
      for (const u of USERS) expect(uids.has(u)).toBe(true);
    } finally {
      await authority.stop();
    }
  }, 180_000);

  test('nft killed again and again mid-run: SERVFAIL meanwhile, never an answer that was not published', async () => {
    await env.world.listen({ tcp: [443] });
    const authority = await startAuthority(env.x, env.world.ns);
    try {
      const killed: number[] = [];
      const { tallies, counters, log } = await run(env, { cyclesPerUser: 600, during: killWriter(3, killed) });
      expect(killed.length).toBe(3);
      expect(sum(tallies, (t) => t.falseDenials)).toBe(0);
      expect(sum(tallies, (t) => t.unlistedAdmitted)).toBe(0);
      expect(sum(tallies, (t) => t.servfail)).toBeGreaterThan(0);
      expect(counters.publishFailures).toBeGreaterThan(0);
      // the writer came back after each kill and kept publishing
      expect(log.filter((r) => r.event === 'writer-up').length).toBe(4);
      expect(log.filter((r) => r.event === 'writer-down').length).toBe(3);
      const lastUp = log.map((r) => r.event).lastIndexOf('writer-up');
      expect(log.slice(lastUp).filter((r) => r.event === 'dns-publish').length).toBeGreaterThan(0);
    } finally {
      await authority.stop();
    }
  }, 180_000);

  test('negative control: publishing after the answer shows false denials in the same run', async () => {
    await env.world.listen({ tcp: [443] });
    const authority = await startAuthority(env.x, env.world.ns);
    try {
      const { tallies, counters } = await run(env, { publishAfterAnswer: true, cyclesPerUser: 300 });
      expect(sum(tallies, (t) => t.falseDenials)).toBeGreaterThanOrEqual(1);
      expect(counters.holdTimeouts).toBe(0);
    } finally {
      await authority.stop();
    }
  }, 180_000);
});
