/**
 * `dns.proxy` under load while the ruleset is replaced, through the shipped
 * CLI, with the kernel as the oracle: resolve-then-connect loops run as three
 * uids, in both families, while `egress apply --reload` loads the same policy again,
 * then a changed policy (one more rule that names no host: the forwarder's
 * configuration is unchanged, so the forwarder is kept), then `egress
 * rollback` puts the first one back. Every load replaces the table; the
 * elements the forwarder published must survive each one, including those it
 * publishes while apply runs. Counted: connects blocked to addresses the
 * program was just told, lookups that failed, SERVFAILs. All must be zero.
 * A change of the names (the forwarder's configuration) restarts the
 * forwarder: there lookups may fail meanwhile (counted and printed, the
 * redirect stays, so they fail closed), but no connect to a told address is
 * blocked and nothing unlisted is admitted.
 *
 *   host namespace (lab host)                          world namespace
 *   egress apply/rollback (compiled CLI)               fake authority on 192.0.2.53 / 2001:db8::53
 *   forwarder on 127.0.0.153:153, [::1]:153            (rotating answers, TTL 0–1)
 *   probes (fixtures/dns-probe.ts) as three uids       tcp/443, tcp/80 on every documentation address
 *
 * No timing decides anything: each step waits until every probe has done a
 * number of cycles more after the command returned.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import type { Started } from '../../src/kernel/exec.js';
import { dnsHostCommands, useDnsWorld } from './dns-env.js';
import { dnsPolicy, PROBE, REGISTER, UPSTREAMS, type Tally } from './dns-proof.js';
import { kernelDescribe, useKernel } from './harness.js';
import { until } from './lifecycle-env.js';

const USERS = [4_100_301, 4_100_302, 4_100_303];
const SVC_UID = USERS[2]!;
/** Cycles every probe does after each command returned, before the next step. */
const AFTER = 150;

const POLICY = dnsPolicy(SVC_UID, { ssh: false });
/** One more rule that names no host: a new ruleset, the same forwarder configuration. */
const CHANGED = dnsPolicy(SVC_UID, { ssh: true });

async function count(p: Started): Promise<number> {
  p.write('count\n');
  const l = await p.nextLine();
  const m = /^count (\d+)$/.exec(l);
  if (!m) throw new Error(`probe said ${JSON.stringify(l)}`);
  return Number(m[1]);
}

