/**
 * The IR names its destinations as sets (IrSet): written addresses apart
 * from the addresses of hostnames, so no backend re-reads address text.
 * Their union must be exactly the match's `dst` — a backend that loads the
 * sets loads what the evaluators decide on.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { loadText } from '../../test/helpers.js';
import { policyArb, policyYaml, type GenPolicy, type GenSelectors } from '../../test/property/gen.js';
import { formatInterval, mergeIntervals } from '../policy/address.js';
import type { IrMatch, IrRule } from './types.js';

const HOSTS: Record<string, { ipv4?: string[]; ipv6?: string[] }> = {
  'v4.example.test': { ipv4: ['192.0.2.1', '192.0.2.9'] },
  'v6.example.test': { ipv6: ['2001:db8::9'] },
  'both.example.test': { ipv4: ['198.51.100.7'], ipv6: ['2001:db8::1'] },
};

const text = (r: IrRule, m: IrMatch) => ({
  dst: (m.dst ?? []).map((x) => formatInterval(r.family, x)),
  union: mergeIntervals((m.sets ?? []).flatMap((s) => s.elements)).map((x) => formatInterval(r.family, x)),
});

describe('IR sets', () => {
  test('a rule with addresses and a hostname: one set of each, hostname set in both families', async () => {
    const l = await loadText('version: 1\nallow:\n  - { name: a, reason: r, to: [192.0.2.0/30, "192.0.2.3", v4.example.test], ports: [tcp/443] }\n', { hosts: HOSTS });
    const [v4, v6] = [l.ir!.rules.find((r) => r.family === 'ipv4')!, l.ir!.rules.find((r) => r.family === 'ipv6')];
    // No IPv6 destination now, but a hostname that may gain one: a twin with the (empty) hostname set, for refresh to fill.
    expect(v6!.dst).toEqual([]);
    expect(v6!.sets!.map((s) => [s.kind, s.hosts, s.elements.length])).toEqual([['hostnames', ['v4.example.test'], 0]]);
    expect(v4.sets!.map((s) => ({ kind: s.kind, hosts: s.hosts, elements: s.elements.map((x) => formatInterval('ipv4', x)) }))).toEqual([
      { kind: 'addresses', hosts: [], elements: ['192.0.2.0/30'] },
      { kind: 'hostnames', hosts: ['v4.example.test'], elements: ['192.0.2.1', '192.0.2.9'] },
    ]);
  });

  test('a hostname with no address in one family still has its (empty) set there, for refresh to fill', async () => {
    const l = await loadText('version: 1\nallow:\n  - { name: a, reason: r, to: ["2001:db8::5", v4.example.test] }\n', { hosts: HOSTS });
    const v6 = l.ir!.rules.find((r) => r.family === 'ipv6')!;
    expect(v6.sets!.map((s) => [s.kind, s.hosts, s.elements.length])).toEqual([
      ['addresses', [], 1],
      ['hostnames', ['v4.example.test'], 0],
    ]);
  });

  test('the sets of every match add up to its dst (random policies with hostnames)', async () => {
    const names = Object.keys(HOSTS);
    const withNames = (s: GenSelectors, ns: string[]): GenSelectors => (s.to ? { ...s, to: [...s.to, ...ns] } : s);
    const arb = fc.tuple(policyArb(), fc.uniqueArray(fc.constantFrom(...names), { maxLength: 2 })).map(
      ([p, ns]): GenPolicy => ({
        ...p,
        allow: p.allow.map((r) => ({ ...withNames(r, ns), name: r.name })),
        deny: p.deny.map((r) => ({ ...withNames(r, ns), name: r.name, ...(r.except ? { except: r.except.map((e) => withNames(e, ns.slice(1))) } : {}) })),
      }),
    );
    await fc.assert(
      fc.asyncProperty(arb, async (p) => {
        const l = await loadText(policyYaml(p), { hosts: HOSTS });
        expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
        for (const r of l.ir!.rules)
          for (const m of [r, ...r.except]) {
            expect(!!m.sets).toBe(!!m.dst);
            const { dst, union } = text(r, m);
            expect(union).toEqual(dst);
            for (const s of m.sets ?? []) {
              expect(s.family).toBe(r.family);
              if (s.kind === 'hostnames') expect(s.hosts).toEqual(expect.arrayContaining(m.hosts ?? []));
              else expect(s.hosts).toEqual([]);
            }
          }
      }),
      { numRuns: 200 },
    );
  });
});
