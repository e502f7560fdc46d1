/**
 * Shared by the DNS kernel proofs (dns-forwarder, dns-reapply): the policy
 * they compile, the fixtures they run and the tallies the probe prints.
 */
import { join } from 'node:path';
import type { Execer, Started } from '../../src/kernel/exec.js';
import { ROOT } from '../paths.js';

export const REGISTER = join(ROOT, 'test', 'kernel', 'fixtures', 'register-ts.mjs');
export const AUTHORITY = join(ROOT, 'test', 'kernel', 'fixtures', 'dns-authority.ts');
export const PROBE = join(ROOT, 'test', 'kernel', 'fixtures', 'dns-probe.ts');
/** Where the fake authority answers (fixtures/dns-authority.ts): the policy's upstreams, and what the probes ask. */
export const UPSTREAMS = ['192.0.2.53', '2001:db8::53'];

/**
 * Exact names, a wildcard matched at depths 1–3 (never its bare domain), a
 * CNAME (alias → edge.provider.test), a name answered only over TCP, a
 * 64-address name, one user's wildcard, deny names (exact and wildcard), and
 * with `ssh` an unrelated fixed-address rule on another port. Short
 * lifetimes, so an address answered earlier has mostly expired when the pool
 * hands it out again: each cycle's connects depend on that cycle's publish,
 * which is what the negative control needs to see.
 */
export function dnsPolicy(svcUid: number, opts: { ssh: boolean }): string {
  const ssh = opts.ssh ? '  - name: ssh\n    reason: an unrelated fixed address\n    to: [203.0.113.99]\n    ports: [tcp/22]\n' : '';
  return `version: 1
default: reject
dns:
  proxy: true
  upstream: [${UPSTREAMS.map((u) => JSON.stringify(u)).join(', ')}]
  grace: 0s
  min_lifetime: 1s
allow:
  - name: cdn
    reason: rotating CDN names
    to: ["*.cdn.allowed.test", rot.allowed.test, alias.allowed.test, tcp-only.allowed.test, big.allowed.test]
    ports: [tcp/443]
  - name: svc
    reason: one user's service
    user: ${svcUid}
    to: ["*.svc.allowed.test"]
    ports: [tcp/443]
${ssh}deny:
  - name: ads
    reason: refused at DNS
    to: [denied.test, "*.ads.allowed.test"]
`;
}

/** What fixtures/dns-probe.ts prints. */
export interface Tally {
  uid: number;
  cycles: number;
  byFamily: { A: number; AAAA: number };
  byServer: Record<string, number>;
  byDepth: Record<string, number>;
  connects: number;
  ok: number;
  falseDenials: number;
  falseDenialSamples: string[];
  unlistedAdmitted: number;
  unlistedRejected: number;
  unlistedSamples: string[];
  svcOk: number;
  wrongUserAdmitted: number;
  wrongUserRejected: number;
  otherPortAdmitted: number;
  otherPortRejected: number;
  refused: number;
  deniedNotRefused: number;
  servfail: number;
  tcpFallbacks: number;
  bigAnswers: number;
  cnameAnswers: number;
  otherErrors: Record<string, number>;
  answered: string[];
  never: { rejected: number; admitted: string[] };
  bypass: Record<string, string>;
}

/** Start the fake authority in the world namespace and wait for its `ready` (30 s at most); its stderr is in the error when it does not come. */
export async function startAuthority(x: Execer, worldNs: string): Promise<Started> {
  const s = x.start(process.execPath, ['--import', REGISTER, AUTHORITY], { netns: worldNs });
  let t: NodeJS.Timeout | undefined;
  try {
    const first = await Promise.race([s.nextLine(), new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error('fake authority: no line within 30000 ms')), 30_000)))]);
    if (first !== 'ready') throw new Error(`fake authority said ${JSON.stringify(first)}`);
  } catch (e) {
    const r = await s.stop();
    throw new Error(`${(e as Error).message}; stderr: ${r.stderr.slice(0, 500)}`);
  } finally {
    clearTimeout(t);
  }
  return s;
}
