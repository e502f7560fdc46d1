import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { Artifact } from '../backends/types.js';
import { liveFingerprint } from '../plan/diff.js';
import type { LinuxTarget } from '../backends/types.js';
import { FakeCrash, FakeKernel } from './fake-kernel.testkit.js';
import { ROOT } from '../../test/paths.js';

const golden = (b: LinuxTarget): Artifact => ({
  text: readFileSync(join(ROOT, 'test', 'golden', 'cases', 'everything', `${b}.txt`), 'utf8'),
  lineMap: new Map(),
});
const FOREIGN_NFT = 'table inet foreign {\n\tchain out {\n\t\ttype filter hook output priority 10; policy accept;\n\t\tip daddr 192.0.2.9 accept comment "not egress"\n\t}\n}\n';
const FOREIGN_IPT = '*filter\n:FOREIGN - [0:0]\n-A FOREIGN -m comment --comment "not egress" -j RETURN\n-A OUTPUT -j FOREIGN\nCOMMIT\n';

function withForeign(): FakeKernel {
  const k = new FakeKernel();
  k.runNft(FOREIGN_NFT);
  for (const f of ['ipv4', 'ipv6'] as const) k.restoreIptables(f, FOREIGN_IPT);
  return k;
}

describe('fake kernel', () => {
  test.each(['nft', 'iptables'] as const)('%s: what a load leaves live lists as its canonical form, a second load changes nothing, and removal leaves foreign objects alone', async (b) => {
    const k = withForeign();
    const empty = k.dump();
    const art = golden(b);
    const want = await k.canonical(b, art);
    expect(want.present).toBe(true);
    expect(k.dump()).toBe(empty); // canonical loads into a scratch kernel
    expect(await k.load(b, art, await k.readLive(b))).toBeUndefined();
    const once = k.dump();
    expect(liveFingerprint((await k.readLive(b)).live)).toBe(liveFingerprint(want));
    expect(await k.load(b, art, await k.readLive(b))).toBeUndefined();
    expect(k.dump()).toBe(once);
    await k.removeOwned(b, await k.readLive(b));
    expect(k.dump()).toBe(empty);
    expect((await k.readLive(b)).live.present).toBe(false);
  });

  test('iptables: one jump from OUTPUT per family however often it is loaded, and chains the policy dropped are deleted', async () => {
    const k = new FakeKernel();
    const art = golden('iptables');
    await k.load('iptables', art, await k.readLive('iptables'));
    await k.load('iptables', art, await k.readLive('iptables'));
    const live = (await k.readLive('iptables')).live;
    expect(live.jumps).toEqual({ ipv4: 1, ipv6: 1 });
    const smaller = { text: art.text.replace(/^.*EGRESS-smtp.*\n/gm, '').replace(/^.*-j EGRESS-metadata$\n/gm, ''), lineMap: new Map() };
    expect(await k.load('iptables', smaller, await k.readLive('iptables'))).toBeUndefined();
    expect([...(await k.readLive('iptables')).live.chains.keys()].sort()).toEqual(['ipv4:EGRESS', 'ipv4:EGRESS-metadata', 'ipv6:EGRESS', 'ipv6:EGRESS-metadata', 'ipv6:EGRESS-v6-only-block']);
  });

  test.each([
    ['nft', 'table inet egress {\n\tcounter c {}\n}\nflush set inet egress nope\n', /^\/dev\/stdin:4:1-1: Error: Could not process rule: No such file or directory \(set inet egress nope\)$/],
    ['nft', 'table inet egress {\n\tset s {\n\t\tflags interval\n\t}\n}\n', /^\/dev\/stdin:4:1-1: Error: set s has no type$/],
    ['nft', 'table inet egress {\n\tchain c {\n', /^\/dev\/stdin:3:1-1: Error: syntax error, unexpected end of file$/],
    ['iptables', '# egress: ipv4\n*filter\n:EGRESS - [0:0]\n-A EGRESS -j EGRESS-gone\nCOMMIT\n# egress: ipv6\n*filter\nCOMMIT\n', /^iptables-restore: line 4 failed: Couldn't load target `EGRESS-gone'$/],
    ['iptables', '# egress: ipv4\n*filter\nCOMMIT\n# egress: ipv6\n*filter\n-X OUTPUT\nCOMMIT\n', /^ip6tables-restore: line 3 failed: No chain\/target\/match by that name: OUTPUT$/],
  ] as const)('%s refuses %j as a whole, with the loader-style error', async (b, text, output) => {
    const k = withForeign();
    const before = k.dump();
    const f = await k.load(b, { text, lineMap: new Map() }, await k.readLive(b));
    expect(f?.output).toMatch(output);
    expect(k.dump()).toBe(before);
    expect((await k.checkLoad(b, { text, lineMap: new Map() }, await k.readLive(b)))?.output).toMatch(output);
  });

  test('nft: multi-line elements, flush set and add element keep elements in the normalized spelling', async () => {
    const k = new FakeKernel();
    k.runNft('table inet egress {\n\tset s {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = {\n\t\t\t192.0.2.9,\n\t\t\t192.0.2.0/25,\n\t\t\t192.0.2.128-192.0.2.255,\n\t\t}\n\t}\n}\n');
    expect((await k.readLive('nft')).live.sets.get('s')).toEqual({ type: 'ipv4_addr', flags: ['interval'], elements: ['192.0.2.0/25', '192.0.2.9', '192.0.2.128/25'] });
    await k.loadNftScript('flush set inet egress s\nadd element inet egress s { 198.51.100.1 }\n');
    expect((await k.readLive('nft')).live.sets.get('s')?.elements).toEqual(['198.51.100.1']);
  });

  test('iptables: -X of a chain still jumped to is refused, as the kernel does', () => {
    const k = withForeign();
    expect(() => k.restoreIptables('ipv4', '*filter\n-F FOREIGN\n-X FOREIGN\nCOMMIT\n')).toThrow(/line 3 failed: Too many links/);
  });

  test('a crash at a step throws FakeCrash there, leaves what was committed, and refuses every call until revive', async () => {
    const k = new FakeKernel();
    const art = golden('iptables');
    let frozen = '';
    k.crashAt('load:between-families', { onCrash: () => (frozen = k.dump('iptables')) });
    await expect(k.load('iptables', art, await k.readLive('iptables'))).rejects.toEqual(new FakeCrash('load:between-families'));
    expect(k.crashed).toBe('load:between-families');
    expect(k.dump('iptables')).toBe(frozen);
    const live = await new FakeKernel().readLive('iptables');
    expect(frozen).toMatch(/# iptables ipv4\n\*filter\n:INPUT ACCEPT \[0:0\]\n:FORWARD ACCEPT \[0:0\]\n:OUTPUT ACCEPT \[0:0\]\nCOMMIT\n# iptables ipv6\n\*filter\n(.*\n)*:EGRESS - \[0:0\]/);
    await expect(k.readLive('iptables')).rejects.toBeInstanceOf(FakeCrash);
    await expect(k.removeOwned('iptables', live)).rejects.toBeInstanceOf(FakeCrash);
    k.revive();
    expect((await k.readLive('iptables')).live.jumps).toEqual({ ipv4: 0, ipv6: 1 });
  });

  test('failNext refuses exactly one call, as a LoadFailure from the product mapper', async () => {
    const k = new FakeKernel();
    const art = golden('nft');
    k.failNext('load', { message: 'Could not process rule: Operation not supported' });
    const f = await k.load('nft', art, await k.readLive('nft'));
    expect(f?.message).toBe('nft rejected the ruleset: Could not process rule: Operation not supported');
    expect((await k.readLive('nft')).live.present).toBe(false);
    expect(await k.load('nft', art, await k.readLive('nft'))).toBeUndefined();
  });
});
