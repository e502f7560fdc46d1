import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ACCOUNTS, loadText } from '../../test/helpers.js';
import { parseAddress } from '../policy/address.js';
import { GUARD_RULE, planNames, poolKey, POOL_SIZE } from './names.js';
import { inDocumentation } from './world.js';
import { ROOT } from '../../test/paths.js';

/** examples/cdn-by-name.yaml, and a literal next to the names (the pools keep away from it). */
const POLICY = readFileSync(join(ROOT, 'examples', 'cdn-by-name.yaml'), 'utf8').replace('api.example.net]', 'api.example.net, 198.51.100.1]');

async function plan(yaml = POLICY, taken: string[] = []) {
  const l = await loadText(yaml);
  if (!l.ir) throw new Error(l.diagnostics.map((d) => d.message).join('\n'));
  const p = planNames(l.ir, ACCOUNTS, taken);
  const lines = p.probes.map((x) => `${x.rule} ${x.why} ${x.probe.proto}/${x.probe.port} ${x.probe.name ?? x.probe.dst} ${x.probe.dst.includes(':') ? 6 : 4} ${x.probe.uid}`);
  return { ...p, lines, ir: l.ir };
}

describe('planNames', () => {
  test('without dns.proxy: nothing', async () => {
    const p = await plan('version: 1\nallow:\n  - name: x\n    reason: r\n    to: [a.example.com]\n');
    expect(p.probes).toEqual([]);
    expect(p.upstream).toEqual([]);
  });

  test('each name rule: its names (a wildcard at three depths) as its users and nobody, and what is around it', async () => {
    const p = await plan();
    const cdn4 = p.lines.filter((l) => l.startsWith('cdn ') && l.includes(' 4 '));
    expect(cdn4).toEqual([
      'cdn allow tcp/443 one.cdn.example.com 4 0',
      'cdn allow tcp/443 one.cdn.example.com 4 65534',
      'cdn allow tcp/443 two.one.cdn.example.com 4 0',
      'cdn allow tcp/443 two.one.cdn.example.com 4 65534',
      'cdn allow tcp/443 three.two.one.cdn.example.com 4 0',
      'cdn allow tcp/443 three.two.one.cdn.example.com 4 65534',
      'cdn allow tcp/443 api.example.net 4 0',
      'cdn allow tcp/443 api.example.net 4 65534',
      'cdn around tcp/442 one.cdn.example.com 4 0',
      'cdn around tcp/444 one.cdn.example.com 4 0',
      'cdn around tcp/443 cdn.example.com 4 0',
      'cdn around tcp/443 unlisted.egress-lab.example 4 0',
      expect.stringMatching(/^cdn around tcp\/443 [0-9.]+ 4 0$/), // a pool address no answer holds
    ]);
    // A user rule: as its user, and someone else around it.
    expect(p.lines.filter((l) => l.startsWith('mail ') && l.includes(' 6 ') && l.includes('mail.example.org'))).toEqual([
      'mail allow tcp/587 mail.example.org 6 33',
      'mail around tcp/586 mail.example.org 6 33',
      'mail around tcp/588 mail.example.org 6 33',
      'mail around tcp/587 mail.example.org 6 0',
    ]);
    // Deny names, a wildcard's by a name under it, both families; DoT to the upstream as nobody.
    expect(p.lines.filter((l) => l.startsWith('ads '))).toEqual([
      'ads deny tcp/443 refused.tracker.example.org 4 65534',
      'ads deny tcp/443 refused.tracker.example.org 6 65534',
      'ads deny tcp/443 ads.example.org 4 65534',
      'ads deny tcp/443 ads.example.org 6 65534',
    ]);
    expect(p.lines.filter((l) => l.startsWith(GUARD_RULE))).toEqual([
      'dns.proxy guard tcp/853 192.0.2.53 4 65534',
      'dns.proxy guard udp/853 192.0.2.53 4 65534',
      'dns.proxy guard tcp/853 2001:db8::53 6 65534',
      'dns.proxy guard udp/853 2001:db8::53 6 65534',
    ]);
    expect(p.upstream).toEqual([
      { address: '192.0.2.53', port: 53 },
      { address: '2001:db8::53', port: 53 },
    ]);
  });

  test('pools: disjoint, documentation only, away from literals, their neighbours and taken addresses; the zone hands out exactly them', async () => {
    const p = await plan(POLICY, ['198.51.100.5', '2001:db8:d45::2']);
    const all = [...p.pools.values()].flat();
    expect(new Set(all).size).toBe(all.length);
    for (const a of all) {
      const v = parseAddress(a)!;
      expect(inDocumentation(v.family, v.value)).toBe(true);
    }
    for (const a of ['198.51.100.0', '198.51.100.1', '198.51.100.2', '198.51.100.5', '2001:db8:d45::2', '192.0.2.53']) expect(all).not.toContain(a);
    expect(p.pools.get(poolKey('one.cdn.example.com', 'ipv4'))).toHaveLength(POOL_SIZE);
    expect(p.zone.names['one.cdn.example.com']!.a).toEqual(p.pools.get(poolKey('one.cdn.example.com', 'ipv4')));
    expect(p.zone.names['ads.example.org']!.aaaa).toEqual(p.pools.get(poolKey('ads.example.org', 'ipv6')));
    // The never-answered addresses are in no pool and not the other names' either.
    const never = p.probes.filter((x) => x.why === 'around' && x.probe.name === undefined).map((x) => x.probe.dst);
    expect(never).toHaveLength(4);
    for (const a of never) expect([...all, ...p.zone.other.a, ...p.zone.other.aaaa]).not.toContain(a);
    // A name probe's placeholder destination is in its pool.
    for (const x of p.probes.filter((y) => y.probe.name !== undefined)) expect(p.pools.get(poolKey(x.probe.name!, x.probe.dst.includes(':') ? 'ipv6' : 'ipv4'))).toContain(x.probe.dst);
  });

  test('the unlisted name is one no pattern covers; an upstream outside the documentation ranges is replaced and said so', async () => {
    const p = await plan(
      'version: 1\ndns:\n  proxy: true\n  upstream: [9.9.9.9, 192.0.2.9]\nallow:\n  - name: x\n    reason: r\n    to: ["*.egress-lab.example"]\n    ports: [tcp/443]\n',
    );
    expect(p.lines.filter((l) => l.includes('unlisted'))).toEqual(['x around tcp/443 unlisted.egress-lab-1.example 4 0', 'x around tcp/443 unlisted.egress-lab-1.example 6 0']);
    expect(p.upstream).toEqual([{ address: '192.0.2.9', port: 53 }]);
    expect(p.notProbed).toEqual([{ rule: GUARD_RULE, what: 'upstream 9.9.9.9', why: expect.stringMatching(/not a documentation address/) }]);
  });
});

test('when the documentation addresses run out, the rules left are listed as not probed, not a crash', async () => {
  const rules = Array.from({ length: 60 }, (_, i) => `  - name: r${i}\n    reason: r\n    to: ["*.a${i}.example.com", b${i}.example.com]\n    ports: [tcp/443]\n`).join('');
  const p = await plan(`version: 1\ndns:\n  proxy: true\nallow:\n${rules}`);
  expect(p.probes.length).toBeGreaterThan(0);
  const skipped = p.notProbed.filter((n) => /no documentation IPv4 address left/.test(n.why));
  expect(skipped.length).toBeGreaterThan(0);
  // A rule is planned whole or not at all.
  for (const n of skipped) expect(p.probes.some((x) => x.rule === n.rule && x.probe.dst.includes(':') === false && x.why === 'allow')).toBe(false);
});
