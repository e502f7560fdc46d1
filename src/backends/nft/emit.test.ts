/**
 * The nft backend: structure of the emitted script for small policies built
 * through the real pipeline, and the kernel's word on it — every script here
 * and every golden nft.txt must pass `nft -c` in a throwaway network
 * namespace; the 100,000-destination policy and the in-place refresh are
 * really loaded there.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { irOf } from '../../../test/helpers.js';
import type { Ir } from '../../ir/types.js';
import { parseDest } from '../../policy/address.js';
import { emitNft, emitNftRefresh, nftHostSets } from './emit.js';
import { expectNftAccepts, inNetns, kernelTest } from '../../../test/netns.js';
import { ROOT } from '../../../test/paths.js';

const ir = (policy: string, hosts: Record<string, { ipv4?: string[]; ipv6?: string[] }> = {}, files?: Record<string, string>): Promise<Ir> =>
  irOf(policy, files ? { hosts, files } : { hosts });
const check = expectNftAccepts;

/** Emit, prove nft accepts it, and return the text. */
async function nft(policy: string, hosts: Record<string, { ipv4?: string[]; ipv6?: string[] }> = {}): Promise<string> {
  const res = emitNft(await ir(policy, hosts));
  expect(res.diagnostics).toEqual([]);
  check(res.value!.text);
  return res.value!.text;
}

const lines = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l));
const indexOf = (text: string, re: RegExp) => text.split('\n').findIndex((l) => re.test(l));

