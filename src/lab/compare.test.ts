import { describe, expect, test } from 'vitest';
import { ACCOUNTS, NOW } from '../../test/helpers.js';
import { loadPolicyText } from '../index.js';
import { fakeExecer } from '../kernel/exec.js';
import { compareOne, compareProbes, oracleFor } from './compare.js';
import type { Probe } from './probe.js';

const POLICY = 'version: 1\ndefault: drop\nallow:\n  - name: web\n    reason: r\n    to: [192.0.2.0/24]\n    ports: [tcp/443]\n';
const probes: Probe[] = [
  { proto: 'tcp', dst: '192.0.2.1', port: 443, uid: 0, gid: 0 },
  { proto: 'tcp', dst: '198.51.100.1', port: 443, uid: 0, gid: 0 },
];

/** A prober that answers each call from the script: outcome per probe id, in call order. */
function prober(script: ('accepted' | 'dropped')[][]) {
  let call = 0;
  return fakeExecer((c) => {
    const req = JSON.parse(c.opts.input as string) as { timeoutMs: number; probes: { id: number }[] };
    const outcomes = script[call++]!;
    return { stdout: JSON.stringify(req.probes.map((p, k) => ({ id: p.id, outcome: outcomes[k], detail: outcomes[k] === 'dropped' ? 'timeout' : 'connected' }))) };
  });
}

describe('compareProbes', () => {
  test('a drop where explain expects accept is looked at again with a longer timeout; the second look decides', async () => {
    const l = await loadPolicyText('p.yaml', POLICY, { now: NOW });
    const x = prober([['dropped', 'dropped'], ['accepted']]);
    const cs = await compareProbes(x, 'ns', l.ir!, probes, ACCOUNTS, { timeoutMs: 400 });
    expect(cs.map((c) => [c.kernel, c.expected, c.agree])).toEqual([['accept', 'accept', true], ['drop', 'drop', true]]);
    const inputs = x.calls.map((c) => JSON.parse(c.opts.input as string) as { timeoutMs: number; probes: unknown[] });
    expect(inputs.map((i) => [i.timeoutMs, i.probes.length])).toEqual([[400, 2], [3200, 1]]);
  });

  test('a drop confirmed by the second look stays a disagreement', async () => {
    const l = await loadPolicyText('p.yaml', POLICY, { now: NOW });
    const x = prober([['dropped', 'dropped'], ['dropped']]);
    const cs = await compareProbes(x, 'ns', l.ir!, probes, ACCOUNTS, { timeoutMs: 400 });
    expect(cs.map((c) => c.agree)).toEqual([false, true]);
  });

  test('nothing is probed twice when the kernel agrees', async () => {
    const l = await loadPolicyText('p.yaml', POLICY, { now: NOW });
    const x = prober([['accepted', 'dropped']]);
    const cs = await compareProbes(x, 'ns', l.ir!, probes, ACCOUNTS);
    expect(cs.every((c) => c.agree)).toBe(true);
    expect(x.calls).toHaveLength(1);
  });
});

