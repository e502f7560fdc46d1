/**
 * netfilter logs from a network namespace other than the initial one only
 * with `net.netfilter.nf_log_all_netns = 1`: a sysctl of the root namespace,
 * not a firewall change. Set for the file that calls this (beforeAll) and
 * restored afterwards. The lines land in the host's shared ring buffer, so a
 * test should log with a prefix of its own and read only that.
 */
import { afterAll, beforeAll } from 'vitest';
import type { KernelEnv } from './harness.js';

const SYSCTL = 'net.netfilter.nf_log_all_netns';

export function useLogAllNetns(env: Pick<KernelEnv, 'x'>): void {
  let before: string | undefined;
  beforeAll(async () => {
    const r = await env.x.run('sysctl', ['-n', SYSCTL]);
    if (r.code !== 0) throw new Error(`cannot read ${SYSCTL}: ${r.stderr.trim()} (this test needs netfilter logging)`);
    before = r.stdout.trim();
    if (before !== '1') {
      const w = await env.x.run('sysctl', ['-q', '-w', `${SYSCTL}=1`]);
      if (w.code !== 0) throw new Error(`cannot set ${SYSCTL}=1: ${w.stderr.trim()}`);
    }
  });
  afterAll(async () => {
    if (before !== undefined && before !== '1') await env.x.run('sysctl', ['-q', '-w', `${SYSCTL}=${before}`]);
  });
}