describe('order and shape', () => {
  test('builtins, then deny dispatch, then allow, then the default, in one base chain', async () => {
    const t = await nft(`
allow:
  - { name: web, reason: web, ports: [tcp/443] }
deny:
  - { name: meta, reason: no, to: [169.254.169.254] }
`);
    const at = (re: RegExp) => indexOf(t, re);
    expect(t).toMatch(/^table inet egress \{\}\ndelete table inet egress\ntable inet egress \{$/m);
    expect(lines(t, /type filter hook output/)).toEqual(['\t\ttype filter hook output priority filter; policy accept;']);
    expect(at(/^\t\toif "lo"/)).toBeLessThan(at(/ct state established,related/));
    expect(at(/ct state established/)).toBeLessThan(at(/jump deny_meta_v4/));
    expect(at(/jump deny_meta_v4/)).toBeLessThan(at(/counter name "allow_web_v4" accept/));
    expect(at(/counter name "allow_web_v6" accept/)).toBeLessThan(at(/counter name "default_v4"/));
    expect(t).not.toMatch(/flush ruleset/);
    expect(lines(t, /^table /)).toEqual(['table inet egress {}', 'table inet egress {']);
  });

  test('except alternatives return from the deny chain before it counts, logs and rejects', async () => {
    const t = await nft(`
deny:
  - name: smtp
    reason: mta only
    ports: [tcp/25]
    except: [{ user: postfix }, { to: [192.0.2.25] }]
`);
    const chain = t.slice(t.indexOf('chain deny_smtp_v4 {'), t.indexOf('}', t.indexOf('chain deny_smtp_v4 {')));
    expect(chain.split('\n').slice(1).map((l) => l.trim())).toEqual([
      'meta skuid 107 return comment "smtp: except 1"',
      'ip daddr @deny_smtp_v4_x2_addr return comment "smtp: except 2"',
      'counter name "deny_smtp_v4" limit rate 10/second burst 10 packets counter name "logged" log prefix "EGRESS D:smtp " flags skuid comment "smtp: mta only"',
      'meta l4proto tcp reject with tcp reset comment "smtp: mta only"',
      'reject with icmpx admin-prohibited comment "smtp: mta only"',
      '',
    ]);
    // The IPv4-only except destination leaves the IPv6 twin with just the user exception.
    expect(t).toContain('chain deny_smtp_v6 {\n\t\tmeta skuid 107 return comment "smtp: except 1"\n\t\tcounter name "deny_smtp_v6"');
  });

  test('audit mode blocks nothing: lowercase tags, every verdict accepts', async () => {
    const t = await nft(`
mode: audit
default: drop
allow:
  - { name: dns, reason: r, ports: [udp/53] }
deny:
  - { name: smtp, reason: r, ports: [tcp/25] }
`);
    expect(t.replace(/comment "[^"]*"/g, '')).not.toMatch(/\b(reject|drop)\b/);
    expect(lines(t, /log prefix/).map((l) => /prefix "([^"]*)"/.exec(l)![1])).toEqual(['EGRESS p:- ', 'EGRESS d:smtp ', 'EGRESS d:smtp ']);
    expect(t).toMatch(/counter name "deny_smtp_v4" [^\n]*\n\t\taccept comment/);
    expect(t).toMatch(/log prefix "EGRESS p:- " flags skuid comment "egress default: drop"\n\t\taccept comment/);
  });

  test.each([
    ['reject', 'enforce', ['meta l4proto tcp reject with tcp reset', 'reject with icmpx admin-prohibited']],
    ['drop', 'enforce', ['drop']],
    ['accept', 'enforce', []],
    ['reject', 'audit', ['accept']],
  ])('default %s in %s mode', async (def, mode, verdicts) => {
    const t = await nft(`mode: ${mode}\ndefault: ${def}\n`);
    const tail = t.slice(t.indexOf('counter name "default_v6"'), t.indexOf('\n\t}'));
    const got = tail
      .split('\n')
      .slice(1)
      .filter((l) => !/log prefix/.test(l))
      .map((l) => l.trim().replace(/ comment .*$/, ''));
    expect(got).toEqual(verdicts);
    if (def === 'accept') expect(t).toContain(`meta nfproto ipv6 counter name "default_v6" accept comment "egress default: accept"`);
  });

  test('a deny under default accept rejects (SPEC: deny = reject when the default accepts)', async () => {
    const t = await nft('default: accept\ndeny:\n  - { name: smtp, reason: r, ports: [tcp/25] }\n');
    expect(t).toContain('chain deny_smtp_v4 {');
    expect(t).toMatch(/chain deny_smtp_v4 \{[^}]*reject with tcp reset[^}]*reject with icmpx admin-prohibited/);
  });
});

describe('dual stack', () => {
  test.each([
    ['no destinations: both families', 'allow:\n  - { name: a, reason: r, ports: [tcp/443] }\n', ['allow_a_v4', 'allow_a_v6']],
    ['ipv4 destinations only', 'allow:\n  - { name: a, reason: r, to: [192.0.2.1] }\n', ['allow_a_v4']],
    ['ipv6 destinations only', 'allow:\n  - { name: a, reason: r, to: ["2001:db8::1"] }\n', ['allow_a_v6']],
    ['family: ipv6', 'deny:\n  - { name: a, reason: r, family: ipv6, ports: [tcp/25] }\n', ['deny_a_v6']],
    ['both kinds of destination', 'deny:\n  - { name: a, reason: r, to: [192.0.2.1, "2001:db8::1"] }\n', ['deny_a_v4', 'deny_a_v6']],
    ['icmp both families', 'allow:\n  - { name: a, reason: r, icmp: [echo-request] }\n', ['allow_a_v4', 'allow_a_v6']],
  ])('%s', async (_, policy, counters) => {
    const t = await nft(policy);
    expect(lines(t, /^\tcounter (allow|deny)_/).map((l) => l.trim().split(' ')[1])).toEqual(counters);
    // every IPv4 construct has its IPv6 twin unless the rule is family-restricted
    for (const f of ['ipv4', 'ipv6'] as const) expect(t).toContain(`meta nfproto ${f} counter name "default_${f === 'ipv4' ? 'v4' : 'v6'}"`);
    const v4 = lines(t, /_v4\b/).length;
    const v6 = lines(t, /_v6\b/).length;
    if (counters.length === 2) expect(v4).toBe(v6);
  });
});

describe('selectors', () => {
  test.each([
    ['user by name', 'user: postfix', 'meta nfproto ipv4 meta skuid 107 counter'],
    ['users', 'user: [postfix, 1001]', 'meta skuid { 1001, 107 }'],
    ['unknown user stays a name, resolved by nft at load', 'user: nobody', 'meta skuid "nobody"'],
    ['group', 'group: mail', 'meta skgid 8'],
    ['groups by name and number', 'group: [backup, 1234]', 'meta skgid { 1234, "backup" }'],
    ['interface', 'via: eth0', 'oifname "eth0"'],
    ['interface wildcard', 'via: ["wg*", eth1]', 'oifname { "eth1", "wg*" }'],
    ['one port', 'ports: [tcp/443]', 'meta nfproto ipv4 tcp dport 443 counter'],
    ['ports and a range', 'ports: [tcp/80, tcp/8000-8099]', 'tcp dport { 80, 8000-8099 }'],
    ['several protocols', 'ports: [udp/53, tcp/53, sctp/9]', 'meta l4proto . th dport { sctp . 9, tcp . 53, udp . 53 }'],
    ['whole protocol', 'ports: [tcp]', 'meta nfproto ipv4 meta l4proto tcp counter'],
    ['1-65535 is not the whole protocol', 'ports: [tcp/1-65535]', 'tcp dport 1-65535'],
    ['icmp type', 'icmp: [echo-request, destination-unreachable]', 'meta nfproto ipv6 icmpv6 type { 1, 128 }'],
    ['icmp any', 'icmp: [any]', 'meta nfproto ipv6 meta l4proto ipv6-icmp counter'],
    ['icmp any and a port', 'icmp: [any]\n    ports: [tcp/22]', 'meta nfproto ipv4 meta l4proto icmp counter'],
  ])('%s', async (_, sel, want) => {
    const t = await nft(`allow:\n  - name: a\n    reason: r\n    ${sel}\n`);
    expect(t).toContain(want);
  });

  test('each L4 alternative is its own rule, with the other selectors repeated', async () => {
    const t = await nft('allow:\n  - { name: a, reason: r, ports: [tcp, udp/53], icmp: [echo-request], user: postfix, to: [192.0.2.1] }\n');
    expect(lines(t, /counter name "allow_a_v4" accept/).map((l) => l.replace(/ counter.*/, '').trim())).toEqual([
      'ip daddr @allow_a_v4_addr meta l4proto tcp meta skuid 107',
      'ip daddr @allow_a_v4_addr udp dport 53 meta skuid 107',
      'ip daddr @allow_a_v4_addr icmp type 8 meta skuid 107',
    ]);
  });
});

describe('sets', () => {
  const hosts = { 'mirror.example.org': { ipv4: ['192.0.2.128', '198.51.100.7'], ipv6: ['2001:db8::80'] } };

  test('single addresses live in a hash set, CIDRs and ranges in an interval set; a rule with both matches either', async () => {
    const t = emitNft(await ir('allow:\n  - { name: m, reason: r, to: [192.0.2.9, 198.51.100.0/28, 203.0.113.7, 203.0.113.20-203.0.113.30] }\n')).value!.text;
    check(t);
    expect(t).toContain('set allow_m_v4_addr {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.9, 203.0.113.7 }\n\t}');
    expect(t).toContain('set allow_m_v4_dst {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 198.51.100.0/28, 203.0.113.20-203.0.113.30 }\n\t}');
    expect(lines(t, /counter name "allow_m_v4" accept/).map((l) => l.trim().split(' ').slice(0, 3).join(' '))).toEqual(['ip daddr @allow_m_v4_addr', 'ip daddr @allow_m_v4_dst']);
  });

  test('literal destinations and hostname addresses live in separate sets, even where the IR merged them', async () => {
    const i = await ir('allow:\n  - { name: m, reason: r, to: [192.0.2.0/25, mirror.example.org, "2001:db8::/120"] }\n', hosts);
    // The IR merges 192.0.2.0/25 and the host's 192.0.2.128 into one interval; the sets keep them apart.
    expect(i.rules[0]!.dst!.length).toBe(2);
    const t = emitNft(i).value!.text;
    check(t);
    expect(t).toContain('set allow_m_v4_dst {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 192.0.2.0/25 }\n\t}');
    expect(t).toContain('set allow_m_v4_hosts {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.128, 198.51.100.7 }\n\t}');
    expect(t).toContain('set allow_m_v6_dst {\n\t\ttype ipv6_addr\n\t\tflags interval\n\t\telements = { 2001:db8::/120 }\n\t}');
    expect(t).toContain('set allow_m_v6_hosts {\n\t\ttype ipv6_addr\n\t\telements = { 2001:db8::80 }\n\t}');
    expect(lines(t, /counter name "allow_m_v4" accept/).map((l) => l.trim().split(' ').slice(0, 3).join(' '))).toEqual([
      'ip daddr @allow_m_v4_dst',
      'ip daddr @allow_m_v4_hosts',
    ]);
  });

  test('hostname sets of except alternatives are named per alternative', async () => {
    const i = await ir('deny:\n  - { name: d, reason: r, ports: [tcp/25], except: [{ to: [mirror.example.org] }] }\n', hosts);
    expect(nftHostSets(i).map((s) => [s.name, s.hosts, s.elements])).toEqual([
      ['deny_d_v4_x1_hosts', ['mirror.example.org'], ['192.0.2.128', '198.51.100.7']],
      ['deny_d_v6_x1_hosts', ['mirror.example.org'], ['2001:db8::80']],
    ]);
    check(emitNft(i).value!.text);
  });

  kernelTest('refresh rewrites hostname sets in place, leaving rules and counters alone', async () => {
    const policy = 'allow:\n  - { name: apt, reason: r, to: [mirror.example.org, 192.0.2.1, "2001:db8::1"], ports: [tcp/443] }\n';
    const before = emitNft(await ir(policy, { 'mirror.example.org': { ipv4: ['198.51.100.7'] } })).value!.text;
    // The name had no IPv6 address: its IPv6 set exists anyway, empty, so gaining one needs no reload.
    expect(before).toContain('set allow_apt_v6_hosts {\n\t\ttype ipv6_addr\n\t}');
    const refresh = emitNftRefresh(await ir(policy, { 'mirror.example.org': { ipv4: ['203.0.113.5'], ipv6: ['2001:db8::80'] } }), before);
    expect(refresh).toBe(
      [
        'flush set inet egress allow_apt_v4_hosts',
        'add element inet egress allow_apt_v4_hosts { 203.0.113.5 }',
        'flush set inet egress allow_apt_v6_hosts',
        'add element inet egress allow_apt_v6_hosts { 2001:db8::80 }',
        '',
      ].join('\n'),
    );
    const r = inNetns(
      'nft -f before.nft; nft list chain inet egress output > rules1; nft -f refresh.nft; nft list chain inet egress output > rules2; cmp rules1 rules2; for s in v4_hosts v6_hosts v4_addr; do nft list set inet egress allow_apt_$s; done',
      { 'before.nft': before, 'refresh.nft': refresh! },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/set allow_apt_v4_hosts \{[^}]*elements = \{ 203\.0\.113\.5 \}/);
    expect(r.stdout).toMatch(/set allow_apt_v6_hosts \{[^}]*elements = \{ 2001:db8::80 \}/);
    expect(r.stdout).toMatch(/set allow_apt_v4_addr \{[^}]*elements = \{ 192\.0\.2\.1 \}/);
  });

  test('a hostname rule that loses (or gains) all of a family is refreshed in place: its set there is emptied (or filled)', async () => {
    const policy = 'allow:\n  - { name: apt, reason: r, to: [mirror.example.org], ports: [tcp/443] }\n';
    const both = { 'mirror.example.org': { ipv4: ['192.0.2.7'], ipv6: ['2001:db8::80'] } };
    const v4only = { 'mirror.example.org': { ipv4: ['192.0.2.7'] } };
    expect(emitNftRefresh(await ir(policy, v4only), emitNft(await ir(policy, both)).value!.text)).toBe(
      'flush set inet egress allow_apt_v4_hosts\nadd element inet egress allow_apt_v4_hosts { 192.0.2.7 }\nflush set inet egress allow_apt_v6_hosts\n',
    );
    expect(emitNftRefresh(await ir(policy, both), emitNft(await ir(policy, v4only)).value!.text)).toBe(
      'flush set inet egress allow_apt_v4_hosts\nadd element inet egress allow_apt_v4_hosts { 192.0.2.7 }\nflush set inet egress allow_apt_v6_hosts\nadd element inet egress allow_apt_v6_hosts { 2001:db8::80 }\n',
    );
  });

  test.each([
    [
      'an except alternative vanishes, which would shift the names of the next one',
      'deny:\n  - { name: d, reason: r, ports: [tcp], except: [{ to: [mirror.example.org] }, { to: [other.example.org], ports: [tcp/443] }] }\n',
      { ipv6: ['2001:db8::80'] },
      ['deny_d_v4_x1_hosts { 192.0.2.7 }', 'deny_d_v4_x2_hosts { 192.0.2.8 }', 'deny_d_v6_x1_hosts { 2001:db8::80 }'],
    ],
  ])('refresh refuses to work in place when %s', async (_, policy, after, sets) => {
    const old = { 'mirror.example.org': { ipv4: ['192.0.2.7'], ipv6: ['2001:db8::80'] }, 'other.example.org': { ipv4: ['192.0.2.8'] } };
    const applied = emitNft(await ir(policy, old)).value!.text;
    // With the same addresses, refresh works in place: each hostname set flushed and filled again.
    const inPlace = sets.flatMap((s) => [`flush set inet egress ${s.split(' ')[0]}`, `add element inet egress ${s}`]);
    expect(emitNftRefresh(await ir(policy, old), applied)).toBe(inPlace.join('\n') + '\n');
    expect(emitNftRefresh(await ir(policy, { ...old, 'mirror.example.org': after }), applied)).toBeUndefined();
  });

  kernelTest('a 100,000-destination policy loads (set size does not change the rules)', async () => {
    // Built through the real pipeline with two destinations, then widened to 100,000 per family at the IR
    // (the front end is not what this test measures). Every other address, so nothing merges.
    const i = await ir('allow:\n  - { name: big, reason: many, to: [10.0.0.0, "2001:db8::1"], ports: [tcp/443] }\n');
    for (const r of i.rules) {
      const addr = (k: number) =>
        r.family === 'ipv4' ? [24, 16, 8, 0].map((s) => ((0x0a000000 + k * 2) >>> s) & 255).join('.') : `2001:db8:${(k >> 16).toString(16)}:${(k & 0xffff).toString(16)}::1`;
      r.sources = Array.from({ length: 100_000 }, (_, k) => ({ text: addr(k), span: r.sources[0]!.span }));
      r.dst = r.sources.map((src, k) => {
        const v = parseDest(src.text) as { lo: bigint; hi: bigint };
        return { lo: v.lo, hi: v.hi, src: [k] };
      });
      r.sets = [{ kind: 'addresses', family: r.family, elements: r.dst.map(({ lo, hi }) => ({ lo, hi })), hosts: [], origin: r.origin }];
    }
    const t = emitNft(i).value!.text;
    expect(lines(t, /counter name "allow_big_v[46]" accept/).length).toBe(2);
    const r = inNetns('nft -f big.nft && nft -j list set inet egress allow_big_v4_addr && nft -j list set inet egress allow_big_v6_addr', { 'big.nft': t });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // Every destination is in the kernel's set (none adjacent, so none merged).
    const sizes = r.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { nftables: { set?: { name: string; elem?: unknown[] } }[] }).nftables.flatMap((o) => (o.set ? [[o.set.name, o.set.elem?.length]] : [])))
      .flat();
    expect(sizes).toEqual([
      ['allow_big_v4_addr', 100_000],
      ['allow_big_v6_addr', 100_000],
    ]);
  }, 300_000);
});