describe('oracleFor: name probes, as explain --to NAME judges them', () => {
  const DNS = 'version: 1\ndefault: reject\ndns:\n  proxy: true\nallow:\n  - name: cdn\n    reason: r\n    to: ["*.cdn.example.com"]\n    ports: [tcp/443]\ndeny:\n  - name: ads\n    reason: r\n    to: [ads.example.org]\n';
  const result = (name: string, dst: string, answered: string[], outcome: 'accepted' | 'rejected' | 'refused' = 'accepted') => ({
    probe: { proto: 'tcp' as const, dst, port: 443, uid: 0, gid: 0, name },
    outcome,
    detail: '',
    answered,
  });

  test('a name an allow rule covers: accepted, with the answered addresses published into its set', async () => {
    const l = await loadPolicyText('p.yaml', DNS, { now: NOW });
    const o = oracleFor(l.ir!, ACCOUNTS);
    const c = compareOne(o, result('a.cdn.example.com', '198.51.100.7', ['198.51.100.7', '198.51.100.8']));
    expect([c.expected, c.decision.step, c.decision.rules.map((r) => r.name), c.agree]).toEqual(['accept', 'allow', ['cdn'], true]);
    // The same address as a plain flow, or on another port: nothing was published for it there.
    expect(compareOne(o, { ...result('a.cdn.example.com', '198.51.100.7', []), probe: { proto: 'tcp', dst: '198.51.100.7', port: 443, uid: 0, gid: 0 } }).expected).toBe('reject');
    expect(compareOne(o, { ...result('a.cdn.example.com', '198.51.100.7', ['198.51.100.7']), probe: { proto: 'tcp', dst: '198.51.100.7', port: 444, uid: 0, gid: 0, name: 'a.cdn.example.com' } }).expected).toBe('reject');
  });

  test('the bare domain and unlisted names are forwarded: the plain verdict; a deny name must be refused', async () => {
    const l = await loadPolicyText('p.yaml', DNS, { now: NOW });
    const o = oracleFor(l.ir!, ACCOUNTS);
    expect(compareOne(o, result('cdn.example.com', '198.51.100.9', ['198.51.100.9'], 'rejected')).agree).toBe(true);
    const refused = compareOne(o, result('ads.example.org', '198.51.100.10', [], 'refused'));
    expect([refused.expected, refused.kernel, refused.decision.step, refused.agree]).toEqual(['refused', 'refused', 'deny', true]);
    // Answered (not refused) and let through: a disagreement, whatever the connect did.
    expect(compareOne(o, result('ads.example.org', '198.51.100.10', ['198.51.100.10'], 'rejected')).agree).toBe(false);
  });
});

describe('oracleFor: forwarded probes, as explain --from SRC --in IF --via UPLINK judges them', () => {
  const FWD =
    'version: 1\ndefault: reject\nforward:\n  sources:\n    docker: { interfaces: ["br-*"], networks: [198.51.100.0/26] }\n  unlisted: deny\nallow:\n  - name: reg\n    reason: r\n    from: [docker]\n    to: [192.0.2.10]\n    ports: [tcp/443]\n';
  const result = (from: Probe['from'], dst = '192.0.2.10') => ({ probe: { proto: 'tcp' as const, dst, port: 443, uid: 0, gid: 0, from }, outcome: 'accepted' as const, detail: 'connected' });

  test('the sources are worked out from the address and interface, never from the label', async () => {
    const l = await loadPolicyText('p.yaml', FWD, { now: NOW });
    const o = oracleFor(l.ir!, ACCOUNTS, { via: 'eg0h0' });
    const d = (from: Probe['from'], dst?: string) => {
      const { decision } = o(result(from, dst));
      return [decision.step, decision.verdict, decision.sources];
    };
    expect(d({ source: 'docker', src: '198.51.100.1', in: 'br-lab0' })).toEqual(['allow', 'accept', ['docker']]);
    expect(d({ source: 'docker', src: '198.51.100.1', in: 'br-lab0' }, '192.0.2.11')).toEqual(['default', 'reject', ['docker']]);
    // The label says docker, the interface does not: unlisted, as the kernel would see it.
    expect(d({ source: 'docker', src: '198.51.100.1', in: 'eth9' })).toEqual(['unlisted', 'reject', []]);
    expect(d({ src: '198.51.100.100', in: 'br-lab0' })).toEqual(['unlisted', 'reject', []]);
  });

  test('leaving through a source interface is into the source, not egress', async () => {
    const l = await loadPolicyText('p.yaml', FWD, { now: NOW });
    const { decision } = oracleFor(l.ir!, ACCOUNTS, { via: 'br-out' })(result({ src: '198.51.100.1', in: 'br-lab0' }, '192.0.2.11'));
    expect([decision.step, decision.builtin]).toEqual(['builtin', 'into_source']);
  });
});
