import { describe, expect, test } from 'vitest';
import { ACCOUNTS, loadText } from '../../test/helpers.js';
import { planProbes, spareAddresses } from './probes.js';

async function plan(yaml: string, named: { uid: number; gid: number }[] = []) {
  const l = await loadText(yaml);
  if (!l.ir) throw new Error(l.diagnostics.map((d) => d.message).join('\n'));
  const p = planProbes(l.ir, ACCOUNTS, named);
  return { ...p, lines: p.probes.map((x) => `${x.rule} ${x.why} ${x.probe.proto}${x.probe.port ? `/${x.probe.port}` : ''} ${x.probe.dst} ${x.probe.uid}:${x.probe.gid}`) };
}

describe('planProbes', () => {
  test('an allow: its ends, the neighbouring addresses and ports', async () => {
    const p = await plan('version: 1\nallow:\n  - name: dns\n    reason: r\n    to: [192.0.2.53]\n    ports: [udp/53]\n');
    expect(p.lines).toEqual([
      'dns allow udp/53 192.0.2.53 0:0',
      'dns around udp/53 192.0.2.52 0:0',
      'dns around udp/53 192.0.2.54 0:0',
      'dns around udp/52 192.0.2.53 0:0',
      'dns around udp/54 192.0.2.53 0:0',
    ]);
  });

  test('ranges: both ends, and neighbours only outside the rule', async () => {
    const p = await plan('version: 1\nallow:\n  - name: web\n    reason: r\n    to: ["2001:db8::/127"]\n    ports: [tcp/80-81]\n');
    expect(p.lines).toEqual([
      'web allow tcp/80 2001:db8:: 0:0',
      'web allow tcp/81 2001:db8:: 0:0',
      'web allow tcp/80 2001:db8::1 0:0',
      'web allow tcp/81 2001:db8::1 0:0',
      'web around tcp/80 2001:db8::2 0:0',
      'web around tcp/79 2001:db8:: 0:0',
      'web around tcp/82 2001:db8:: 0:0',
    ]);
  });

  test('a user rule is probed as its user, and as someone else around it', async () => {
    const p = await plan('version: 1\nallow:\n  - name: mail\n    reason: r\n    user: postfix\n    to: [198.51.100.25]\n    ports: [tcp/25]\n');
    expect(p.lines).toContain('mail allow tcp/25 198.51.100.25 107:114');
    expect(p.lines).toContain('mail around tcp/25 198.51.100.25 0:0');
  });

  test('a deny without destination goes to a spare address; its except as the exempt user; named users too', async () => {
    const p = await plan('version: 1\ndefault: accept\ndeny:\n  - name: smtp\n    reason: r\n    ports: [tcp/25]\n    except: { user: postfix }\n', [{ uid: 33, gid: 33 }]);
    expect(p.lines).toEqual([
      'smtp deny tcp/25 203.0.113.254 0:0',
      'smtp except tcp/25 203.0.113.254 107:114',
      'smtp deny tcp/25 203.0.113.254 33:33',
      'smtp deny tcp/25 2001:db8:ffff:ffff:ffff:ffff:ffff:fffe 0:0',
      'smtp except tcp/25 2001:db8:ffff:ffff:ffff:ffff:ffff:fffe 107:114',
      'smtp deny tcp/25 2001:db8:ffff:ffff:ffff:ffff:ffff:fffe 33:33',
    ]);
  });

  test('what cannot be probed is listed with the reason', async () => {
    const p = await plan(
      'version: 1\nallow:\n  - name: x\n    reason: r\n    to: [10.0.0.1, 192.0.2.1]\n    ports: [sctp/9, tcp/1]\n  - name: i\n    reason: r\n    icmp: [echo-request, time-exceeded]\ndeny:\n  - name: metadata\n    reason: r\n    to: [169.254.169.254]\n',
    );
    expect(p.notProbed).toEqual([
      { rule: 'metadata', what: '169.254.169.254', why: 'outside documentation ranges' },
      { rule: 'i', what: 'icmp time-exceeded', why: 'only echo-request can be probed' },
      { rule: 'i', what: 'icmp time-exceeded', why: 'only echo-request can be probed' },
      { rule: 'x', what: '10.0.0.1', why: 'outside documentation ranges' },
      { rule: 'x', what: 'sctp 9', why: 'SCTP cannot be probed (no SCTP sockets in node)' },
    ].filter((n, i, a) => a.findIndex((m) => JSON.stringify(m) === JSON.stringify(n)) === i));
    expect(p.lines).toContain('x allow tcp/1 192.0.2.1 0:0');
    expect(p.lines).toContain('i allow icmp 203.0.113.254 0:0');
  });

  test('spare addresses avoid every destination the policy names', async () => {
    const l = await loadText('version: 1\nallow:\n  - name: x\n    reason: r\n    to: [203.0.113.254, "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe"]\n');
    const s = spareAddresses(l.ir!);
    expect([s.ipv4, s.ipv6]).toEqual([0xcb0071fdn, 0x20010db8fffffffffffffffffffffffdn]);
  });
});
