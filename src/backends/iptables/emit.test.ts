/**
 * The iptables backend: structure of both restore sections for small
 * policies built through the real pipeline, and the kernel's word on them —
 * every text here and every golden iptables.txt passes
 * `iptables-restore --test` / `ip6tables-restore --test` and really loads in
 * a throwaway network namespace (--test alone does not resolve jump targets).
 * Re-applying is idempotent and removal leaves the operator's rules alone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { irOf } from '../../../test/helpers.js';
import type { Ir } from '../../ir/types.js';
import { inNetns, kernelTest, needKernel } from '../../../test/netns.js';
import { emitIptables, iptablesChainNames, iptablesSectionStart, OUTPUT_JUMP, splitIptables } from './emit.js';
import { readIptablesLive } from './parse-live.js';
import { iptablesReapply, iptablesRemove } from './reapply.js';
import { ROOT } from '../../../test/paths.js';


const ir = (policy: string): Promise<Ir> => irOf(policy, { hosts: { 'mirror.example.org': { ipv4: ['203.0.113.80'], ipv6: ['2001:db8:80::1'] } } });

/** Both sections pass --test and load for real (--noflush) in a fresh namespace. */
function check(text: string): void {
  needKernel('iptables-restore on the emitted text');
  const { ipv4, ipv6 } = splitIptables(text);
  const r = inNetns(
    'iptables-restore --test --noflush < v4; ip6tables-restore --test --noflush < v6; iptables-restore --noflush < v4; ip6tables-restore --noflush < v6',
    { v4: ipv4, v6: ipv6 },
  );
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
}

async function ipt(policy: string): Promise<{ text: string; v4: string; v6: string }> {
  const res = emitIptables(await ir(policy));
  expect(res.diagnostics).toEqual([]);
  check(res.value!.text);
  const { ipv4, ipv6 } = splitIptables(res.value!.text);
  return { text: res.value!.text, v4: ipv4, v6: ipv6 };
}

const lines = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l));
const indexOf = (text: string, re: RegExp) => text.split('\n').findIndex((l) => re.test(l));