describe('log and comments', () => {
  test('a long prefix and a 32-character rule name still fit, cut the log-tag way', async () => {
    const name = 'a-very-long-rule-name-0123456789';
    const t = await nft(`log: { prefix: "EGRESS-PRODUCTION-1 ", uid: false }\ndeny:\n  - { name: ${name}, reason: r, ports: [tcp/1] }\n`);
    const prefixes = lines(t, /log prefix/).map((l) => /prefix "([^"]*)"/.exec(l)![1]!);
    expect(prefixes).toContain(`EGRESS-PRODUCTION-1 D:${name} `);
    for (const p of prefixes) expect(p.length).toBeLessThanOrEqual(127);
    expect(t).not.toContain('flags skuid');
  });

  test('comments carry the reason, made safe and cut to 128 bytes', async () => {
    const t = await nft(`allow:\n  - name: a\n    reason: "say \\"hi\\"; drop; } # \\\\ ${'é'.repeat(80)}"\n    ports: [tcp/1]\n`);
    const c = /counter name "allow_a_v4" accept comment "([^"]*)"/.exec(t)![1]!;
    expect(c.startsWith(`a: say 'hi'; drop; } # \\ éé`)).toBe(true);
    expect(Buffer.byteLength(c)).toBeLessThanOrEqual(128);
    expect(c.endsWith('…')).toBe(true);
  });

  test('the line map points every rule line back to its policy rule', async () => {
    const i = await ir('allow:\n  - { name: a, reason: r, ports: [tcp/1] }\ndeny:\n  - { name: d, reason: r, to: [192.0.2.9] }\n');
    const a = emitNft(i).value!;
    const text = a.text.split('\n');
    for (const [n, ref] of a.lineMap) expect(text[n - 1]).toMatch(new RegExp(`_${ref.name}_|"${ref.name}:|\\t[}]|^$|type |flags |elements`));
    const ruleLine = text.findIndex((l) => l.includes('counter name "allow_a_v4" accept')) + 1;
    expect(a.lineMap.get(ruleLine)?.name).toBe('a');
  });
});

