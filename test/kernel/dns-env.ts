/**
 * Shared set-up of kernel tests that run `dns.proxy` through the compiled
 * CLI (dns-lifecycle, dns-observe, dns-reapply): the CLI built once per
 * file, tcp/443 (or other ports) answered in the world, the fake authority (fixtures/dns-authority.ts) on 192.0.2.53 / 2001:db8::53,
 * and for a host namespace, `egress` and the resolve-and-connect probe.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import type { Started } from '../../src/kernel/exec.js';
import type { KernelEnv } from './harness.js';
import { startAuthority } from './dns-proof.js';
import { buildCli, ROOT } from './lifecycle-env.js';

const PROBE = join(ROOT, 'test', 'kernel', 'fixtures', 'dns-resolve-connect.mjs');

export interface ProbeResult {
  answered: string[];
  ok: number;
  failed: string[];
  errors: Record<string, string>;
  never: Record<string, string>;
}

/** Build the CLI, make the world answer on `tcp` and start the authority for the file (beforeAll), stop it after; returns the CLI's entry, known once beforeAll ran. */
export function useDnsWorld(env: KernelEnv, name: string, tcp: number[] = [443]): { cli: () => string } {
  let cli = '';
  let authority: Started | undefined;
  beforeAll(async () => {
    cli = buildCli(name);
    await env.world.listen({ tcp });
    authority = await startAuthority(env.x, env.world.ns);
  }, 180_000);
  afterAll(async () => {
    await authority?.stop();
  });
  return { cli: () => cli };
}

/** `egress ARGS` in the host namespace with its own state directory, and the probe as `uid` (names resolved through 192.0.2.53, then tcp/443 to each answer and to `never`). */
export function dnsHostCommands(env: KernelEnv, cli: string, ns: string, stateDir: string, uid: number) {
  return {
    egress: (args: string[]) => env.x.run(process.execPath, [cli, ...args], { netns: ns, env: { EGRESS_STATE_DIR: stateDir, EGRESS_WATCHDOG: 'process' }, timeoutMs: 120_000 }),
    probe: async (names: string[], never: string[] = []): Promise<ProbeResult> => {
      const r = await env.x.run(process.execPath, [PROBE, '192.0.2.53', JSON.stringify(names), JSON.stringify(never)], { netns: ns, uid, gid: uid, timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as ProbeResult;
    },
  };
}