describe('sections', () => {
  test('one marked *filter section per family, owning EGRESS and one chain per deny rule, hooked by one jump', async () => {
    const { text, v4, v6 } = await ipt('allow:\n  - { name: web, reason: r, ports: [tcp/443] }\ndeny:\n  - { name: smtp, reason: r, ports: [tcp/25] }\n');
    expect(lines(text, /^# egress: ipv[46]$/)).toEqual(['# egress: ipv4', '# egress: ipv6']);
    for (const s of [v4, v6]) {
      expect(s.split('\n').slice(0, 8)).toEqual([
        '# egress: ' + (s === v4 ? 'ipv4' : 'ipv6'),
        '*filter',
        ':EGRESS - [0:0]',
        ':EGRESS-smtp - [0:0]',
        '-F EGRESS',
        '-F EGRESS-smtp',
        '-A EGRESS -o lo -m comment --comment "egress builtin: loopback" -j RETURN',
        '-A EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "egress builtin: established" -j RETURN',
      ]);
      expect(s.endsWith(`${OUTPUT_JUMP}\nCOMMIT\n`)).toBe(true);
      // nothing but our chains and our one jump
      for (const l of s.split('\n').filter((x) => /^[-:]/.test(x))) expect(l).toMatch(/^(:EGRESS(-\S+)? - \[0:0\]|-[AF] EGRESS(-\S+)?( .*)?|-I OUTPUT 1 -j EGRESS)$/);
      // what the policy accepts goes back to OUTPUT, so the operator's rules after the jump still apply
      expect(s).toContain('-p tcp -m tcp --dport 443 -m comment --comment "web: r" -j RETURN\n');
      expect(lines(s, /-j ACCEPT$/)).toEqual([]);
    }
  });

  test('builtins, then deny dispatch, then allow rules, then the default', async () => {
    const { v4 } = await ipt('allow:\n  - { name: web, reason: r, ports: [tcp/443] }\ndeny:\n  - { name: meta, reason: r, to: [169.254.169.254] }\n');
    const at = (re: RegExp) => indexOf(v4, re);
    expect(at(/-o lo /)).toBeLessThan(at(/--ctstate RELATED,ESTABLISHED/));
    expect(at(/--ctstate/)).toBeLessThan(at(/-j EGRESS-meta$/));
    expect(at(/-j EGRESS-meta$/)).toBeLessThan(at(/"web: r" -j RETURN$/));
    expect(at(/"web: r" -j RETURN$/)).toBeLessThan(at(/^-A EGRESS -m comment --comment "egress default: reject"$/));
  });

  test('except alternatives RETURN before the deny chain counts, logs and rejects', async () => {
    const { v4, v6 } = await ipt('deny:\n  - { name: smtp, reason: mta only, ports: [tcp/25], except: [{ user: [postfix, 1001] }, { to: [192.0.2.25] }] }\n');
    expect(lines(v4, /^-A EGRESS-smtp /)).toEqual([
      '-A EGRESS-smtp -m owner --uid-owner 1001 -m comment --comment "smtp: except 1" -j RETURN',
      '-A EGRESS-smtp -m owner --uid-owner 107 -m comment --comment "smtp: except 1" -j RETURN',
      '-A EGRESS-smtp -d 192.0.2.25/32 -m comment --comment "smtp: except 2" -j RETURN',
      '-A EGRESS-smtp -m comment --comment "smtp: mta only"',
      '-A EGRESS-smtp -m limit --limit 10/sec --limit-burst 10 -j LOG --log-prefix "EGRESS D:smtp " --log-uid',
      '-A EGRESS-smtp -p tcp -j REJECT --reject-with tcp-reset',
      '-A EGRESS-smtp -j REJECT --reject-with icmp-admin-prohibited',
    ]);
    expect(lines(v6, /^-A EGRESS-smtp .*-j RETURN$/).length).toBe(2);
    expect(lines(v6, /-j REJECT --reject-with icmp6-adm-prohibited$/).length).toBe(2);
  });

  test('audit mode blocks nothing: lowercase tags, every deny verdict accepts', async () => {
    const { text } = await ipt('mode: audit\ndefault: drop\nallow:\n  - { name: dns, reason: r, ports: [udp/53] }\ndeny:\n  - { name: smtp, reason: r, ports: [tcp/25] }\n');
    expect(text.replace(/--comment "[^"]*"/g, '')).not.toMatch(/REJECT|DROP/);
    expect(lines(text, /-j LOG/).map((l) => /--log-prefix "([^"]*)"/.exec(l)![1])).toEqual(['EGRESS p:- ', 'EGRESS d:smtp ', 'EGRESS p:- ', 'EGRESS d:smtp ']);
    expect(text).toContain('-A EGRESS-smtp -m limit --limit 100/sec --limit-burst 100 -j LOG --log-prefix "EGRESS d:smtp " --log-uid\n-A EGRESS-smtp -j ACCEPT\n');
  });

  test.each([
    ['reject', ['-A EGRESS -p tcp -j REJECT --reject-with tcp-reset', '-A EGRESS -j REJECT --reject-with icmp-admin-prohibited'], ['-A EGRESS -p tcp -j REJECT --reject-with tcp-reset', '-A EGRESS -j REJECT --reject-with icmp6-adm-prohibited']],
    ['drop', ['-A EGRESS -j DROP'], ['-A EGRESS -j DROP']],
    ['accept', ['-A EGRESS -m comment --comment "egress default: accept" -j RETURN'], ['-A EGRESS -m comment --comment "egress default: accept" -j RETURN']],
  ])('default %s', async (def, want4, want6) => {
    const { v4, v6 } = await ipt(`default: ${def}\n`);
    const tail = (s: string) => s.split('\n').filter((l) => l.startsWith('-A EGRESS ') && !/builtin|-j LOG|--comment "egress default: (reject|drop)"$/.test(l));
    expect(tail(v4)).toEqual(want4);
    expect(tail(v6)).toEqual(want6);
  });
  kernelTest('what egress accepts goes back to OUTPUT: an operator rule after the jump still applies', async () => {
    const { v4 } = await ipt('default: accept\ndeny:\n  - { name: smtp, reason: r, ports: [tcp/25] }\n');
    const r = inNetns(
      [
        'ip link set lo up',
        'iptables-restore --noflush < v4',
        'iptables -A OUTPUT -p udp --dport 9 -j DROP',
        "bash -c 'echo x > /dev/udp/127.0.0.1/9' 2>/dev/null && echo 9:sent || echo 9:blocked",
        "bash -c 'echo x > /dev/udp/127.0.0.1/10' 2>/dev/null && echo 10:sent || echo 10:blocked",
      ].join('\n'),
      { v4 },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('9:blocked\n10:sent\n');
  });

  kernelTest('a loader error line maps back to the policy rule through the section start and the line map', async () => {
    const res = emitIptables(await ir('allow:\n  - { name: a, reason: r, ports: [tcp/1], user: no-such-user-here }\n')).value!;
    const { ipv6 } = splitIptables(res.text);
    const r = inNetns('ip6tables-restore --noflush < v6', { v6: ipv6 });
    const n = Number(/Error occurred at line: (\d+)/.exec(r.stderr)![1]);
    const line = iptablesSectionStart(res.text, 'ipv6') + n - 1;
    expect(res.text.split('\n')[line - 1]).toContain('--uid-owner no-such-user-here');
    expect(res.lineMap.get(line)?.name).toBe('a');
  });
});

describe('dual stack', () => {
  test.each([
    ['no destinations', 'allow:\n  - { name: a, reason: r, ports: [tcp/443] }\n', true, true],
    ['ipv4 destinations only', 'allow:\n  - { name: a, reason: r, to: [192.0.2.1] }\n', true, false],
    ['family: ipv6', 'deny:\n  - { name: a, reason: r, family: ipv6, ports: [tcp/25] }\n', false, true],
  ])('%s', async (_, policy, in4, in6) => {
    const { v4, v6 } = await ipt(policy);
    expect(v4.includes('"a: r"')).toBe(in4);
    expect(v6.includes('"a: r"')).toBe(in6);
    // the default always governs both families
    for (const s of [v4, v6]) expect(s).toContain('-A EGRESS -m comment --comment "egress default: reject"');
    if (in4 && in6) expect(lines(v4, /"a: r"/).length).toBe(lines(v6, /"a: r"/).length);
  });
});

describe('selectors', () => {
  test.each([
    ['user', 'user: postfix', '-p tcp -m tcp --dport 1 -m owner --uid-owner 107 '],
    ['unknown user stays a name', 'user: nobody', '-m owner --uid-owner nobody '],
    ['user and group in one owner match', 'user: postfix\n    group: mail', '-m owner --uid-owner 107 --gid-owner 8 '],
    ['interface', 'via: eth0', '-o eth0 -p tcp'],
    ['interface wildcard', 'via: ["wg*"]', '-o wg+ -p tcp'],
    ['address', 'to: [192.0.2.1]', '-d 192.0.2.1/32 -p tcp'],
    ['CIDR', 'to: ["2001:db8::/32"]', '-d 2001:db8::/32 -p tcp'],
    ['range', 'to: [192.0.2.10-192.0.2.20]', '-p tcp -m iprange --dst-range 192.0.2.10-192.0.2.20 -m tcp --dport 1 '],
    ['hostname', 'to: [mirror.example.org]', '-d 2001:db8:80::1/128 -p tcp'],
  ])('%s', async (_, sel, want) => {
    const { text } = await ipt(`allow:\n  - name: a\n    reason: r\n    ports: [tcp/1]\n    ${sel}\n`);
    expect(text).toContain(want);
  });

  test.each([
    ['whole protocol', 'ports: [tcp]', ['-p tcp']],
    ['ports and a range in one multiport', 'ports: [tcp/80, tcp/443, tcp/8000-8099]', ['-p tcp -m multiport --dports 80,443,8000:8099']],
    ['one range', 'ports: [sctp/9000-9010]', ['-p sctp -m sctp --dport 9000:9010']],
    ['protocols apart', 'ports: [udp/53, tcp/53]', ['-p tcp -m tcp --dport 53', '-p udp -m udp --dport 53']],
    [
      'more than 15 port slots split',
      `ports: [${Array.from({ length: 8 }, (_, i) => `tcp/${1000 + 10 * i}-${1005 + 10 * i}`).join(', ')}]`,
      ['-p tcp -m multiport --dports 1000:1005,1010:1015,1020:1025,1030:1035,1040:1045,1050:1055,1060:1065', '-p tcp -m tcp --dport 1070:1075'],
    ],
    ['icmp types, one rule each', 'icmp: [echo-request, destination-unreachable]', ['-p icmp -m icmp --icmp-type 3', '-p icmp -m icmp --icmp-type 8']],
    ['icmp any', 'icmp: [any]', ['-p icmp']],
  ])('%s', async (_, sel, want4) => {
    const { v4 } = await ipt(`allow:\n  - name: a\n    reason: r\n    ${sel}\n`);
    expect(lines(v4, /"a: r" -j RETURN$/).map((l) => l.replace(/^-A EGRESS /, '').replace(/ -m comment.*/, ''))).toEqual(want4);
  });

  test('ICMPv6 in the IPv6 section', async () => {
    const { v6 } = await ipt('allow:\n  - { name: a, reason: r, icmp: [echo-request, packet-too-big] }\n');
    expect(lines(v6, /"a: r" -j RETURN$/).map((l) => l.replace(/ -m comment.*/, ''))).toEqual([
      '-A EGRESS -p ipv6-icmp -m icmp6 --icmpv6-type 2',
      '-A EGRESS -p ipv6-icmp -m icmp6 --icmpv6-type 128',
    ]);
    expect(lines(v6, /builtin: icmpv6_nd/).length).toBe(9);
  });
});

describe('names, tags and comments', () => {
  test('long rule names: chains fit 28 characters, log prefixes 29, both cut the log-tag way', async () => {
    const a = 'a-very-long-rule-name-0123456789';
    const b = 'a-very-long-rule-name-0123456788';
    const i = await ir(`log: { prefix: "EGRESS-PROD-1 " }\ndeny:\n  - { name: ${a}, reason: r, ports: [tcp/1] }\n  - { name: ${b}, reason: r, ports: [tcp/2] }\n`);
    const chains = iptablesChainNames(i);
    expect([...chains.values()].every((c) => c.length <= 28 && c.startsWith('EGRESS-'))).toBe(true);
    expect(new Set(chains.values()).size).toBe(2);
    expect(chains.get(a)).toMatch(/^EGRESS-a-very-long-rule-~[0-9a-f]{3}$/);
    const text = emitIptables(i).value!.text;
    check(text);
    for (const p of lines(text, /--log-prefix/).map((l) => /--log-prefix "([^"]*)"/.exec(l)![1]!)) expect(p.length).toBeLessThanOrEqual(29);
  });

  test('a log rate -m limit cannot measure is an error, not a quieter log', async () => {
    const res = emitIptables(await ir('log: { rate: 20000/second }\n'));
    expect(res.value).toBeUndefined();
    expect(res.diagnostics.map((d) => [d.severity, d.code])).toEqual([['error', 'bad-log-rate']]);
    expect(emitIptables(await ir('log: { rate: 10000/second }\n')).diagnostics).toEqual([]);
  });

  test('comments are quoted for the restore tokenizer, made one line and cut to 255 bytes', async () => {
    const { text } = await ipt(`allow:\n  - name: a\n    reason: "x\\" -j DROP \\\\\\" \\n# -t nat ${'é'.repeat(200)}"\n    ports: [tcp/1]\n`);
    const line = lines(text, /^-A EGRESS -p tcp -m tcp --dport 1 /)[0]!;
    expect(line.startsWith('-A EGRESS -p tcp -m tcp --dport 1 -m comment --comment "a: x\\" -j DROP \\\\\\"  # -t nat éé')).toBe(true);
    expect(line.endsWith('…" -j RETURN')).toBe(true);
  });
});

describe('re-apply and removal', () => {
  const policyA = 'allow:\n  - { name: web, reason: r, ports: [tcp/443] }\ndeny:\n  - { name: smtp, reason: r, ports: [tcp/25], except: [{ user: postfix }] }\n';
  const policyB = 'allow:\n  - { name: web, reason: r, ports: [tcp/443, tcp/80] }\n';

  test('the jump is kept out when live, surplus jumps and stale chains are deleted', () => {
    const section = '# egress: ipv4\n*filter\n:EGRESS - [0:0]\n:EGRESS-web - [0:0]\n-F EGRESS\n-F EGRESS-web\n-I OUTPUT 1 -j EGRESS\nCOMMIT\n';
    expect(iptablesReapply(section, { jumps: 0, chains: [] })).toBe(section);
    expect(iptablesReapply(section, { jumps: 2, chains: ['EGRESS', 'EGRESS-web', 'EGRESS-smtp'] })).toBe(
      '# egress: ipv4\n*filter\n:EGRESS - [0:0]\n:EGRESS-web - [0:0]\n-F EGRESS\n-F EGRESS-web\n-D OUTPUT -j EGRESS\n-F EGRESS-smtp\n-X EGRESS-smtp\nCOMMIT\n',
    );
    expect(readIptablesLive('*nat\n:EGRESS-x - [0:0]\nCOMMIT\n*filter\n:OUTPUT ACCEPT [0:0]\n:EGRESS - [0:0]\n:EGRESSX - [0:0]\n:EGRESS-web - [0:0]\n-A OUTPUT -j EGRESS\n-A OUTPUT -d 1.2.3.4/32 -j EGRESS\nCOMMIT\n')).toEqual({
      jumps: 1,
      chains: ['EGRESS', 'EGRESS-web'],
    });
  });

  kernelTest('applying twice, then another policy, then removing: one jump, our chains only, the operator rule untouched', async () => {
    const a = splitIptables(emitIptables(await ir(policyA)).value!.text);
    const b = splitIptables(emitIptables(await ir(policyB)).value!.text);
    const ns = `egress-ipt-test-${process.pid}`;
    const run = (args: string[], input?: string) => {
      const r = spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', ...(input === undefined ? {} : { input }) });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      return r.stdout;
    };
    expect(spawnSync('ip', ['netns', 'add', ns]).status).toBe(0);
    try {
      for (const [fam, cmd] of [
        ['ipv4', 'iptables'],
        ['ipv6', 'ip6tables'],
      ] as const) {
        run([cmd, '-A', 'OUTPUT', '-p', 'udp', '--dport', '9', '-j', 'DROP']);
        // What apply does: read the live table, adapt the section, load it with --noflush.
        const apply = (section: string | undefined) => {
          const live = readIptablesLive(run([`${cmd}-save`, '-t', 'filter']));
          run([`${cmd}-restore`, '--noflush'], section === undefined ? iptablesRemove(live) : iptablesReapply(section, live));
          return run([`${cmd}-save`, '-t', 'filter']).replace(/^#.*\n/gm, '');
        };
        const first = apply(a[fam]);
        const second = apply(a[fam]);
        const third = apply(b[fam]);
        const removed = apply(undefined);
        expect(second).toBe(first);
        expect(lines(first, /^-A OUTPUT -j EGRESS$/).length).toBe(1);
        expect(first.indexOf('-A OUTPUT -j EGRESS')).toBeLessThan(first.indexOf('-A OUTPUT -p udp'));
        expect(first).toContain(':EGRESS-smtp - [0:0]');
        expect(third).not.toContain('EGRESS-smtp');
        expect(lines(third, /^-A OUTPUT -j EGRESS$/).length).toBe(1);
        expect(third).toContain('-m multiport --dports 80,443');
        expect(removed).not.toContain('EGRESS');
        for (const st of [first, second, third, removed]) expect(st).toContain('-A OUTPUT -p udp -m udp --dport 9 -j DROP');
      }
    } finally {
      spawnSync('ip', ['netns', 'delete', ns]);
    }
  });
});

describe('goldens', () => {
  const root = join(ROOT, 'test', 'golden');
  const files = ['cases', 'examples'].flatMap((d) =>
    existsSync(join(root, d))
      ? readdirSync(join(root, d))
          .map((c) => join(root, d, c, 'iptables.txt'))
          .filter((f) => existsSync(f))
      : [],
  );
  // The iptables backend refuses only dns.proxy (iptables.err), so every other golden case has a iptables.txt, and each is checked below.
  test('every golden case has a iptables.txt to check, or refuses dns.proxy', () => {
    const cases = ['cases', 'examples'].flatMap((d) => readdirSync(join(root, d)).map((c) => `${d}/${c}`));
    expect(cases.length).toBeGreaterThanOrEqual(5);
    const refusing = cases.filter((c) => existsSync(join(root, c, 'iptables.err')));
    for (const c of refusing) expect(readFileSync(join(root, c, 'iptables.err'), 'utf8')).toContain('"dns.proxy" cannot be expressed by backend "iptables"');
    expect(files.map((f) => f.slice(root.length + 1))).toEqual(cases.filter((c) => !refusing.includes(c)).map((c) => `${c}/iptables.txt`));
  });
  kernelTest.each(files.map((f) => [f.slice(root.length + 1), f]))('%s passes iptables-restore --test and loads', (_, f) => check(readFileSync(f, 'utf8')));
});
