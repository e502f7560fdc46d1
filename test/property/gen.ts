/**
 * Random policies and flows from a small alphabet (a few documentation
 * addresses, ports near each other, three users, both families), so a
 * shrunk counterexample stays readable. Policies are generated as YAML text
 * and go through the real front end.
 */
import fc from 'fast-check';

export const ADDRS4 = ['192.0.2.1', '192.0.2.2', '192.0.2.3', '198.51.100.7', '203.0.113.200'];
export const ADDRS6 = ['2001:db8::1', '2001:db8::2', '2001:db8::3', '2001:db8:1::7'];
const DESTS = [
  ...ADDRS4,
  ...ADDRS6,
  '192.0.2.0/30',
  '192.0.2.0/24',
  '192.0.2.2-192.0.2.3',
  '198.51.100.0/25',
  '2001:db8::/126',
  '2001:db8::/32',
  '2001:db8::2-2001:db8::3',
];
export const PORTS = [22, 25, 53, 80, 81, 443];
const PORT_SELS = ['tcp/25', 'tcp/80', 'tcp/80-81', 'tcp/443', 'udp/53', 'tcp/22', 'tcp', 'udp'];
export const USERS = [
  { name: 'root', uid: 0 },
  { name: 'www-data', uid: 33 },
  { name: 'postfix', uid: 107 },
];

export interface GenSelectors {
  to?: string[];
  ports?: string[];
  icmp?: string[];
  user?: string[];
  group?: string[];
  family?: 'ipv4' | 'ipv6';
}
export interface GenRule extends GenSelectors {
  name: string;
  except?: GenSelectors[];
}
export interface GenPolicy {
  /** `dns.proxy: true` (then `to` may hold the names of NAMES). */
  dns?: boolean;
  mode: 'enforce' | 'audit';
  default: 'accept' | 'reject' | 'drop';
  allow: GenRule[];
  deny: GenRule[];
}

const sub = <T>(xs: T[], max = 3) => fc.uniqueArray(fc.constantFrom(...xs), { minLength: 1, maxLength: max });

export const selectorsArb: fc.Arbitrary<GenSelectors> = fc.record(
  {
    to: sub(DESTS),
    ports: sub(PORT_SELS),
    user: sub(USERS.map((u) => u.name), 2),
    family: fc.constantFrom('ipv4' as const, 'ipv6' as const),
  },
  { requiredKeys: [] },
);

/** Names for policies with `dns.proxy`: exact and wildcard, some covering others. */
export const NAMES = ['a.example.com', '*.example.com', '*.cdn.example.com', 'x.cdn.example.com'];
/** Names a lookup may ask for: covered by some of NAMES, or by none (the bare domain of a wildcard among them). */
export const LOOKUPS = ['a.example.com', 'x.cdn.example.com', 'y.x.cdn.example.com', 'cdn.example.com', 'example.com', 'other.test'];

const dnsSelectorsArb: fc.Arbitrary<GenSelectors> = fc
  .tuple(selectorsArb, fc.option(sub(NAMES, 2), { nil: undefined }))
  .map(([s, names]) => (names ? { ...s, to: [...(s.to ?? []), ...names] } : s));

export function policyArb(opts: { mode?: boolean; dns?: boolean } = {}): fc.Arbitrary<GenPolicy> {
  const main = opts.dns ? dnsSelectorsArb : selectorsArb;
  const rules = (prefix: string, withExcept: boolean) =>
    fc.array(fc.tuple(main, withExcept ? fc.option(fc.array(selectorsArb, { minLength: 1, maxLength: 2 }), { nil: undefined }) : fc.constant(undefined)), { maxLength: 4 }).map((xs) =>
      xs.map(([s, except], i): GenRule => ({ name: `${prefix}${i}`, ...fixFamily(s), ...(except ? { except: except.map(fixFamily) } : {}) })),
    );
  return fc.record({
    ...(opts.dns ? { dns: fc.constant(true) } : {}),
    mode: opts.mode ? fc.constantFrom('enforce' as const, 'audit' as const) : fc.constant('enforce' as const),
    default: fc.constantFrom('accept' as const, 'reject' as const, 'drop' as const),
    allow: rules('a', false),
    deny: rules('d', true),
  });
}

/** A family selector with destinations of the other family only is an error; drop such destinations. */
function fixFamily(s: GenSelectors): GenSelectors {
  if (!s.family || !s.to) return s;
  const to = s.to.filter((d) => NAMES.includes(d) || d.includes(':') === (s.family === 'ipv6'));
  const { to: _t, ...rest } = s;
  return to.length ? { ...rest, to } : rest;
}

/** YAML text for a generated policy; the kernel suite's generator writes through it too. */
export function policyYaml(p: GenPolicy): string {
  const sel = (s: GenSelectors, ind: string) =>
    [
      s.to ? `${ind}to: [${s.to.map((t) => JSON.stringify(t)).join(', ')}]` : '',
      s.ports ? `${ind}ports: [${s.ports.join(', ')}]` : '',
      s.icmp ? `${ind}icmp: [${s.icmp.join(', ')}]` : '',
      s.user ? `${ind}user: [${s.user.join(', ')}]` : '',
      s.group ? `${ind}group: [${s.group.join(', ')}]` : '',
      s.family ? `${ind}family: ${s.family}` : '',
    ].filter(Boolean);
  const rule = (r: GenRule) => {
    const lines = [`  - name: ${r.name}`, `    reason: generated`, ...sel(r, '    ')];
    if (r.except) {
      lines.push('    except:');
      for (const e of r.except) {
        const body = sel(e, '        ');
        lines.push(body.length ? `      - ${body[0]!.trimStart()}` : '      - {}', ...body.slice(1));
      }
    }
    return lines.join('\n');
  };
  return [
    'version: 1',
    ...(p.dns ? ['dns: { proxy: true }'] : []),
    `mode: ${p.mode}`,
    `default: ${p.default}`,
    p.allow.length ? `allow:\n${p.allow.map(rule).join('\n')}` : 'allow: []',
    p.deny.length ? `deny:\n${p.deny.map(rule).join('\n')}` : 'deny: []',
    '',
  ].join('\n');
}

export interface GenFlow {
  to: string;
  port: string;
  user: string;
}

export const flowArb: fc.Arbitrary<GenFlow> = fc.record({
  to: fc.constantFrom(...ADDRS4, ...ADDRS6, '192.0.2.4', '192.0.2.255', '2001:db8::ffff', '2001:db8:2::1', '203.0.113.1'),
  port: fc.oneof(fc.constantFrom(...PORTS).map((p) => `tcp/${p}`), fc.constantFrom(53, 80, 25).map((p) => `udp/${p}`)),
  user: fc.constantFrom(...USERS.map((u) => u.name)),
});

/**
 * A committed counterexample: fed to fast-check as one of its `examples`, so
 * it runs first on every run, whatever the seed. `name` says what it is; a
 * comment beside it says what it caught (a bug put in on purpose, then shrunk
 * by fast-check) or what it exercises.
 */
export interface Example<A extends unknown[]> {
  name: string;
  args: A;
}

/** The `examples` option for fast-check from named examples. */
export const examples = <A extends unknown[]>(xs: readonly Example<A>[]): A[] => xs.map((x) => x.args);
