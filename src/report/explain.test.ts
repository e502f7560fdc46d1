/**
 * `answer` looks for the deny rules an except spared through a destination
 * prefilter built once per policy (`answering`). Against the plain scan it
 * replaced: every deny rule with an except, in policy order, that governs the
 * flow, matches it and has an except matching it too.
 */
import { expect, test } from 'vitest';
import { FAMILIES, type Family } from '../policy/address.js';
import { HOST_SOURCE } from '../policy/types.js';
import { indexedEvaluator } from '../sim/indexed.js';
import { matchesSelectors } from '../sim/reference.js';
import type { Flow } from '../sim/flow.js';
import { ACCOUNTS, loadText } from '../../test/helpers.js';
import { answer, answering } from './explain.js';

// Nested, overlapping and touching intervals on both families, an except rule
// without destinations, one with an unresolved name only (no address), and
// rules without excepts around them.
const POLICY = `version: 1
default: reject
allow:
  - name: web
    reason: web
    to: [198.51.100.0/24, "2001:db8:1::/48"]
    ports: [tcp/443, tcp/25]
deny:
  - name: wide
    reason: r
    to: [192.0.2.0/24, "2001:db8::/32"]
    except: { user: postfix }
  - name: plain
    reason: r
    to: [192.0.2.0/25]
  - name: inner
    reason: r
    to: [192.0.2.64/26, 192.0.2.10, 198.51.100.7]
    except: { user: postfix }
  - name: range
    reason: r
    to: [192.0.2.5-192.0.2.20, "2001:db8::5-2001:db8::9", "2001:db8:1::/64"]
    except: { ports: [tcp/25] }
  - name: touching
    reason: r
    to: [192.0.2.21-192.0.2.30, 198.51.100.0/25]
    except: [{ user: postfix }, { ports: [tcp/25] }]
  - name: anywhere
    reason: r
    ports: [tcp/25]
    except: { user: postfix }
  - name: v6only
    reason: r
    family: ipv6
    ports: [tcp/443]
    except: { user: postfix }
  - name: unresolved
    reason: r
    to: [nowhere.example]
    except: { user: postfix }
`;

test('the spared deny rules are those of a scan of every deny rule, in policy order, at and around every interval edge', async () => {
  const l = await loadText(POLICY);
  expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const p = l.resolved!;
  const evaluate = indexedEvaluator(l.ir!);
  const lookup = answering(l.sources, p);
  const edges: Record<Family, Set<bigint>> = { ipv4: new Set([0n, 2n ** 32n - 1n]), ipv6: new Set([0n, 2n ** 128n - 1n]) };
  for (const r of p.deny) for (const d of r.to ?? []) for (const v of [d.lo - 1n, d.lo, d.lo + 1n, d.hi - 1n, d.hi, d.hi + 1n]) edges[d.family].add(v);
  let flows = 0;
  let spared = 0;
  for (const family of FAMILIES)
    for (const dst of edges[family]) {
      if (dst < 0n || dst >= 2n ** (family === 'ipv4' ? 32n : 128n)) continue;
      for (const port of [25, 443])
        for (const name of ['root', 'postfix']) {
          const f: Flow = { family, dst, proto: 'tcp', port, user: { name, id: ACCOUNTS.users.get(name)! } };
          const scan = p.deny
            .filter((r) => r.except.length && r.from.some((x) => x.name === HOST_SOURCE) && matchesSelectors(r, f) && r.except.some((e) => matchesSelectors(e, f)))
            .map((r) => r.ref.name);
          const got = answer(lookup, f, evaluate(f)).spared?.map((s) => s.rule.name) ?? [];
          expect(got, `${family} ${dst} tcp/${port} ${name}`).toEqual(scan);
          flows++;
          if (scan.length > 1) spared++;
        }
    }
  // The grid reaches flows that several excepts spare at once.
  expect(flows).toBeGreaterThan(200);
  expect(spared).toBeGreaterThan(20);
});
