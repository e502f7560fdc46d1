/**
 * The seed policies in examples/, compiled by each backend, loaded into a
 * namespace and probed with real sockets: each flow gets the verdict written
 * here by hand AND the verdict explain gives (the two must agree too), and
 * every reject has the SPEC §2 form (TCP reset for TCP, admin-prohibited
 * otherwise).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { loadPolicyText } from '../../src/index.js';
import { LINUX_TARGETS } from '../../src/backends/types.js';
import { rejectForm, specRejectForm, probeText, type Probe } from '../../src/lab/probe.js';
import type { Verdict } from '../../src/policy/types.js';
import { ACCOUNTS, fixedResolver, NOW } from '../helpers.js';
import { kernelDescribe, probePolicy, useKernel } from './harness.js';
import { ROOT } from '../paths.js';

const EXAMPLES = join(ROOT, 'examples');

const uidOf = (name: string) => {
  const uid = ACCOUNTS.users.get(name);
  if (uid === undefined) throw new Error(`no test account ${name}`);
  return { uid, gid: ACCOUNTS.primaryGroup.get(uid) ?? uid };
};

type Case = [proto: Probe['proto'], dst: string, port: number | undefined, user: string, want: Verdict];

const SCENARIOS: { file: string; hosts?: Record<string, { ipv4?: string[]; ipv6?: string[] }>; flows: Case[] }[] = [
  {
    file: 'apt-only.yaml',
    // The mirror names pinned to documentation addresses through the fixed resolver.
    hosts: {
      'security.ubuntu.com': { ipv4: ['203.0.113.91', '203.0.113.92'], ipv6: ['2001:db8:91::1'] },
      'us.archive.ubuntu.com': { ipv4: ['203.0.113.93'], ipv6: ['2001:db8:93::1', '2001:db8:93::2'] },
    },
    flows: [
      ['tcp', '203.0.113.91', 443, 'root', 'accept'],
      ['tcp', '203.0.113.93', 80, 'www-data', 'accept'],
      ['tcp', '2001:db8:93::2', 443, 'root', 'accept'],
      ['tcp', '2001:db8:91::1', 80, 'root', 'accept'],
      ['tcp', '203.0.113.91', 22, 'root', 'reject'],
      ['tcp', '203.0.113.94', 443, 'root', 'reject'],
      ['tcp', '2001:db8:93::3', 443, 'root', 'reject'],
      ['udp', '203.0.113.91', 443, 'root', 'reject'],
      ['udp', '192.0.2.53', 53, 'root', 'accept'],
      ['tcp', '2001:db8::53', 53, 'www-data', 'accept'],
      ['udp', '192.0.2.54', 53, 'root', 'reject'],
      ['udp', '2001:db8::54', 53, 'root', 'reject'],
      ['udp', '198.51.100.1', 123, 'systemd-timesync', 'accept'],
      ['udp', '2001:db8::123', 123, 'systemd-timesync', 'accept'],
      ['udp', '198.51.100.1', 123, 'root', 'reject'],
      ['udp', '2001:db8::123', 123, 'www-data', 'reject'],
      ['icmp', '198.51.100.1', undefined, 'www-data', 'accept'],
      ['icmp', '2001:db8::1', undefined, 'root', 'accept'],
    ],
  },
  {
    file: 'nftables-design.yaml',
    flows: [
      ['udp', '192.0.2.10', 53, 'root', 'accept'],
      ['udp', '2001:db8:a::10', 53, 'root', 'accept'],
      ['tcp', '192.0.2.10', 53, 'root', 'drop'],
      ['udp', '192.0.2.11', 53, 'root', 'drop'],
      ['udp', '192.0.2.20', 123, 'root', 'accept'],
      ['udp', '2001:db8:a::20', 123, 'www-data', 'accept'],
      ['tcp', '203.0.113.40', 443, 'root', 'accept'],
      ['tcp', '192.0.2.10', 9418, 'root', 'accept'],
      ['tcp', '2001:db8:a::40', 9418, 'www-data', 'accept'],
      ['tcp', '203.0.113.40', 80, 'root', 'drop'],
      // The per-user rule: only appuser reaches the partner API.
      ['tcp', '198.51.100.40', 443, 'appuser', 'accept'],
      ['tcp', '2001:db8:b::40', 443, 'appuser', 'accept'],
      ['tcp', '198.51.100.40', 443, 'root', 'drop'],
      ['tcp', '2001:db8:b::40', 443, 'www-data', 'drop'],
      ['tcp', '198.51.100.40', 444, 'appuser', 'drop'],
      ['icmp', '192.0.2.10', undefined, 'root', 'drop'],
      ['icmp', '2001:db8:a::10', undefined, 'root', 'drop'],
    ],
  },
  {
    file: 'postfix-only-smtp.yaml',
    flows: [
      ['tcp', '198.51.100.25', 25, 'www-data', 'reject'],
      // The seed's bug: IPv4-only rules left port 25 open over IPv6.
      ['tcp', '2001:db8::25', 25, 'www-data', 'reject'],
      ['tcp', '2001:db8::25', 465, 'www-data', 'reject'],
      ['tcp', '2001:db8::25', 587, 'root', 'reject'],
      ['tcp', '198.51.100.25', 25, 'postfix', 'accept'],
      ['tcp', '2001:db8::25', 25, 'postfix', 'accept'],
      ['tcp', '2001:db8::25', 587, 'postfix', 'accept'],
      ['tcp', '2001:db8::25', 443, 'www-data', 'accept'],
      ['tcp', '198.51.100.25', 26, 'www-data', 'accept'],
      ['udp', '2001:db8::25', 25, 'www-data', 'accept'],
      ['icmp', '198.51.100.25', undefined, 'www-data', 'accept'],
    ],
  },
];

kernelDescribe('examples against the kernel', () => {
  const env = useKernel();

  for (const s of SCENARIOS)
    test.each(LINUX_TARGETS.map((t) => [t]))(`${s.file} on %s`, async (target) => {
      const l = await loadPolicyText(`examples/${s.file}`, readFileSync(join(EXAMPLES, s.file), 'utf8'), { resolver: fixedResolver(s.hosts ?? {}), now: NOW });
      const probes = s.flows.map(([proto, dst, port, user]): Probe => ({ proto, dst, ...(port !== undefined ? { port } : {}), ...uidOf(user) }));
      const cs = await probePolicy(env, l, target, probes, ACCOUNTS);
      const lines = (f: (c: (typeof cs)[number], i: number) => string) => cs.map(f);
      const show = (c: (typeof cs)[number], i: number) => `${probeText(c.result.probe, { user: s.flows[i]![3] })}: `;
      // Hand-written expectation, explain, and the kernel, side by side.
      expect(lines((c, i) => `${show(c, i)}kernel ${c.kernel} (${c.result.detail})`)).toEqual(lines((c, i) => `${show(c, i)}kernel ${s.flows[i]![4]} (${c.result.detail})`));
      expect(lines((c, i) => `${show(c, i)}explain ${c.expected}`)).toEqual(lines((c, i) => `${show(c, i)}explain ${s.flows[i]![4]}`));
      const rejects = cs.filter((c) => c.kernel === 'reject');
      expect(rejects.map((c) => `${probeText(c.result.probe)}: ${rejectForm(c.result)}`)).toEqual(rejects.map((c) => `${probeText(c.result.probe)}: ${specRejectForm(c.result.probe)}`));
    });
});
