import { describe, expect, test } from 'vitest';
import { KernelLineParser } from '../logs/parse-kernel.js';
import { Deduper } from './dedupe.js';
import { Replayer } from './replay.js';
import { ACCOUNTS, loadText, NOW } from '../../test/helpers.js';
import { FWD_ICMP6, FWD_OTHER4, FWD_TCP4, FWD_TCP6, FWD_UDP4, iso, TCP4, TCP6, UDP4 } from '../../test/observe/lines.js';

const CANDIDATE = `
version: 1
mode: enforce
default: reject
allow:
  - name: dns
    reason: resolver
    to: [203.0.113.9]
    ports: [udp/53]
  - name: api
    reason: partner API for appuser
    user: appuser
    to: ["2001:db8::99"]
    ports: [tcp/443]
deny:
  - name: smtp
    reason: only the MTA
    ports: [tcp/25]
    except: { user: postfix }
`;

describe('replay', () => {
  test('recorded denials through a candidate: what it still denies (and by which rule), what it admits', async () => {
    const l = await loadText(CANDIDATE);
    const r = new Replayer(l.ir!, ACCOUNTS);
    const p = new KernelLineParser({ now: NOW.getTime() });
    const d = new Deduper();
    const lines = [
      iso(`EGRESS p:- ${UDP4}`), // now allowed by dns
      iso(`EGRESS p:- ${TCP6}`), // uid 1001 = appuser: allowed by api
      iso(`EGRESS p:- ${TCP6.replace('UID=1001 GID=1001', 'UID=33 GID=33').replace('SPT=40000', 'SPT=40001')}`), // www-data: still the default
      iso(`EGRESS d:smtp ${TCP4}`), // still smtp
      iso(`EGRESS d:smtp ${TCP4}`, '2026-11-23T09:14:43.000000+01:00'), // retransmission
    ];
    for (const line of lines) {
      const e = p.parseLine(line);
      if (e) r.add(e, d.isNew(e));
    }
    const { stats, summary } = r.finish(p.counts, {});
    expect(summary).toEqual({
      connections: 4,
      denied: 2,
      admitted: 2,
      admittedBy: [
        { rule: 'api', connections: 1 },
        { rule: 'dns', connections: 1 },
      ],
      unreadable: 0,
    });
    // Shown as stats shows it, with the candidate's verdict (enforce) and rules.
    expect(stats).toMatchObject({ connections: 2, packets: 3, denied: 2, wouldDeny: 0 });
    expect(stats.rules.map((x) => [x.rule ?? '(default)', x.connections, x.packets])).toEqual([
      ['smtp', 1, 2],
      ['(default)', 1, 1],
    ]);
  });
});

/** The candidate gets a forward scope: registry admits docker's image pulls, the rest of docker goes to forward.default. */
const FORWARD = (unlisted: string) => `
version: 1
mode: enforce
default: reject
forward:
  sources:
    docker: { interfaces: ["br-*"], networks: [198.51.100.0/28, "2001:db8:1::/64"] }
  default: drop
  unlisted: ${unlisted}
allow:
  - name: registry
    reason: image pulls
    from: [docker]
    to: [203.0.113.9, "2001:db8:2::9"]
    ports: [tcp/443]
  - name: host-https
    reason: the host's own updates
    to: [203.0.113.9]
    ports: [tcp/443]
`;

describe('replay of forwarded traffic (SPEC §6)', () => {
  // What a host without the forward scope's rules logged (audit mode, forward default and unlisted).
  const lines = [
    iso(`EGRESS p:- ${FWD_TCP4}`), // docker → registry: admitted by registry
    iso(`EGRESS p:- ${FWD_TCP6}`), // docker over IPv6 → registry: admitted
    iso(`EGRESS p:- ${FWD_UDP4}`), // docker → 203.0.113.53 udp/53: forward.default (drop)
    iso(`EGRESS p:- ${FWD_ICMP6}`), // docker ping: forward.default
    iso(`EGRESS u:- ${FWD_OTHER4}`), // tap-vm1: from no source
    iso(`EGRESS p:- ${TCP4.replace('DST=198.51.100.7', 'DST=203.0.113.9').replace('DPT=25', 'DPT=443')}`), // the host: host-https
  ];

  async function replay(unlisted: string) {
    const l = await loadText(FORWARD(unlisted));
    const r = new Replayer(l.ir!, ACCOUNTS);
    const p = new KernelLineParser({ now: NOW.getTime() });
    const d = new Deduper();
    for (const line of lines) {
      const e = p.parseLine(line)!;
      r.add(e, d.isNew(e));
    }
    return r.finish(p.counts, { forwardSources: l.ir!.forward!.sources });
  }

  test('forwarded events are decided as forwarded flows: from rules, forward.default, forward.unlisted', async () => {
    const { stats, summary } = await replay('warn');
    expect(summary).toEqual({
      connections: 6,
      denied: 2,
      admitted: 4,
      admittedBy: [
        { rule: 'registry', connections: 2 },
        { rule: '(unlisted: forward.unlisted warn)', connections: 1 },
        { rule: 'host-https', connections: 1 },
      ],
      unreadable: 0,
    });
    expect(stats).toMatchObject({ mode: 'unknown', denied: 2, forwarded: { connections: 2, denied: 2, unlisted: { denied: 0, passed: 0 } } });
    expect(stats.rules).toEqual([{ isDefault: true, verdict: 'denied', connections: 2, packets: 2, logged: '-', scope: 'forward' }]);
    expect(stats.forwarded!.sources.map((x) => [x.sources, x.addresses])).toEqual([[['docker'], ['198.51.100.3', '2001:db8:1::2']]]);
  });

  test('with unlisted: deny the flow from no source is denied as unlisted, not by the default', async () => {
    const { stats, summary } = await replay('deny');
    expect(summary).toMatchObject({ denied: 3, admitted: 3 });
    expect(stats.rules.find((r) => r.unlisted)).toEqual({ isDefault: false, unlisted: true, verdict: 'denied', connections: 1, packets: 1, logged: '-', scope: 'forward' });
    expect(stats.forwarded).toMatchObject({ unlisted: { denied: 1, passed: 0 }, sources: [{ sources: ['docker'] }, { sources: [], interfaces: ['tap-vm1'] }] });
  });

  test('without a forward scope nothing governs forwarded flows: all admitted, and said so', async () => {
    const l = await loadText(CANDIDATE);
    const r = new Replayer(l.ir!, ACCOUNTS);
    const p = new KernelLineParser({ now: NOW.getTime() });
    for (const line of lines.slice(0, 5)) r.add(p.parseLine(line)!, true);
    expect(r.finish(p.counts, {}).summary).toMatchObject({ denied: 0, admitted: 5, admittedBy: [{ rule: '(forwarded: the policy has no forward scope)', connections: 5 }] });
  });
});
