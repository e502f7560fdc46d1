/**
 * `egress status` per-rule counters against the kernel's own listing, in a
 * throwaway namespace: a policy applied, 3 UDP datagrams sent that one allow
 * rule admits and 2 that a deny rule rejects (out one end of a veth pair toward
 * 192.0.2.0/24, where nothing answers), then status --json, the kernel's
 * listing (nft: the rule's named counter; iptables: iptables-save -c) and the
 * Prometheus export must all say the same numbers.
 */
import { afterEach, expect, test } from 'vitest';
import { realExecer } from '../../src/kernel/exec.js';
import type { Status } from '../../src/kernel/status.js';
import { kernelDescribe, useRootGuard } from './harness.js';
import { useCli } from './forward-env.js';
import { lcEnv, type Lc } from './lifecycle-env.js';
import { resultOf } from '../json.js';

const x = realExecer();
const POLICY = `version: 1
default: reject
allow:
  - name: dns
    reason: the resolver
    to: [192.0.2.80]
    ports: [udp/53]
deny:
  - name: blocked
    reason: not there
    to: [192.0.2.81]
`;
const open: Lc[] = [];

kernelDescribe('status: per-rule counters are the kernel\'s (kernel)', () => {
  useRootGuard(x);
  const cli = useCli('status');
  afterEach(async () => {
    for (const lc of open.splice(0)) await lc.close();
  }, 60_000);

  test.each(['nft', 'iptables'] as const)('%s', async (b) => {
    const lc = await lcEnv(x, cli.path);
    open.push(lc);
    for (const argv of [['ip', 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'], ['ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'v0'], ['ip', 'link', 'set', 'v1', 'up'], ['ip', 'link', 'set', 'v0', 'up'], ['ip', 'link', 'set', 'lo', 'up']]) {
      const r = await lc.sh(argv);
      expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
    }
    const policy = lc.write('policy.yaml', POLICY);
    const applied = await lc.egress(['apply', '--backend', b, policy]);
    expect(applied.code, applied.stderr).toBe(0);
    const send = (dst: string, port: number, n: number) => lc.sh(['bash', '-c', `for i in $(seq ${n}); do echo x > /dev/udp/${dst}/${port}; done; true`]);
    await send('192.0.2.80', 53, 3);
    await send('192.0.2.81', 9, 2);

    const r = await lc.egress(['status', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const st = resultOf(r.stdout, 'status', r.code);
    const of = (rule: string) => st.counters.filter((c) => c.rule === rule && c.family === 'ipv4');
    const rules = (name: string) => st.rules!.find((x) => x.rule === name)!;
    expect(of('dns').map((c) => c.packets)).toEqual([3]);
    expect(of('blocked').map((c) => c.packets)).toEqual([2]);
    expect(rules('dns')).toMatchObject({ action: 'allow', packets: 3, bytes: of('dns')[0]!.bytes });
    expect(rules('blocked')).toMatchObject({ action: 'deny', packets: 2, logs: true });

    // The kernel's own listing.
    const kernel = async (rule: string, action: 'allow' | 'deny'): Promise<{ packets: number; bytes: number }> => {
      if (b === 'nft') {
        const l = await lc.sh(['nft', '-j', 'list', 'counter', 'inet', 'egress', `${action}_${rule}_v4`]);
        expect(l.code, l.stderr).toBe(0);
        const c = (JSON.parse(l.stdout) as { nftables: { counter?: { packets: number; bytes: number } }[] }).nftables.find((o) => o.counter)!.counter!;
        return { packets: c.packets, bytes: c.bytes };
      }
      const l = await lc.sh(['iptables-save', '-c', '-t', 'filter']);
      let packets = 0;
      let bytes = 0;
      // The rule's match in the EGRESS chain itself (its own chain, when it has one, only logs and rejects what this sent there).
      for (const m of l.stdout.matchAll(/^\[(\d+):(\d+)\] -A EGRESS .*--comment "([^":]+)/gm)) {
        if (m[3] !== rule) continue;
        packets += Number(m[1]);
        bytes += Number(m[2]);
      }
      return { packets, bytes };
    };
    for (const [rule, action] of [['dns', 'allow'], ['blocked', 'deny']] as const) {
      const k = await kernel(rule, action);
      expect({ packets: of(rule)[0]!.packets, bytes: of(rule)[0]!.bytes }, `${b} ${rule}`).toEqual(k);
    }

    // The Prometheus export carries the same numbers.
    const prom = await lc.egress(['stats', '--prometheus', lc.write('empty.log', '')]);
    expect(prom.code, prom.stderr).toBe(0);
    expect(prom.stdout).toContain(`egress_rule_packets_total{action="allow",family="ipv4",rule="dns",scope="host"} 3\n`);
    expect(prom.stdout).toContain(`egress_rule_packets_total{action="deny",family="ipv4",rule="blocked",scope="host"} 2\n`);
    expect(prom.stdout).toContain(`egress_policy_info{backend="${b}",hash="${st.policyHash}",mode="enforce"} 1\n`);
    expect(prom.stdout).toContain('egress_drift 0\n');
  }, 60_000);
});
