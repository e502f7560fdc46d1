/**
 * `dns.proxy` in the nft backend: the dynamic sets, the redirect and the
 * guard are in the emitted table and load; refresh never touches the
 * dynamic sets; the forwarder's name list comes out of the IR; and, with
 * real sockets in throwaway namespaces (documentation ranges only), a query
 * another program sends to any DNS server lands at the forwarder's listener
 * while the forwarder's own query reaches the server unchanged, and DNS over
 * TLS from anything but the forwarder is rejected and counted.
 */
import { describe, expect, expectTypeOf, test } from 'vitest';
import type { DnsName, ForwarderConfig } from '../../dns/types.js';
import type { NftDnsName, NftForwarderConfig } from './dns.js';
import { irOf } from '../../../test/helpers.js';
import type { Ir } from '../../ir/types.js';
import { emitNft, emitNftRefresh, nftDnsNames, nftDnsSets, nftForwarderConfig, nftStructure } from './emit.js';
import { expectNftAccepts, inNetns, kernelTest } from '../../../test/netns.js';
import { readNftLive } from './parse-live.js';
import { diff, liveFingerprint } from '../../plan/diff.js';

const HOSTS = { 'deb.debian.org': { ipv4: ['198.51.100.7'] } };

const ir = (policy: string, hosts: Record<string, { ipv4?: string[]; ipv6?: string[] }> = HOSTS): Promise<Ir> => irOf(policy, { hosts });
const check = expectNftAccepts;

const MIRRORS = `
dns:
  proxy: true
  upstream: [192.0.2.53, "2001:db8::53"]
allow:
  - name: mirrors
    reason: package updates
    to: [deb.debian.org, "*.cdn.example.com"]
    ports: [tcp/443]
deny:
  - name: ads
    reason: no ads
    to: ["*.ads.example.net"]
`;

const lines = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l));