describe('goldens', () => {
  const root = join(ROOT, 'test', 'golden');
  const files = ['cases', 'examples'].flatMap((d) =>
    existsSync(join(root, d))
      ? readdirSync(join(root, d))
          .map((c) => join(root, d, c, 'nft.txt'))
          .filter((f) => existsSync(f))
      : [],
  );
  // The nft backend refuses nothing, so every golden case has a nft.txt, and each is checked below.
  test('every golden case has a nft.txt to check', () => {
    const cases = ['cases', 'examples'].flatMap((d) => readdirSync(join(root, d)).map((c) => `${d}/${c}`));
    expect(cases.length).toBeGreaterThanOrEqual(5);
    expect(files.map((f) => f.slice(root.length + 1))).toEqual(cases.map((c) => `${c}/nft.txt`));
  });
  kernelTest.each(files.map((f) => [f.slice(root.length + 1), f]))('%s passes nft -c', (_, f) => {
    const text = readFileSync(f, 'utf8');
    const r = inNetns('nft -c -f ruleset.nft', { 'ruleset.nft': text });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('the forward scope', () => {
  const FWD = `forward:
  sources:
    docker: { interfaces: ["docker0", "br-*"], networks: [172.17.0.0/16] }
    gitbox: { networks: [172.17.0.5] }
allow:
  - { name: apt, reason: r, from: [host, docker], to: [203.0.113.20], ports: [tcp/80] }
  - { name: registry, reason: r, from: [docker], to: [203.0.113.10], ports: [tcp/443] }
deny:
  - { name: meta, reason: r, from: [docker, gitbox], to: [203.0.113.99] }
`;

  test('each source is tested once per pass: every source’s deny chain before any allow chain; the rules inside carry no source test', async () => {
    const t = emitNft(await irOf(FWD)).value!.text;
    const forward = t.slice(t.indexOf('\tchain forward {'), t.indexOf('\n\t}', t.indexOf('\tchain forward {')));
    const jumps = forward.split('\n').filter((l) => / jump fwd_src_/.test(l)).map((l) => /jump (\S+)/.exec(l)![1]);
    // Every rule here is IPv4-only (its destinations): no IPv6 rule chains, whatever the sources' families.
    expect(jumps).toEqual(['fwd_src_docker_deny_v4', 'fwd_src_gitbox_deny_v4', 'fwd_src_docker_allow_v4']);
    const chain = (name: string) => t.slice(t.indexOf(`\tchain ${name} {`), t.indexOf('\n\t}', t.indexOf(`\tchain ${name} {`))).split('\n').slice(1);
    expect(chain('fwd_src_docker_allow_v4').map((l) => l.trim())).toEqual([
      'ip daddr @allow_apt_v4_addr tcp dport 80 counter name "fwd_allow_apt_v4" accept comment "apt: r"',
      'ip daddr @allow_registry_v4_addr tcp dport 443 counter name "fwd_allow_registry_v4" accept comment "registry: r"',
    ]);
    // The host twin and the forward twin share the rule's set, declared once.
    expect(t.match(/\tset allow_apt_v4_addr \{/g)).toHaveLength(1);
    expect(t).toContain('oif "lo" counter name "builtin_loopback" accept');
  });

  kernelTest('the forward ruleset loads', async () => {
    expectNftAccepts(emitNft(await irOf(FWD)).value!.text);
  });
});
