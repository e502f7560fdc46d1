/**
 * `dns.proxy` under load while the ruleset is replaced, through the shipped
 * CLI, with the kernel as the oracle: resolve-then-connect loops run as three
 * uids, in both families, while `egress apply` loads the same policy again,
 * then a changed policy (one more rule that names no host: the forwarder's
 * configuration is unchanged, so the forwarder is kept), then `egress
 * rollback` puts the first one back. Every load replaces the table; the
 * elements the forwarder published must survive each one, including those it
 * publishes while apply runs. Counted: connects blocked to addresses the
 * program was just told, lookups that failed, SERVFAILs. All must be zero.
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
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Started } from '../../src/kernel/exec.js';
import { AUTHORITY, dnsPolicy, PROBE, REGISTER, UPSTREAMS, type Tally } from './dns-proof.js';
import { kernelDescribe, useKernel } from './harness.js';
import { buildCli, until } from './lifecycle-env.js';

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
  let cli = '';
  let authority: Started | undefined;
  beforeAll(async () => {
    cli = buildCli('dnsre');
    await env.world.listen({ tcp: [443, 80] });
    authority = env.x.start(process.execPath, ['--import', REGISTER, AUTHORITY], { netns: env.world.ns });
    expect(await authority.nextLine()).toBe('ready');
  }, 180_000);
  afterAll(async () => {
    await authority?.stop();
  });

  test('re-apply, apply of a changed policy and rollback mid-run: no connect to a told address blocked, no lookup failed, the forwarder kept', async () => {
    const host = await env.world.addHost();
    const dir = mkdtempSync(join(tmpdir(), 'egress-dnsre-'));
    const stateDir = join(dir, 'state');
    const egress = (args: string[]) => env.x.run(process.execPath, [cli, ...args], { netns: host.ns, env: { EGRESS_STATE_DIR: stateDir, EGRESS_WATCHDOG: 'process' }, timeoutMs: 120_000 });
    const pid = () => (JSON.parse(readFileSync(join(stateDir, 'dns-forwarder.pid'), 'utf8')) as { pid: number }).pid;
    const probes: Started[] = [];
    try {
      const policy = join(dir, 'policy.yaml');
      const changed = join(dir, 'changed.yaml');
      writeFileSync(policy, POLICY);
      writeFileSync(changed, CHANGED);
      const first = await egress(['apply', policy]);
      expect(first.code, first.stderr + first.stdout).toBe(0);
      const forwarder = pid();

      const args = { workers: 6, never: [], servers: UPSTREAMS, svcUid: SVC_UID };
      for (const uid of USERS) probes.push(env.x.start(process.execPath, ['--import', REGISTER, PROBE, JSON.stringify(args)], { netns: host.ns, uid, gid: uid }));
      const counts = async () => Promise.all(probes.map(count));
      /** Wait until every probe has done AFTER cycles more than it had when `step` returned. */
      const across = async (what: string, step: () => Promise<{ code: number; stderr: string; stdout: string }>) => {
        const r = await step();
        expect(r.code, `${what}: ${r.stderr}${r.stdout}`).toBe(0);
        const at = await counts();
        await until(async () => (await counts()).every((n, i) => n >= at[i]! + AFTER), `${AFTER} probe cycles after ${what}`, 100_000);
        expect(pid(), `${what} kept the forwarder`).toBe(forwarder);
      };
      await until(async () => (await counts()).every((n) => n >= AFTER), 'the probes running', 100_000);
      await across('apply of the same policy', () => egress(['apply', policy]));
      await across('apply of a changed policy', () => egress(['apply', changed]));
      expect((await env.x.run('nft', ['list', 'chain', 'inet', 'egress', 'output'], { netns: host.ns })).stdout).toMatch(/tcp dport 22/);
      await across('rollback', () => egress(['rollback']));
      expect((await env.x.run('nft', ['list', 'chain', 'inet', 'egress', 'output'], { netns: host.ns })).stdout).not.toMatch(/tcp dport 22/);

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
        `dns-reapply kernel run: ${total((t) => t.cycles)} cycles, ${total((t) => t.connects)} connects, ${total((t) => t.falseDenials)} false denials ${JSON.stringify(tallies.flatMap((t) => t.falseDenialSamples))}, ` +
          `SERVFAIL ${total((t) => t.servfail)}, errors ${JSON.stringify(Object.assign({}, ...tallies.map((t) => t.otherErrors)))}, unlisted admits ${total((t) => t.unlistedAdmitted)}\n`,
      );
      expect(total((t) => t.cycles)).toBeGreaterThanOrEqual(4 * AFTER * USERS.length);
      expect(total((t) => t.byFamily.AAAA)).toBeGreaterThan(0);
      expect(total((t) => t.byFamily.A)).toBeGreaterThan(0);
      expect(total((t) => t.ok)).toBeGreaterThan(0);
      expect(tallies.flatMap((t) => t.falseDenialSamples)).toEqual([]);
      expect(total((t) => t.falseDenials)).toBe(0);
      expect(total((t) => t.servfail)).toBe(0);
      expect(Object.assign({}, ...tallies.map((t) => t.otherErrors))).toEqual({});
      expect(total((t) => t.unlistedAdmitted + t.wrongUserAdmitted + t.otherPortAdmitted)).toBe(0);
      expect(total((t) => t.deniedNotRefused)).toBe(0);
    } finally {
      for (const p of probes) await p.stop();
      await egress(['remove']).catch(() => undefined);
      await host.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
