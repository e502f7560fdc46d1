/**
 * The forwarder's promise, with the kernel as the oracle, on the ruleset
 * egress itself compiles for a policy (loadPolicyText + compilePolicy, loaded
 * the way apply loads it): a program that resolves a name and connects at
 * once is never blocked, while addresses no answer named stay blocked.
 *
 *   client namespace (a lab host)                          world namespace
 *   table inet egress compiled from POLICY below:          every documentation address answers
 *     redirect of udp/tcp 53 to the forwarder,               tcp/443, tcp/80, tcp+udp/853;
 *     guard (only the forwarder sends 53/853), sets        fake authority on 192.0.2.53 and
 *   forwarder (src/dns/main.ts, real nft writer) as          2001:db8::53 (rotating, TTL 0–1)
 *     root with group egress-dns, the config apply writes
 *   probes as three unprivileged uids ask 192.0.2.53 / 2001:db8::53 port 53
 *
 * The forwarder runs as its own process inside the client namespace (`ip
 * netns exec`, `setpriv` to uid 0 and the egress-dns group, as apply starts
 * it), so its sockets, its nft child and its /proc/net uid lookup are the
 * namespace's. The probes ask the upstream's address: the kernel's redirect
 * is what sends them to the forwarder.
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
import type { Counters } from '../../src/dns/types.js';
import { compilePolicy, hasErrors, loadPolicyText, renderText } from '../../src/index.js';
import { nftForwarderConfig } from '../../src/backends/nft/emit.js';
import type { NftForwarderConfig } from '../../src/backends/nft/dns.js';
import { ensureDnsGroup, forwarderUpstream, HOLD_MS } from '../../src/kernel/forwarder.js';
import { mustRun } from '../../src/kernel/where.js';
import { dnsPolicy, PROBE, REGISTER, startAuthority, UPSTREAMS, type Tally } from './dns-proof.js';
import { kernelDescribe, loadInto, mustLoad, useKernel } from './harness.js';
import { ROOT } from '../paths.js';

const SOCKET = join(ROOT, 'test', 'kernel', 'fixtures', 'dns-socket.ts');
const MAIN = join(ROOT, 'src', 'dns', 'main.ts');
const USERS = [4_100_101, 4_100_102, 4_100_103];
/** The one uid rule "svc" allows. */
const SVC_UID = USERS[2]!;
const CYCLES_PER_USER = 700;
const POLICY = dnsPolicy(SVC_UID, { ssh: true });

// Inside the pools' ranges, but never handed out by the authority (see dns-authority.ts).
const NEVER = [...Array.from({ length: 10 }, (_, i) => `198.51.100.${200 + i}`), ...Array.from({ length: 10 }, (_, i) => `2001:db8:1::${(0x8000 + i).toString(16)}`)];

/** The policy compiled as apply compiles it: the nft ruleset and the forwarder's configuration. */
async function compiled(x: Execer): Promise<{ text: string; config: NftForwarderConfig }> {
  await ensureDnsGroup({ execer: x }); // the ruleset names the forwarder's group
  const l = await loadPolicyText('dns-forwarder.yaml', POLICY);
  const ir = mustLoad(l, 'the DNS policy');
  const art = compilePolicy(ir, 'nft');
  if (hasErrors(art.diagnostics) || !art.value) throw new Error(renderText(l.sources, art.diagnostics));
  return { text: art.value.text, config: nftForwarderConfig(ir, forwarderUpstream(ir.dns!), HOLD_MS)! };
}