describe('emit', () => {
  test('dynamic sets per family, matched like the other destination sets', async () => {
    const t = emitNft(await ir(MIRRORS)).value!.text;
    check(t);
    expect(t).toContain('\tset allow_mirrors_v4_dns {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t\tsize 65536\n\t}');
    expect(t).toContain('\tset allow_mirrors_v6_dns {\n\t\ttype ipv6_addr\n\t\tflags timeout\n\t\tsize 65536\n\t}');
    expect(lines(t, /counter name "allow_mirrors_v[46]" accept/).map((l) => l.trim().split(' ').slice(0, 3).join(' '))).toEqual([
      'ip daddr @allow_mirrors_v4_hosts',
      'ip daddr @allow_mirrors_v4_dns',
      'ip6 daddr @allow_mirrors_v6_hosts',
      'ip6 daddr @allow_mirrors_v6_dns',
    ]);
    // The deny rule's only destination is a name: refused at DNS, no address deny at all.
    expect(t).not.toMatch(/deny_ads/);
  });

  test('the guard comes first in the output chain, before the builtins', async () => {
    const t = emitNft(await ir(MIRRORS)).value!.text;
    const chain = t.slice(t.indexOf('\tchain output {'));
    // After the chain's own lines: its comment (mode, default) and its type.
    const lines = chain.split('\n');
    const first = lines.findIndex((l) => l.trim().startsWith('type filter hook output')) + 1;
    const body = lines.slice(first, first + 9).map((l) => l.trim().replace(/ comment .*$/, ''));
    expect(body).toEqual([
      'ip daddr 127.0.0.153 meta l4proto { tcp, udp } th dport 153 accept',
      'ip saddr 127.0.0.153 meta l4proto { tcp, udp } th sport 153 accept',
      'ip6 daddr ::1 meta l4proto { tcp, udp } th dport 153 accept',
      'ip6 saddr ::1 meta l4proto { tcp, udp } th sport 153 accept',
      'meta skuid 0 meta skgid 990 meta l4proto { tcp, udp } th dport { 53, 853 } counter name "dns_forwarder" accept',
      'meta l4proto { tcp, udp } th dport { 53, 853 } fib daddr type != local counter name "dns_bypass" limit rate 10/second burst 10 packets counter name "logged" log prefix "EGRESS B:- " flags skuid',
      'meta l4proto { tcp, udp } th dport { 53, 853 } fib daddr type != local meta l4proto tcp reject with tcp reset',
      'meta l4proto { tcp, udp } th dport { 53, 853 } fib daddr type != local reject with icmpx admin-prohibited',
      'oif "lo" counter name "builtin_loopback" accept',
    ]);
    expect(t).toContain(
      [
        '\tchain dns_redirect {',
        '\t\ttype nat hook output priority -100; policy accept;',
        '\t\tmeta skuid 0 meta skgid 990 return comment "egress dns: the forwarder\'s own queries"',
        '\t\tfib daddr type local return comment "egress dns: a server on this host"',
        '\t\tmeta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 counter name "dns_redirect" dnat ip to 127.0.0.153:153 comment "egress dns: to the forwarder"',
        '\t\tmeta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 counter name "dns_redirect" dnat ip6 to [::1]:153 comment "egress dns: to the forwarder"',
        '\t}',
      ].join('\n'),
    );
  });

  test("programs' queries and the forwarder's answers get a conntrack zone of their own, before conntrack sees them", async () => {
    const t = emitNft(await ir(MIRRORS)).value!.text;
    expect(t).toContain(
      [
        '\tchain dns_zone {',
        '\t\ttype filter hook output priority raw; policy accept;',
        '\t\tip daddr 127.0.0.153 meta l4proto { tcp, udp } th dport 153 ct zone set 153 comment "egress dns: a query to the forwarder"',
        '\t\tip saddr 127.0.0.153 meta l4proto { tcp, udp } th sport 153 ct zone set 153 comment "egress dns: the forwarder\'s answer"',
        '\t\tip saddr 127.0.0.153 icmp type destination-unreachable ct zone set 153 comment "egress dns: no forwarder listening: the error reaches the program"',
        '\t\tip6 daddr ::1 meta l4proto { tcp, udp } th dport 153 ct zone set 153 comment "egress dns: a query to the forwarder"',
        '\t\tip6 saddr ::1 meta l4proto { tcp, udp } th sport 153 ct zone set 153 comment "egress dns: the forwarder\'s answer"',
        '\t\tip6 saddr ::1 icmpv6 type destination-unreachable ct zone set 153 comment "egress dns: no forwarder listening: the error reaches the program"',
        '\t\tmeta skuid 0 meta skgid 990 return comment "egress dns: the forwarder\'s own queries"',
        '\t\tmeta l4proto { tcp, udp } th dport 53 fib daddr type != local ct zone set 153 comment "egress dns: a query to redirect, in a zone apart from the forwarder\'s upstream flows"',
        '\t}',
      ].join('\n'),
    );
    expect(t).not.toMatch(/ct zone set (?!153 )/);
  });

  test('audit mode logs bypassing DNS with tag b and lets it through', async () => {
    const t = emitNft(await ir(`mode: audit\n${MIRRORS}`)).value!.text;
    check(t);
    expect(lines(t, /th dport \{ 53, 853 \} fib daddr type != local/).map((l) => l.trim().replace(/ comment .*$/, ''))).toEqual([
      'meta l4proto { tcp, udp } th dport { 53, 853 } fib daddr type != local counter name "dns_bypass" limit rate 100/second burst 100 packets counter name "logged" log prefix "EGRESS b:- " flags skuid',
      'meta l4proto { tcp, udp } th dport { 53, 853 } fib daddr type != local accept',
    ]);
  });

  test('a forwarder group this host lacks is named, for nft to resolve at load', async () => {
    const i = await ir(MIRRORS);
    i.dns!.forwarder = { name: 'egress-dns' };
    expect(emitNft(i).value!.text).toContain('meta skuid 0 meta skgid "egress-dns" return');
  });

  test('without dns.proxy nothing of it is emitted', async () => {
    const t = emitNft(await ir('allow:\n  - { name: m, reason: r, to: [deb.debian.org], ports: [tcp/443] }\n')).value!.text;
    expect(t).not.toMatch(/dns|nat|timeout/);
  });
});

