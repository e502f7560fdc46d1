import { describe, expect, test } from 'vitest';
import { fakeExecer } from './exec.js';
import { createNetns, IFNAME_MAX, ifName, ipBatch, netnsName, ownerPid, uniqueTag } from './netns.js';

describe('names', () => {
  test('tags carry the pid and are unique', () => {
    const tags = new Set(Array.from({ length: 50 }, uniqueTag));
    expect(tags.size).toBeGreaterThan(40);
    for (const t of tags) expect(ownerPid(netnsName(t, 'world'))).toBe(process.pid);
  });
  test('interface names fit IFNAMSIZ even for the largest pid and host index', () => {
    const tag = `${(4194304).toString(36)}ffff`;
    expect(ifName(tag, `h${(255).toString(36)}`).length).toBeLessThanOrEqual(IFNAME_MAX);
    expect(() => ifName(tag, 'toolongrole')).toThrow(/not a valid Linux interface name/);
  });
  test.each([
    [`egress-${(4194304).toString(36)}ab12-world`, 4194304],
    ['egress-1a3f0-h0', 1],
    ['docker-1', undefined],
    ['egress-notours', undefined],
    ['egress-apply1234-x', undefined],
  ])('ownerPid(%s)', (ns, pid) => {
    expect(ownerPid(ns)).toBe(pid);
  });
});

describe('createNetns', () => {
  test('adds the namespace, brings lo up, and deletes it', async () => {
    const x = fakeExecer();
    const del = await createNetns(x, 'egress-t-h0');
    await del();
    expect(x.calls.map((c) => c.argv.join(' '))).toEqual(['ip netns add egress-t-h0', 'ip -n egress-t-h0 link set lo up', 'ip netns del egress-t-h0']);
  });
  test('a failure after creation deletes it again', async () => {
    const x = fakeExecer((c) => (c.argv.includes('lo') ? { code: 2, stderr: 'RTNETLINK answers: nope' } : {}));
    await expect(createNetns(x, 'egress-t-h1')).rejects.toThrow(/RTNETLINK answers: nope/);
    expect(x.calls.at(-1)!.argv.join(' ')).toBe('ip netns del egress-t-h1');
  });
});

test('ipBatch sends one command per line to ip -batch', async () => {
  const x = fakeExecer();
  await ipBatch(x, 'n', ['link set lo up', 'route add local 192.0.2.0/24 dev lo']);
  expect(x.calls[0]!.argv).toEqual(['ip', '-n', 'n', '-batch', '-']);
  expect(x.calls[0]!.opts.input).toBe('link set lo up\nroute add local 192.0.2.0/24 dev lo\n');
});
