import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ACCOUNTS, loadText } from '../../../test/helpers.js';
import { flowArb, policyArb, policyYaml } from '../../../test/property/gen.js';
import { locate } from '../../diag/render.js';
import { parseDest } from '../../policy/address.js';
import { parseFlow } from '../../sim/flow-parse.js';
import type { Flow } from '../../sim/flow.js';
import { explainReference } from '../../sim/reference.js';
import { emitWinRules, windowsBackend, type WinRule } from './emit.js';

const HOSTS = { 'mirror.example.org': { ipv4: ['203.0.113.80'], ipv6: ['2001:db8:80::1'] } };

async function compile(yaml: string) {
  const l = await loadText(yaml, { hosts: HOSTS });
  expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return { ...windowsBackend.emit(l.ir!), sources: l.sources, ir: l.ir! };
}

/** The New-EgressRule lines of a script. */
const ruleLines = (text: string) => text.split('\n').filter((l) => l.startsWith('New-EgressRule'));

describe('script', () => {
  test('owns one rule group, sets the profiles, removes before it adds, blocks before allows', async () => {
    const { value } = await compile(`version: 1
default: drop
allow:
  - name: web
    reason: web
    ports: [tcp/443]
deny:
  - name: metadata
    reason: no metadata
    to: [169.254.169.254, "fd00:ec2::254"]
`);
    const t = value!.text;
    expect(t).toContain("$Group = 'egress'");
    expect(t).toContain('Set-NetFirewallProfile -Profile Domain, Private, Public -Enabled True -DefaultOutboundAction Block -LogBlocked True');
    expect(t).toContain('New-NetFirewallRule @Rule -Group $Group -Direction Outbound -Profile Any -Enabled True');
    const remove = t.indexOf('Get-NetFirewallRule -Group $Group -ErrorAction SilentlyContinue | Remove-NetFirewallRule');
    const block = t.indexOf("Action = 'Block'");
    const allow = t.indexOf("Action = 'Allow'");
    expect(0 < remove && remove < block && block < allow).toBe(true);
    // One Windows rule carries both families.
    expect(ruleLines(t)[0]).toBe(
      "New-EgressRule @{ Name = 'egress-metadata'; DisplayName = 'egress metadata'; Description = 'no metadata'; Action = 'Block'; Protocol = 'Any'; RemoteAddress = @('169.254.169.254', 'fd00:ec2::254') }",
    );
    expect(ruleLines(t)[1]).toBe("New-EgressRule @{ Name = 'egress-web'; DisplayName = 'egress web'; Description = 'web'; Action = 'Allow'; Protocol = 'TCP'; RemotePort = @('443') }");
    expect(t).toMatch(/^[\x09\x0a\x20-\x7e]*$/);
  });

  test('a one-family rule gets that family\'s whole range, never "Any"', async () => {
    const { value } = await compile('version: 1\nallow:\n  - name: v4web\n    family: ipv4\n    ports: [tcp/80]\n');
    expect(ruleLines(value!.text)[0]).toContain("RemoteAddress = @('0.0.0.0-255.255.255.255')");
  });

  test('default accept: Allow outbound, no foreign-rule warning, no ND rule', async () => {
    const { value } = await compile('version: 1\ndefault: accept\ndeny:\n  - name: smtp\n    ports: [tcp/25]\n');
    expect(value!.text).toContain('-DefaultOutboundAction Allow');
    expect(value!.text).not.toContain('$foreign');
    expect(value!.text).not.toContain('egress.icmpv6-nd');
  });

  test('hostile reasons and names stay inside their literals', async () => {
    const { value } = await compile(`version: 1
allow:
  - name: x
    reason: "a'; Remove-NetFirewallRule -All; '\u2019; $(calc) \`n"
    user: [appuser]
    ports: [tcp/1]
`);
    expect(ruleLines(value!.text)[0]).toContain("Description = ('a''; Remove-NetFirewallRule -All; ''' + [char]0x2019 + '; $(calc) `n')");
    expect(value!.text).toContain("$sid1 = Resolve-EgressSid 'appuser'");
  });

  test('hostnames are resolved when the script runs, with the compile-time addresses as last known good', async () => {
    const { value } = await compile('version: 1\nallow:\n  - name: m\n    to: [mirror.example.org, 198.51.100.1]\n    ports: [tcp/443]\n');
    const t = value!.text;
    expect(t).toContain("$host1 = Resolve-EgressHost 'mirror.example.org' 'ipv4' @('203.0.113.80')");
    expect(t).toContain("$host2 = Resolve-EgressHost 'mirror.example.org' 'ipv6' @('2001:db8:80::1')");
    expect(ruleLines(t)[0]).toMatch(/^New-EgressRuleTo @\{ .* \} \(@\('198\.51\.100\.1'\) \+ \$host1 \+ \$host2\)$/);
  });
});