describe('the forwarder and refresh', () => {
  test('the backend\'s shapes are the forwarder\'s (src/dns/types.ts), both ways', () => {
    expectTypeOf<NftDnsName>().toEqualTypeOf<DnsName>();
    expectTypeOf<NftForwarderConfig>().toEqualTypeOf<ForwarderConfig>();
  });

  test('nftDnsNames: allow names with their sets per family, deny names refused', async () => {
    const i = await ir(MIRRORS);
    expect(nftDnsNames(i)).toEqual([
      { pattern: '*.cdn.example.com', action: 'allow', rule: 'mirrors', sets: { ipv4: 'allow_mirrors_v4_dns', ipv6: 'allow_mirrors_v6_dns' } },
      { pattern: 'deb.debian.org', action: 'allow', rule: 'mirrors', sets: { ipv4: 'allow_mirrors_v4_dns', ipv6: 'allow_mirrors_v6_dns' } },
      { pattern: '*.ads.example.net', action: 'deny', rule: 'ads', sets: {} },
    ]);
    const v6only = await ir('dns: { proxy: true }\nallow:\n  - { name: six, reason: r, family: ipv6, to: ["*.v6.example.com"] }\n');
    expect(nftDnsNames(v6only)).toEqual([{ pattern: '*.v6.example.com', action: 'allow', rule: 'six', sets: { ipv6: 'allow_six_v6_dns' } }]);
    expect(nftDnsSets(i).map((s) => s.name)).toEqual(['allow_mirrors_v4_dns', 'allow_mirrors_v6_dns']);
    expect(nftForwarderConfig(i, [{ address: '192.0.2.53', port: 53 }], 200)).toEqual({
      listen: [
        { address: '127.0.0.153', port: 153 },
        { address: '::1', port: 153 },
      ],
      upstream: [{ address: '192.0.2.53', port: 53 }],
      graceSec: 60,
      minLifetimeSec: 10,
      holdMs: 200,
      names: nftDnsNames(i),
      table: 'inet egress',
    });
  });

  kernelTest('refresh rewrites hostname sets and never flushes what the forwarder learned', async () => {
    const before = emitNft(await ir(MIRRORS)).value!.text;
    const after = await ir(MIRRORS, { 'deb.debian.org': { ipv4: ['203.0.113.5'] } });
    expect(nftStructure(emitNft(after).value!.text)).toBe(nftStructure(before));
    const refresh = emitNftRefresh(after, before)!;
    expect(refresh).not.toMatch(/_dns/);
    const r = inNetns(
      [
        'nft -f before.nft',
        // What the forwarder does: publish an answered address with its lifetime.
        'nft add element inet egress allow_mirrors_v4_dns "{ 198.51.100.99 timeout 70s }"',
        'nft -f refresh.nft',
        'nft list set inet egress allow_mirrors_v4_dns',
        'nft list set inet egress allow_mirrors_v4_hosts',
      ].join('\n'),
      { 'before.nft': before, 'refresh.nft': refresh },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/set allow_mirrors_v4_dns \{[^}]*elements = \{ 198\.51\.100\.99 timeout 1m10s expires /);
    expect(r.stdout).toMatch(/set allow_mirrors_v4_hosts \{[^}]*elements = \{ 203\.0\.113\.5 \}/);
  });
});

describe('the live ruleset', () => {
  kernelTest('what the forwarder adds to a dynamic set is neither a plan change nor drift', async () => {
    const t = emitNft(await ir(MIRRORS)).value!.text;
    const r = inNetns(
      [
        'nft -f ruleset.nft',
        'nft -j list table inet egress > before.json',
        'nft add element inet egress allow_mirrors_v6_dns "{ 2001:db8:5::5 timeout 70s }"',
        'nft -j list table inet egress > after.json',
        'cat before.json; echo; echo ----; cat after.json',
      ].join('\n'),
      { 'ruleset.nft': t },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const [before, after] = r.stdout.split('\n----\n') as [string, string];
    expect(after).toContain('2001:db8:5::5');
    const a = readNftLive(before);
    const b = readNftLive(after);
    expect(liveFingerprint(b)).toBe(liveFingerprint(a));
    expect(diff(b, a).sets).toEqual([]);
    expect(b.sets.get('allow_mirrors_v6_dns')).toEqual({ type: 'ipv6_addr', flags: ['timeout'], elements: [], learned: [{ element: '2001:db8:5::5', expiresSec: expect.any(Number) }] });
  });
});

/**
 * Two namespaces joined by a veth pair: `c` (this shell's, where the policy
 * is loaded: 192.0.2.1, 2001:db8::1) and `w` (192.0.2.53, 2001:db8::53, a
 * DNS-ish responder on 53 and 853). In `c` a stand-in forwarder answers on
 * the listen addresses, and local server on 127.0.0.1:53. `w` is a child
 * `unshare -n` reached by pid, so both namespaces vanish with this shell.
 */
const RESPONDER = `
import dgram from 'node:dgram'; import net from 'node:net';
const [name, ...eps] = process.argv.slice(2);
for (const ep of eps) {
  const i = ep.lastIndexOf(':'); const addr = ep.slice(0, i).replace(/^\\[|\\]$/g, ''); const port = +ep.slice(i + 1);
  const u = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
  u.on('message', (m, r) => u.send(name + ' ' + ep, r.port, r.address));
  u.bind(port, addr);
  net.createServer((c) => c.end(name + ' ' + ep)).listen(port, addr);
}
setTimeout(() => console.log('ready'), 300);
setTimeout(() => process.exit(0), 60_000); // a deadline of its own, should the shell die before it can end it
`;
const ASK = `
import dgram from 'node:dgram'; import net from 'node:net';
const [addr, port, proto] = process.argv.slice(2);
const done = (s) => { console.log(s); process.exit(0); };
setTimeout(() => done('timeout'), 1500);
if (proto === 'tcp') { const c = net.connect(+port, addr); c.on('data', (d) => done(String(d))); c.on('error', (e) => done(e.code)); }
else { const s = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4'); s.on('message', (m) => done(String(m))); s.on('error', (e) => done(e.code)); s.send('q', +port, addr); }
`;

describe('interception with real sockets', () => {
  kernelTest(
    'another program\'s DNS lands at the forwarder; the forwarder\'s own reaches the server; DoT is rejected and counted',
    async () => {
      const t = emitNft(await ir(MIRRORS)).value!.text;
      const node = process.execPath;
      const ask = (who: string, dst: string, port: number, proto: 'udp' | 'tcp') => {
        const as = who === 'forwarder' ? 'setpriv --regid 990 --clear-groups' : who === 'nobody' ? 'setpriv --reuid 65534 --regid 65534 --clear-groups' : '';
        return `printf '%s ' '${who} ${dst} ${port}/${proto}:'; ${as} ${node} ask.mjs ${dst} ${port} ${proto}`;
      };
      const cases: [string, string, number, 'udp' | 'tcp'][] = [];
      for (const who of ['nobody', 'root', 'forwarder'])
        for (const dst of ['192.0.2.53', '2001:db8::53']) for (const proto of ['udp', 'tcp'] as const) cases.push([who, dst, 53, proto]);
      for (const dst of ['192.0.2.53', '2001:db8::53']) for (const proto of ['udp', 'tcp'] as const) cases.push(['nobody', dst, 853, proto]);
      cases.push(['nobody', '127.0.0.1', 53, 'udp']);
      const script = [
        'ip link set lo up',
        'chmod 755 . && chmod 644 ask.mjs responder.mjs', // the probe as nobody must read its script
        // Every background process has its own output file and its pid recorded, so the shell can end them all.
        `unshare -n sh -c 'ip link set lo up; echo $$ > w.pid; exec sleep 60' > /dev/null 2>&1 < /dev/null & echo $! >> pids`,
        'cleanup() { kill $(cat pids) 2>/dev/null || true; }',
        'trap cleanup EXIT',
        'for i in 1 2 3 4 5 6 7 8 9 10; do [ -s w.pid ] && break; sleep 0.1; done',
        'W=$(cat w.pid)',
        'ip link add egc type veth peer name egw netns $W',
        'ip addr add 192.0.2.1/24 dev egc; ip -6 addr add 2001:db8::1/64 dev egc nodad; ip link set egc up',
        'nsenter -t $W -n sh -c "ip addr add 192.0.2.53/24 dev egw; ip -6 addr add 2001:db8::53/64 dev egw nodad; ip link set egw up"',
        `nsenter -t $W -n ${node} responder.mjs upstream 192.0.2.53:53 [2001:db8::53]:53 192.0.2.53:853 [2001:db8::53]:853 > w.log 2>&1 < /dev/null & echo $! >> pids`,
        `setpriv --regid 990 --clear-groups ${node} responder.mjs forwarder 127.0.0.153:153 [::1]:153 > f.log 2>&1 < /dev/null & echo $! >> pids`,
        `${node} responder.mjs local 127.0.0.1:53 > l.log 2>&1 < /dev/null & echo $! >> pids`,
        'sleep 0.8',
        'nft -f ruleset.nft',
        ...cases.map(([who, dst, port, proto]) => ask(who, dst, port, proto)),
        'nft list counters table inet egress',
      ].join('\n');
      const r = inNetns(script, { 'ruleset.nft': t, 'responder.mjs': RESPONDER, 'ask.mjs': ASK }, 120_000);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const got = new Map(
        r.stdout
          .split('\n')
          .filter((l) => l.includes('/udp:') || l.includes('/tcp:'))
          .map((l) => [l.slice(0, l.indexOf(':', l.indexOf('/')) + 1), l.slice(l.indexOf(':', l.indexOf('/')) + 2)] as const),
      );
      const want: Record<string, string> = {};
      for (const who of ['nobody', 'root'])
        for (const proto of ['udp', 'tcp']) {
          want[`${who} 192.0.2.53 53/${proto}:`] = 'forwarder 127.0.0.153:153';
          want[`${who} 2001:db8::53 53/${proto}:`] = 'forwarder [::1]:153';
        }
      for (const proto of ['udp', 'tcp']) {
        want[`forwarder 192.0.2.53 53/${proto}:`] = 'upstream 192.0.2.53:53';
        want[`forwarder 2001:db8::53 53/${proto}:`] = 'upstream [2001:db8::53]:53';
        // Rejected: a TCP reset; UDP gets an ICMP error, which an unconnected socket never sees.
        for (const dst of ['192.0.2.53', '2001:db8::53']) want[`nobody ${dst} 853/${proto}:`] = proto === 'tcp' ? 'ECONNREFUSED' : 'timeout';
      }
      want['nobody 127.0.0.1 53/udp:'] = 'local 127.0.0.1:53';
      expect(Object.fromEntries(got)).toEqual(want);
      const counter = (name: string) => Number(new RegExp(`counter ${name} \\{\\s*packets (\\d+)`).exec(r.stdout)?.[1]);
      // Four DoT attempts, one packet each (the UDP probe once, the TCP SYN once: the reset ends it).
      expect(counter('dns_bypass')).toBe(4);
      // Eight queries redirected (nobody and root, two families, udp and tcp): one count per connection.
      expect(counter('dns_redirect')).toBe(8);
      expect(counter('dns_forwarder')).toBeGreaterThanOrEqual(4);
    },
    120_000,
  );
});