async function line(s: Started, what: string, ms = 30_000): Promise<string> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([s.nextLine(), new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: no line within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

/** The forwarder as a process in `ns`, as root with group egress-dns (as apply starts it), once it says it is ready. */
async function startForwarder(x: Execer, ns: string, dir: string, spec: Record<string, unknown>): Promise<Started> {
  const file = join(dir, 'spec.json');
  writeFileSync(file, JSON.stringify(spec));
  const fwd = x.start(process.execPath, ['--import', REGISTER, MAIN, file], { netns: ns, uid: 0, gid: await ensureDnsGroup({ execer: x }) });
  const ready = await line(fwd, 'forwarder').catch(async (e: Error) => {
    const r = await fwd.stop();
    throw new Error(`${e.message}; stderr: ${r.stderr.slice(0, 800)}`);
  });
  expect(ready).toMatch(/^ready /);
  return fwd;
}

interface Run {
  tallies: Tally[];
  counters: Counters;
  log: Record<string, unknown>[];
  /** The kernel's dns_bypass counter (packets to 53/853 that did not go through the forwarder) after the run. */
  bypassPackets: number;
}

interface RunOptions {
  publishAfterAnswer?: boolean;
  cyclesPerUser: number;
  /** Runs while the probes run; it ends when `probesDone` is true. */
  during?: (logFile: string, probesDone: () => boolean) => Promise<void>;
}

/** One client namespace with the compiled ruleset, a forwarder process, and one probe per user; everything removed at the end. */
async function run(env: ReturnType<typeof useKernel>, opts: RunOptions): Promise<Run> {
  const { text, config } = await compiled(env.x);
  const host = await env.world.addHost();
  const dir = mkdtempSync(join(tmpdir(), 'egress-dnsfwd-'));
  let fwd: Started | undefined;
  try {
    await loadInto(env.x, host.ns, 'nft', text);
    const logFile = join(dir, 'dns.log');
    fwd = await startForwarder(env.x, host.ns, dir, { config, logFile, control: true, ...(opts.publishAfterAnswer ? { publishAfterAnswer: true } : {}) });
    let done = false;
    const args = { cycles: opts.cyclesPerUser, workers: 8, never: NEVER, servers: UPSTREAMS, svcUid: SVC_UID, bypass: true };
    const started = Date.now();
    const probing = Promise.all(
      USERS.map((uid) => env.x.run(process.execPath, ['--import', REGISTER, PROBE, JSON.stringify(args)], { netns: host.ns, uid, gid: uid, timeoutMs: 150_000 })),
    ).finally(() => (done = true));
    const [probes] = await Promise.all([probing, opts.during?.(logFile, () => done)]);
    const seconds = (Date.now() - started) / 1000;
    const tallies = probes.map((r, i) => {
      if (r.code !== 0) throw new Error(`probe as uid ${USERS[i]} failed (${r.code}): ${r.stderr.slice(0, 800)}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as Tally;
    });
    fwd.write('counters\n');
    const c = await line(fwd, 'forwarder counters');
    const counters = JSON.parse(c.replace(/^counters /, '')) as Counters;
    const listed = await mustRun({ execer: env.x, netns: host.ns }, ['nft', 'list', 'counter', 'inet', 'egress', 'dns_bypass']);
    const bypassPackets = Number(/packets (\d+)/.exec(listed)?.[1] ?? NaN);
    process.stderr.write(
      `dns-forwarder kernel run${opts.publishAfterAnswer ? ' (publishAfterAnswer)' : ''}: ${sum(tallies, (t) => t.cycles)} cycles in ${seconds.toFixed(1)} s, ${sum(tallies, (t) => t.connects)} connects, ` +
        `${sum(tallies, (t) => t.falseDenials)} false denials, ${sum(tallies, (t) => t.unlistedAdmitted)} unlisted admits, ${sum(tallies, (t) => t.wrongUserAdmitted)} wrong-user admits, ` +
        `${sum(tallies, (t) => t.otherPortAdmitted)} other-port admits, SERVFAIL ${sum(tallies, (t) => t.servfail)}, errors ${JSON.stringify(Object.assign({}, ...tallies.map((t) => t.otherErrors)))}, ` +
        `published ${counters.published}, hold timeouts ${counters.holdTimeouts}, bypass packets ${bypassPackets}\n`,
    );
    await fwd.stop();
    const log = readFileSync(logFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    return { tallies, counters, log, bypassPackets };
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

kernelDescribe('DNS forwarder in the kernel, on the ruleset egress compiles', () => {
  const env = useKernel();

  test('≥ 2,000 resolve-then-connect cycles, both families, three users: no connect to an answered address is blocked, nothing unanswered gets through', async () => {
    await env.world.listen({ tcp: [443, 80, 853], udp: [853] });
    const authority = await startAuthority(env.x, env.world.ns);
    try {
      const { tallies, counters, log, bypassPackets } = await run(env, { cyclesPerUser: CYCLES_PER_USER });
      const total = (f: (t: Tally) => number) => sum(tallies, f);
      // the run was what it claims: cycles, families, both redirects, wildcard depths, every kind of answer
      expect(total((t) => t.cycles)).toBeGreaterThanOrEqual(2000);
      expect(total((t) => t.byFamily.A)).toBeGreaterThanOrEqual(1000);
      expect(total((t) => t.byFamily.AAAA)).toBeGreaterThanOrEqual(1000);
      for (const u of UPSTREAMS) expect(total((t) => t.byServer[u] ?? 0)).toBeGreaterThanOrEqual(1000);
      for (const d of ['1', '2', '3']) expect(total((t) => t.byDepth[d] ?? 0)).toBeGreaterThan(100);
      expect(total((t) => t.ok)).toBeGreaterThan(4000);
      expect(total((t) => t.tcpFallbacks)).toBeGreaterThan(100);
      expect(total((t) => t.bigAnswers)).toBeGreaterThan(50);
      expect(total((t) => t.cnameAnswers)).toBeGreaterThan(100);
      expect(total((t) => t.refused)).toBeGreaterThan(100);
      expect(tallies.find((t) => t.uid === SVC_UID)!.svcOk).toBeGreaterThan(50);
      // the oracle: zero false denials …
      expect(tallies.flatMap((t) => t.falseDenialSamples)).toEqual([]);
      expect(total((t) => t.falseDenials)).toBe(0);
      expect(total((t) => t.servfail)).toBe(0);
      expect(Object.assign({}, ...tallies.map((t) => t.otherErrors))).toEqual({});
      // … and zero admits for unlisted names, the wildcard's bare domain, another user's rule, another port, pool addresses no answer named
      expect(tallies.flatMap((t) => t.unlistedSamples)).toEqual([]);
      expect(total((t) => t.unlistedAdmitted)).toBe(0);
      expect(total((t) => t.unlistedRejected)).toBeGreaterThan(100);
      expect(total((t) => t.wrongUserAdmitted)).toBe(0);
      expect(total((t) => t.wrongUserRejected)).toBeGreaterThan(50);
      expect(total((t) => t.otherPortAdmitted)).toBe(0);
      expect(total((t) => t.otherPortRejected)).toBeGreaterThan(300);
      expect(tallies.flatMap((t) => t.never.admitted)).toEqual([]);
      expect(total((t) => t.never.rejected)).toBe(NEVER.length * USERS.length);
      expect(total((t) => t.deniedNotRefused)).toBe(0);
      // bypass: DNS to the upstream (or any server) on 53 is answered by the forwarder (REFUSED for a deny
      // name the authority would answer); DNS over TLS/QUIC to the upstream is rejected, and counted
      for (const t of tallies)
        for (const [k, v] of Object.entries(t.bypass)) {
          if (k.endsWith(':53')) expect(`${t.uid} ${k} ${v}`).toBe(`${t.uid} ${k} REFUSED`);
          else expect(`${t.uid} ${k} ${v}`).toMatch(/ (ECONNREFUSED|EHOSTUNREACH|EACCES|EPERM)$/);
        }
      expect(bypassPackets).toBeGreaterThanOrEqual(4 * USERS.length);
      expect(counters).toMatchObject({ holdTimeouts: 0, publishFailures: 0, malformed: 0, servfail: 0 });
      expect(counters.published).toBeGreaterThan(4000);
      // what the authority handed out includes everything the probes were told, and none of NEVER
      authority.write('handed\n');
      const handed = new Set((JSON.parse((await line(authority, 'authority')).replace(/^handed /, '')) as string[]).map(canon));
      for (const a of tallies.flatMap((t) => t.answered)) expect(handed.has(canon(a))).toBe(true);
      for (const a of NEVER) expect(handed.has(canon(a))).toBe(false);
      // log lines name the asking uid, also for redirected queries
      const publishes = log.filter((r) => r.event === 'dns-publish');
      expect(publishes.length).toBeGreaterThan(1000);
      const uids = new Set(publishes.map((r) => r.uid));
      for (const u of USERS) expect(uids.has(u)).toBe(true);
    } finally {
      await authority.stop();
    }
  }, 240_000);

  test('nft killed again and again mid-run: SERVFAIL meanwhile, never an answer that was not published', async () => {
    await env.world.listen({ tcp: [443, 80, 853], udp: [853] });
    const authority = await startAuthority(env.x, env.world.ns);
    try {
      const killed: number[] = [];
      const { tallies, counters, log } = await run(env, { cyclesPerUser: 300, during: killWriter(3, killed) });
      expect(killed.length).toBe(3);
      expect(sum(tallies, (t) => t.falseDenials)).toBe(0);
      expect(sum(tallies, (t) => t.unlistedAdmitted)).toBe(0);
      expect(sum(tallies, (t) => t.wrongUserAdmitted)).toBe(0);
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

  test('a DNS socket opened before the ruleset loaded: its next query is redirected at once; without the conntrack zone it is rejected', async () => {
    const authority = await startAuthority(env.x, env.world.ns);
    const { text, config } = await compiled(env.x);
    const withoutZone = text.replace(/\tchain dns_zone \{\n[\s\S]*?\n\t\}\n\n/, '');
    expect(withoutZone).not.toBe(text);
    const seen: Record<string, string[]> = {};
    try {
      for (const [what, ruleset] of [
        ['with the zone', text],
        ['without the zone', withoutZone],
      ] as const) {
        const host = await env.world.addHost();
        const dir = mkdtempSync(join(tmpdir(), 'egress-dnsct-'));
        let fwd: Started | undefined;
        let sock: Started | undefined;
        try {
          // Connections are tracked before egress loads (any ct rule does that; a distribution firewall, egress without dns.proxy).
          await mustRun({ execer: env.x, netns: host.ns }, ['nft', '-f', '-'], 'table inet before {\n\tchain out {\n\t\ttype filter hook output priority 10; policy accept;\n\t\tct state established accept\n\t}\n}\n');
          sock = env.x.start(process.execPath, ['--import', REGISTER, SOCKET, UPSTREAMS[0]!], { netns: host.ns, uid: USERS[0], gid: USERS[0] });
          expect(await line(sock, 'dns socket')).toMatch(/^ready \d+$/);
          const ask = async (name: string) => {
            sock!.write(`${name}\n`);
            return (await line(sock!, 'dns socket')).replace(`${name} `, '');
          };
          expect(await ask('denied.test')).toBe('NOERROR'); // the authority itself: nothing in the way yet
          await loadInto(env.x, host.ns, 'nft', ruleset);
          fwd = await startForwarder(env.x, host.ns, dir, { config, logFile: join(dir, 'dns.log') });
          seen[what] = [await ask('denied.test'), await ask('denied.test'), await ask('rot.allowed.test')];
        } finally {
          await sock?.stop();
          await fwd?.stop();
          await host.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }
    } finally {
      await authority.stop();
    }
    process.stderr.write(`dns socket from before the ruleset: ${JSON.stringify(seen)}\n`);
    // Same socket, same source port: the forwarder answers (REFUSED for the deny name) ...
    expect(seen['with the zone']).toEqual(['REFUSED', 'REFUSED', 'NOERROR']);
    // ... where, without the zone, the old conntrack entry keeps the query from the redirect and the guard rejects it.
    for (const r of seen['without the zone']!) expect(r).toMatch(/^(EHOSTUNREACH|ECONNREFUSED|EACCES|EPERM|timeout)$/);
  }, 120_000);

  test('negative control: publishing after the answer shows false denials in the same run', async () => {
    await env.world.listen({ tcp: [443, 80, 853], udp: [853] });
    const authority = await startAuthority(env.x, env.world.ns);
    try {
      const { tallies, counters } = await run(env, { publishAfterAnswer: true, cyclesPerUser: 150 });
      expect(sum(tallies, (t) => t.falseDenials)).toBeGreaterThanOrEqual(1);
      expect(counters.holdTimeouts).toBe(0);
    } finally {
      await authority.stop();
    }
  }, 180_000);
});