describe('except', () => {
  test('on users: a deny ACE for each exempt user, then Everyone', async () => {
    const { value } = await compile('version: 1\ndefault: accept\ndeny:\n  - name: smtp\n    ports: [tcp/25]\n    except: { user: postfix }\n');
    expect(ruleLines(value!.text)[0]).toContain("LocalUser = ('O:LSD:' + '(D;;CC;;;' + $sid1 + ')' + '(A;;CC;;;WD)')");
  });

  test('on destinations: the block rule covers the rest of the range', async () => {
    const { value } = await compile('version: 1\ndeny:\n  - name: lan\n    to: [198.51.100.0/24]\n    except: { to: [198.51.100.7] }\n');
    expect(ruleLines(value!.text)[0]).toContain("RemoteAddress = @('198.51.100.0-198.51.100.6', '198.51.100.8-198.51.100.255')");
  });

  test('on ports: the block rule keeps the other ports', async () => {
    const { value } = await compile('version: 1\ndeny:\n  - name: mail\n    ports: [tcp/25, tcp/465, tcp/587]\n    except: { ports: [tcp/587] }\n');
    expect(ruleLines(value!.text)[0]).toContain("RemotePort = @('25', '465')");
  });
});

describe('refusals name rule, selector and backend', () => {
  test.each([
    ['group', 'allow:\n  - name: b\n    group: backup\n', 'rule "b": selector "group" cannot be expressed by backend "windows"', '4:5'],
    ['via', 'allow:\n  - name: v\n    via: [eth1]\n', 'rule "v": selector "via" cannot be expressed by backend "windows"', '4:5'],
    ['numeric user no account names', 'allow:\n  - name: u\n    user: 4242\n', 'rule "u": selector "user" cannot be expressed by backend "windows"', '4:5'],
    ['sctp ports', 'allow:\n  - name: s\n    ports: [sctp/9000]\n', 'rule "s": selector "ports" cannot be expressed by backend "windows"', '4:5'],
    ['except leaving every protocol but one', 'deny:\n  - name: d\n    to: [198.51.100.0/24]\n    except: { ports: [tcp/443] }\n', 'rule "d": selector "except" cannot be expressed by backend "windows"', '5:5'],
    ['except cutting through a hostname', 'deny:\n  - name: d\n    to: [mirror.example.org]\n    except: { to: [203.0.113.80] }\n', 'rule "d": selector "except" cannot be expressed by backend "windows"', '5:5'],
    ['except on a group', 'deny:\n  - name: d\n    ports: [tcp/25]\n    except: { group: mail }\n', 'rule "d": selector "except" cannot be expressed by backend "windows"', '5:5'],
    ['audit mode', 'mode: audit\nallow: []\n', 'mode "audit" cannot be expressed by backend "windows"', '-'],
    ['builtin off', 'builtins: { loopback: false }\nallow: []\n', 'builtin "loopback: false" cannot be expressed by backend "windows"', '-'],
  ])('%s', async (_name, body, message, at) => {
    const r = await compile(`version: 1\n${body}`);
    expect(r.value).toBeUndefined();
    const d = r.diagnostics.find((x) => x.message === message);
    expect(d?.code).toBe('unsupported-selector');
    expect(d!.span ? `${locate(r.sources, d!.span)!.line}:${locate(r.sources, d!.span)!.col}` : '-').toBe(at);
  });
});

/** Windows Firewall's own rule: does a Windows rule match this flow? */
function winMatches(w: WinRule, f: Flow): boolean {
  const d = w.dst[f.family];
  if (!d) return false;
  if (d !== 'any' && !d.literal.some((a) => {
    const p = parseDest(a);
    return p.kind === 'addr' && p.lo <= f.dst && f.dst <= p.hi;
  })) return false;
  const proto = { TCP: 'tcp', UDP: 'udp', '132': 'sctp', ICMPv4: 'icmp', ICMPv6: 'icmp' }[w.protocol];
  if (w.protocol !== 'Any' && proto !== f.proto) return false;
  if (w.ports && !w.ports.some((p) => {
    const [lo, hi = lo] = p.split('-').map(Number);
    return f.port !== undefined && lo! <= f.port && f.port <= hi!;
  })) return false;
  const user = f.user?.name ?? '';
  if (w.users.allow !== 'all' && !w.users.allow.includes(user)) return false;
  return !w.users.deny.includes(user);
}

describe('Windows rule semantics reproduce the policy', () => {
  test('block wins, then allow, then the default outbound action: the reference verdict, users and excepts included', async () => {
    let compiled = 0;
    await fc.assert(
      fc.asyncProperty(policyArb(), fc.array(flowArb, { minLength: 1, maxLength: 25 }), async (p, flows) => {
        const l = await loadText(policyYaml(p));
        const plan = emitWinRules(l.ir!);
        if (!plan.value) {
          for (const d of plan.diagnostics) expect(d.message).toMatch(/selector "except"/);
          return;
        }
        compiled++;
        for (const g of flows) {
          const f = parseFlow(g, ACCOUNTS);
          const win = plan.value.blocks.some((w) => winMatches(w, f)) ? 'blocked' : plan.value.allows.some((w) => winMatches(w, f)) || p.default === 'accept' ? 'accept' : 'blocked';
          const want = explainReference(l.resolved!, f).verdict === 'accept' ? 'accept' : 'blocked';
          expect(win, `${g.to} ${g.port} ${g.user}\n${policyYaml(p)}`).toBe(want);
        }
      }),
      { numRuns: 400 },
    );
    expect(compiled).toBeGreaterThan(100);
  });
});
