import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, test } from 'vitest';
import { fakeExecer } from '../kernel/exec.js';
import { addressesOf, askTcp, askUdp, FakeUpstream, FakeWriter, query, respond, a } from './dns.testkit.js';
import { closeOnSignals, configProblems, ForwarderConfigError, runForwarder, type RunningForwarder } from './run.js';
import type { ForwarderConfig } from './types.js';

const base = (port: number): ForwarderConfig => ({
  listen: [{ address: '127.0.0.1', port: 0 }],
  upstream: [{ address: '127.0.0.1', port }],
  graceSec: 60,
  minLifetimeSec: 10,
  holdMs: 1000,
  names: [{ pattern: '*.example.com', action: 'allow', rule: 'r', sets: { ipv4: 'r_4' } }],
  table: 'inet egress',
});

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

describe('runForwarder', () => {
  test('configProblems names what is unusable', () => {
    expect(configProblems(base(53))).toEqual([]);
    expect(configProblems({ ...base(53), upstream: [], listen: [] })).toEqual(['no listen address', 'no upstream server (dns.upstream, resolv.conf and systemd-resolved name none)']);
    expect(configProblems({ ...base(53), names: [{ pattern: 'a.*.example.com', action: 'allow', rule: 'r', sets: {} }] })[0]).toMatch(/a\.\*\.example\.com/);
  });

  test('refuses to start on a bad config, and when the listen address is taken', async () => {
    await expect(runForwarder({ ...base(53), upstream: [] }, { execer: fakeExecer(), writer: new FakeWriter() })).rejects.toThrow(ForwarderConfigError);
    const first = await runForwarder(base(53), { execer: fakeExecer(), writer: new FakeWriter(), uidOf: null });
    open.push(first);
    const taken = { ...base(53), listen: [{ address: '127.0.0.1', port: first.addresses().udp[0]!.port }] };
    await expect(runForwarder(taken, { execer: fakeExecer(), writer: new FakeWriter() })).rejects.toThrow(/EADDRINUSE/);
  });

  test('serves UDP and TCP, logs JSON lines through the sink, closes once', async () => {
    const up = await FakeUpstream.start((q) => respond(q, [a(q.questions![0]!.name, '192.0.2.5')]));
    open.push(up);
    const lines: string[] = [];
    const writer = new FakeWriter();
    const fwd = await runForwarder(base(up.port), { execer: fakeExecer(), writer, log: (l) => lines.push(l), uidOf: null });
    await fwd.ready;
    const { udp, tcp } = fwd.addresses();
    expect(addressesOf(await askUdp(udp[0]!.port, query('x.example.com')))).toEqual(['192.0.2.5']);
    expect((await askTcp(tcp[0]!.port, [query('y.example.com')])).map(addressesOf)).toEqual([['192.0.2.5']]);
    expect(lines.map((l) => JSON.parse(l) as { name: string }).map((r) => r.name)).toEqual(['x.example.com', 'y.example.com']);
    expect(fwd.counters().published).toBe(2);
    await Promise.all([fwd.close(), fwd.close()]);
    await expect(askUdp(udp[0]!.port, query('x.example.com'), '127.0.0.1', 200)).rejects.toThrow(/no UDP answer/);
  });

  test('the nft writer is spawned through the Execer, in the namespace given', async () => {
    const x = fakeExecer(() => ({ code: 127, stderr: 'no nft here' }));
    const fwd = await runForwarder(base(53), { execer: x, netns: 'egress-test-ns', uidOf: null });
    open.push(fwd);
    expect(x.calls[0]!.argv).toEqual(['ip', 'netns', 'exec', 'egress-test-ns', 'nft', '-i']);
  });

  test('closeOnSignals: SIGTERM closes, then exits 0', async () => {
    const proc = Object.assign(new EventEmitter(), { exit: (code: number) => exited.push(code) }) as unknown as NodeJS.Process;
    const exited: number[] = [];
    let closed = 0;
    const fwd = { close: async () => void closed++ } as unknown as RunningForwarder;
    closeOnSignals(fwd, proc);
    proc.emit('SIGTERM');
    await expect.poll(() => exited).toEqual([0]);
    expect(closed).toBe(1);
    expect(proc.listenerCount('SIGTERM')).toBe(0);
  });
});