kernelDescribe('dns.proxy while apply and rollback replace the ruleset', () => {
  const env = useKernel();
  const world = useDnsWorld(env, 'dnsre', [443, 80]);

  interface Session {
    egress(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
    write(name: string, text: string): string;
    pid(): number;
    /** Start the probes and wait until each has done AFTER cycles. */
    startProbes(): Promise<void>;
    /** Run `step` (it must succeed), then wait until every probe has done AFTER cycles more than it had when `step` returned. */
    across(what: string, step: () => Promise<{ code: number; stderr: string; stdout: string }>): Promise<void>;
    /** Stop the probes; their tallies, logged as `what`. */
    stop(what: string): Promise<Tally[]>;
    nftOutput(): Promise<string>;
  }

  /** A host with its own state directory, probes as USERS asking through the redirect; removed at the end, also on failure. */
  async function withSession(fn: (s: Session) => Promise<void>): Promise<void> {
    const host = await env.world.addHost();
    const dir = mkdtempSync(join(tmpdir(), 'egress-dnsre-'));
    const stateDir = join(dir, 'state');
    const { egress } = dnsHostCommands(env, world.cli(), host.ns, stateDir, USERS[0]!);
    const probes: Started[] = [];
    const counts = async () => Promise.all(probes.map(count));
    try {
      await fn({
        egress,
        write: (name, text) => {
          const f = join(dir, name);
          writeFileSync(f, text);
          return f;
        },
        pid: () => (JSON.parse(readFileSync(join(stateDir, 'dns-forwarder.pid'), 'utf8')) as { pid: number }).pid,
        startProbes: async () => {
          const args = { workers: 6, never: [], servers: UPSTREAMS, svcUid: SVC_UID };
          for (const uid of USERS) probes.push(env.x.start(process.execPath, ['--import', REGISTER, PROBE, JSON.stringify(args)], { netns: host.ns, uid, gid: uid }));
          await until(async () => (await counts()).every((n) => n >= AFTER), 'the probes running', 100_000);
        },
        across: async (what, step) => {
          const r = await step();
          expect(r.code, `${what}: ${r.stderr}${r.stdout}`).toBe(0);
          const at = await counts();
          await until(async () => (await counts()).every((n, i) => n >= at[i]! + AFTER), `${AFTER} probe cycles after ${what}`, 100_000);
        },
        stop: async (what) => {
          for (const p of probes) p.write('stop\n');
          const tallies = await Promise.all(
            probes.map(async (p, i) => {
              let l = '';
              try {
                while (!l.startsWith('{')) l = await p.nextLine();
              } catch (e) {
                const r = await p.exited;
                throw new Error(`probe as uid ${USERS[i]} failed (${r.code}): ${(e as Error).message} ${r.stderr.slice(0, 800)}`);
              }
              return JSON.parse(l) as Tally;
            }),
          );
          const total = (f: (t: Tally) => number) => tallies.reduce((n, t) => n + f(t), 0);
          process.stderr.write(
            `dns-reapply kernel run (${what}): ${total((t) => t.cycles)} cycles, ${total((t) => t.connects)} connects, ${total((t) => t.falseDenials)} false denials ${JSON.stringify(tallies.flatMap((t) => t.falseDenialSamples))}, ` +
              `SERVFAIL ${total((t) => t.servfail)}, errors ${JSON.stringify(Object.assign({}, ...tallies.map((t) => t.otherErrors)))}, unlisted admits ${total((t) => t.unlistedAdmitted)}\n`,
          );
          return tallies;
        },
        nftOutput: async () => (await env.x.run('nft', ['list', 'chain', 'inet', 'egress', 'output'], { netns: host.ns })).stdout,
      });
    } finally {
      for (const p of probes) await p.stop();
      await egress(['remove']).catch(() => undefined);
      await host.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const total = (ts: Tally[], f: (t: Tally) => number) => ts.reduce((n, t) => n + f(t), 0);

  test('re-apply, apply of a changed policy and rollback mid-run: no connect to a told address blocked, no lookup failed, the forwarder kept', async () => {
    await withSession(async (s) => {
      const policy = s.write('policy.yaml', POLICY);
      const changed = s.write('changed.yaml', CHANGED);
      const first = await s.egress(['apply', policy]);
      expect(first.code, first.stderr + first.stdout).toBe(0);
      const forwarder = s.pid();
      await s.startProbes();
      // --reload: the same policy is otherwise nothing to change, and loads nothing.
      await s.across('apply of the same policy', () => s.egress(['apply', '--reload', policy]));
      expect(s.pid(), 'the same policy keeps the forwarder').toBe(forwarder);
      await s.across('apply of a changed policy', () => s.egress(['apply', changed]));
      expect(s.pid(), 'a rule without names keeps the forwarder').toBe(forwarder);
      expect(await s.nftOutput()).toMatch(/tcp dport 22/);
      await s.across('rollback', () => s.egress(['rollback']));
      expect(s.pid(), 'rollback keeps the forwarder').toBe(forwarder);
      expect(await s.nftOutput()).not.toMatch(/tcp dport 22/);
      const tallies = await s.stop('re-apply, changed, rollback');
      expect(total(tallies, (t) => t.cycles)).toBeGreaterThanOrEqual(4 * AFTER * USERS.length);
      expect(total(tallies, (t) => t.byFamily.AAAA)).toBeGreaterThan(0);
      expect(total(tallies, (t) => t.byFamily.A)).toBeGreaterThan(0);
      expect(total(tallies, (t) => t.ok)).toBeGreaterThan(0);
      expect(tallies.flatMap((t) => t.falseDenialSamples)).toEqual([]);
      expect(total(tallies, (t) => t.falseDenials)).toBe(0);
      expect(total(tallies, (t) => t.servfail)).toBe(0);
      expect(Object.assign({}, ...tallies.map((t) => t.otherErrors))).toEqual({});
      expect(total(tallies, (t) => t.unlistedAdmitted + t.wrongUserAdmitted + t.otherPortAdmitted)).toBe(0);
      expect(total(tallies, (t) => t.deniedNotRefused)).toBe(0);
    });
  }, 300_000);

  test('a change of the names restarts the forwarder: lookups meanwhile may fail (counted), a told address is never blocked, nothing unlisted admitted', async () => {
    await withSession(async (s) => {
      const policy = s.write('policy.yaml', POLICY);
      const more = s.write('more.yaml', POLICY.replace('big.allowed.test]', 'big.allowed.test, more.allowed.test]'));
      const first = await s.egress(['apply', policy]);
      expect(first.code, first.stderr + first.stdout).toBe(0);
      const forwarder = s.pid();
      await s.startProbes();
      await s.across('apply of a policy with one more name', () => s.egress(['apply', more]));
      expect(s.pid(), 'a new name restarts the forwarder').not.toBe(forwarder);
      const tallies = await s.stop('forwarder restarted');
      expect(total(tallies, (t) => t.cycles)).toBeGreaterThanOrEqual(2 * AFTER * USERS.length);
      // What the restart costs is lookups that fail or time out while no forwarder listens (the redirect stays:
      // fail closed); never a connect to an address a program was told, never an admit of an unlisted one.
      expect(tallies.flatMap((t) => t.falseDenialSamples)).toEqual([]);
      expect(total(tallies, (t) => t.falseDenials)).toBe(0);
      expect(total(tallies, (t) => t.unlistedAdmitted + t.wrongUserAdmitted + t.otherPortAdmitted)).toBe(0);
      expect(total(tallies, (t) => t.deniedNotRefused)).toBe(0);
    });
  }, 300_000);
});
