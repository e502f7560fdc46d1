/**
 * The `dns:` surface: its errors and warnings (code, severity, 1-based
 * line/col of the offending value), the name grammar, and what a policy with
 * `dns.proxy` becomes after resolve and lower.
 */
import { describe, expect, test } from 'vitest';
import { locate } from '../diag/render.js';
import { fixedResolver, loadText, NOW } from '../../test/helpers.js';
import { loadPolicyText } from '../index.js';
import { printIr } from '../ir/print.js';
import { formatDuration, nameMatches, parseDuration, parseName, parseUpstream } from './dns-name.js';
import { chooseUpstream, parseResolvConf } from '../resolve/dns.js';

const HOSTS = { 'deb.debian.org': { ipv4: ['198.51.100.7'], ipv6: ['2001:db8:7::7'] }, 'mail.example.org': { ipv4: ['192.0.2.25'] } };

async function diags(text: string) {
  const l = await loadText(text, { hosts: HOSTS });
  return l.diagnostics.map((d) => {
    const loc = d.span ? locate(l.sources, d.span) : undefined;
    return { code: d.code, severity: d.severity, at: loc ? `${loc.file}:${loc.line}:${loc.col}` : undefined };
  });
}

const proxy = (body: string) => `version: 1\ndns:\n  proxy: true\n${body}`;
const plain = (body: string) => `version: 1\n${body}`;

describe('errors', () => {
  test.each([
    ['wildcard without dns.proxy', plain('allow:\n  - name: a\n    to: ["*.cdn.example.com"]\n'), 'wildcard-needs-proxy', 'policy.yaml:4:10'],
    ['wildcard with dns.proxy false', 'version: 1\ndns: { proxy: false }\nallow:\n  - name: a\n    to: ["*.cdn.example.com"]\n', 'wildcard-needs-proxy', 'policy.yaml:5:10'],
    ['wildcard in a set without proxy', plain('sets:\n  cdn: ["*.cdn.example.com"]\nallow:\n  - name: a\n    to: [$cdn]\n'), 'wildcard-needs-proxy', 'policy.yaml:3:9'],
    ['wildcard in the middle', proxy('allow:\n  - name: a\n    to: ["a.*.example.com"]\n'), 'bad-wildcard', 'policy.yaml:6:10'],
    ['wildcard inside a label', proxy('allow:\n  - name: a\n    to: ["cdn*.example.com"]\n'), 'bad-wildcard', 'policy.yaml:6:10'],
    ['bare *', proxy('allow:\n  - name: a\n    to: ["*"]\n'), 'bad-wildcard', 'policy.yaml:6:10'],
    ['*.com', proxy('allow:\n  - name: a\n    to: ["*.com"]\n'), 'bad-wildcard', 'policy.yaml:6:10'],
    ['**.example.com', proxy('allow:\n  - name: a\n    to: ["**.example.com"]\n'), 'bad-wildcard', 'policy.yaml:6:10'],
    ['*.*.example.com', proxy('allow:\n  - name: a\n    to: ["*.*.example.com"]\n'), 'bad-wildcard', 'policy.yaml:6:10'],
    ['wildcard with an odd character', proxy('allow:\n  - name: a\n    to: ["*.c_dn.example.com"]\n'), 'bad-wildcard', 'policy.yaml:6:10'],
    ['underscore in a name', plain('allow:\n  - name: a\n    to: [mirror_1.example.com]\n'), 'bad-hostname', 'policy.yaml:4:10'],
    ['non-ASCII name', plain('allow:\n  - name: a\n    to: [bücher.example]\n'), 'bad-hostname', 'policy.yaml:4:10'],
    ['empty label', plain('allow:\n  - name: a\n    to: [a..example.com]\n'), 'bad-hostname', 'policy.yaml:4:10'],
    ['label starting with "-"', plain('allow:\n  - name: a\n    to: [-a.example.com]\n'), 'bad-hostname', 'policy.yaml:4:10'],
    ['label of 64 characters', plain(`allow:\n  - name: a\n    to: [${'a'.repeat(64)}.example.com]\n`), 'bad-hostname', 'policy.yaml:4:10'],
    ['wildcard in an except', proxy('deny:\n  - name: d\n    ports: [tcp/25]\n    except: { to: ["*.mail.example.com"] }\n'), 'wildcard-in-except', 'policy.yaml:7:20'],
    [
      'wildcard in an except through a set',
      proxy('sets:\n  mx: ["*.mail.example.com"]\ndeny:\n  - name: d\n    ports: [tcp/25]\n    except: { to: [$mx] }\n'),
      'wildcard-in-except',
      'policy.yaml:9:20',
    ],
    ['upstream a name', proxy('  upstream: [dns.example.com]\n'), 'bad-upstream', 'policy.yaml:4:14'],
    ['upstream garbage', proxy('  upstream: ["192.0.2.53:dns"]\n'), 'bad-upstream', 'policy.yaml:4:14'],
    ['upstream loopback', proxy('  upstream: [127.0.0.53]\n'), 'bad-upstream', 'policy.yaml:4:14'],
    ['upstream ::1', proxy('  upstream: ["::1"]\n'), 'bad-upstream', 'policy.yaml:4:14'],
    ['upstream port out of range', proxy('  upstream: ["192.0.2.53:65536"]\n'), 'bad-upstream', 'policy.yaml:4:14'],
    ['upstream multicast', proxy('  upstream: [224.0.0.251]\n'), 'bad-upstream', 'policy.yaml:4:14'],
    ['upstream IPv4 in brackets', proxy('  upstream: ["[192.0.2.53]:53"]\n'), 'bad-upstream', 'policy.yaml:4:14'],
    ['upstream an empty list', proxy('  upstream: []\n'), 'bad-upstream', 'policy.yaml:4:3'],
    ['upstream a number', proxy('  upstream: [53]\n'), 'bad-type', 'policy.yaml:4:14'],
    ['bad duration', proxy('  grace: 60 seconds\n'), 'bad-duration', 'policy.yaml:4:10'],
    ['duration without a unit', proxy('  grace: "60"\n'), 'bad-duration', 'policy.yaml:4:10'],
    ['duration a YAML number', proxy('  grace: 60\n'), 'bad-type', 'policy.yaml:4:10'],
    ['duration unit twice', proxy('  min_lifetime: 1m1m\n'), 'bad-duration', 'policy.yaml:4:17'],
    ['grace too long', proxy('  grace: 2h\n'), 'duration-out-of-range', 'policy.yaml:4:10'],
    ['min_lifetime zero', proxy('  min_lifetime: 0s\n'), 'duration-out-of-range', 'policy.yaml:4:17'],
    ['min_lifetime too long', proxy('  min_lifetime: 61m\n'), 'duration-out-of-range', 'policy.yaml:4:17'],
    ['unknown dns key', proxy('  upstreams: [192.0.2.53]\n'), 'unknown-key', 'policy.yaml:4:3'],
    ['proxy not a boolean', 'version: 1\ndns:\n  proxy: yes please\n', 'bad-type', 'policy.yaml:3:10'],
  ])('%s', async (_, text, code, at) => {
    const ds = await diags(text);
    expect(ds.filter((d) => d.severity === 'error')).toContainEqual({ code, severity: 'error', at });
  });

  test('a wildcard without the proxy is a note-carrying error and leaves nothing to resolve', async () => {
    const l = await loadText('version: 1\ndns: { proxy: false }\nallow:\n  - name: a\n    to: ["*.cdn.example.com"]\n');
    const d = l.diagnostics.find((x) => x.code === 'wildcard-needs-proxy')!;
    expect(d.notes?.map((n) => locate(l.sources, n.span!)?.line)).toEqual([2]);
    expect(l.ir).toBeUndefined();
  });
});

describe('warnings', () => {
  test.each([
    ['tcp/443 to anywhere next to name rules', proxy('allow:\n  - { name: m, reason: r, to: ["*.cdn.example.com"], ports: [tcp/443] }\n  - name: web\n    reason: r\n    ports: [tcp/443, udp/443]\n'), 'hostname-rules-advisory', 'policy.yaml:8:5'],
    ['any protocol to 0.0.0.0/0', proxy('allow:\n  - { name: m, reason: r, to: [deb.debian.org], ports: [tcp/443] }\n  - { name: all, reason: r, to: [0.0.0.0/0] }\n'), 'hostname-rules-advisory', 'policy.yaml:6:13'],
    ['deny rule with names', proxy('deny:\n  - name: ads\n    reason: r\n    to: ["*.ads.example.net", track.example.org]\n'), 'deny-name-refused', 'policy.yaml:7:5'],
    ['allow rule on port 53', proxy('allow:\n  - name: dns\n    reason: r\n    to: [192.0.2.53]\n    ports: [udp/53]\n'), 'dns-rule-overridden', 'policy.yaml:8:5'],
    ['allow rule on port 853', proxy('allow:\n  - name: dot\n    reason: r\n    to: [192.0.2.53]\n    ports: [tcp/853]\n'), 'dns-rule-overridden', 'policy.yaml:8:5'],
    ['dns settings without proxy', 'version: 1\ndns:\n  upstream: [192.0.2.53]\n', 'dns-settings-unused', 'policy.yaml:2:1'],
  ])('%s', async (_, text, code, at) => {
    const ds = await diags(text);
    expect(ds.filter((d) => d.severity === 'error')).toEqual([]);
    expect(ds).toContainEqual({ code, severity: 'warning', at });
  });

  test('no advisory warning without names, and none for a rule with destinations', async () => {
    expect((await diags(proxy('allow:\n  - { name: web, reason: r, ports: [tcp/443] }\n'))).map((d) => d.code)).not.toContain('hostname-rules-advisory');
    // (no-dns-upstream: the test resolver has no resolv.conf)
    expect((await diags(proxy('allow:\n  - { name: m, reason: r, to: ["*.cdn.example.com", 192.0.2.1], ports: [tcp/443] }\n'))).map((d) => d.code)).toEqual(['no-dns-upstream']);
  });

  test('a deny rule whose selectors cannot narrow a refusal says so', async () => {
    const l = await loadText(proxy('deny:\n  - { name: d, reason: r, to: [x.example.org], ports: [tcp/25], except: { user: postfix } }\n'));
    const d = l.diagnostics.find((x) => x.code === 'deny-name-refused')!;
    expect(d.message).toBe(
      'deny rule "d": its names ("x.example.org") are answered REFUSED by the DNS forwarder, not denied by address; the rule\'s "ports", "except" cannot narrow a refusal, so every program is refused them',
    );
  });

  test('the forwarder group missing on this host is a warning naming it', async () => {
    const text = proxy('  upstream: [192.0.2.53]\n');
    const l = await loadPolicyText('policy.yaml', text, { resolver: fixedResolver(), now: NOW, baseDir: '.' });
    expect(l.diagnostics.map((d) => d.code)).toEqual([]);
    const bare = await loadPolicyText('policy.yaml', text, { resolver: { ...fixedResolver(), accounts: async () => ({ users: new Map(), groups: new Map(), primaryGroup: new Map() }) }, now: NOW });
    expect(bare.diagnostics.map((d) => [d.code, locate(bare.sources, d.span!)?.line])).toEqual([['unknown-user', 3]]);
    expect(printIr(bare.ir!)).toContain('forwarder group egress-dns\n');
  });
});

describe('grammar', () => {
  test.each([
    ['*.cdn.example.com', 'a.cdn.example.com', true],
    ['*.cdn.example.com', 'a.b.cdn.example.com', true],
    ['*.cdn.example.com', 'A.CDN.Example.com.', true],
    ['*.cdn.example.com', 'cdn.example.com', false],
    ['*.cdn.example.com', 'xcdn.example.com', false],
    ['*.cdn.example.com', '.cdn.example.com', false],
    ['*.cdn.example.com', 'a..cdn.example.com', false],
    ['deb.debian.org', 'DEB.debian.org.', true],
    ['deb.debian.org', 'x.deb.debian.org', false],
  ])('%s covers %s: %s', (pattern, name, want) => expect(nameMatches(pattern, name)).toBe(want));

  test('names are normalized', () => {
    expect(parseName('*.CDN.Example.COM.')).toEqual({ kind: 'wildcard', pattern: '*.cdn.example.com' });
    expect(parseName('Deb.Debian.Org')).toEqual({ kind: 'host', name: 'deb.debian.org' });
  });

  test.each([
    ['60s', 60],
    ['2m', 120],
    ['1h', 3600],
    ['1m30s', 90],
    ['0s', 0],
    ['1h1s', 3601],
  ])('duration %s = %i s', (text, sec) => {
    expect(parseDuration(text)).toBe(sec);
    expect(parseDuration(formatDuration(sec))).toBe(sec);
  });

  test.each(['60', '1.5s', '-1s', '1d', 's', '1s1m1s', ' '])('bad duration %j', (text) => expect(parseDuration(text)).toBeUndefined());

  test.each([
    ['192.0.2.53', 'ipv4', '192.0.2.53', 53],
    ['192.0.2.53:5353', 'ipv4', '192.0.2.53', 5353],
    ['2001:db8::53', 'ipv6', '2001:db8::53', 53],
    ['[2001:DB8:0::53]:5353', 'ipv6', '2001:db8::53', 5353],
  ])('upstream %s', (text, family, address, port) => expect(parseUpstream(text)).toEqual({ kind: 'ok', family, address, port }));

  test('resolv.conf: non-loopback nameservers only, else systemd-resolved\'s', () => {
    expect(parseResolvConf('# x\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\nsearch x\n')).toEqual([
      { family: 'ipv4', address: '10.0.0.2', port: 53 },
      { family: 'ipv6', address: '2001:db8::53', port: 53 },
    ]);
    expect(chooseUpstream({}, { system: 'nameserver 127.0.0.53\n', resolved: 'nameserver 192.0.2.1\n' })).toEqual({
      from: 'systemd-resolved',
      servers: [{ family: 'ipv4', address: '192.0.2.1', port: 53 }],
    });
    expect(chooseUpstream({}, { system: 'nameserver 192.0.2.9\n', resolved: 'nameserver 192.0.2.1\n' }).from).toBe('/etc/resolv.conf');
    expect(chooseUpstream({}, {})).toEqual({ from: 'none', servers: [] });
    expect(chooseUpstream({}, undefined)).toEqual({ from: 'unknown', servers: [] });
  });
});

describe('resolve and lower', () => {
  const load = async (body: string) => {
    const l = await loadText(proxy(body), { hosts: HOSTS });
    expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    return l;
  };

  test('an allow rule: exact names resolved now and followed; wildcards followed; both families whatever resolves', async () => {
    const l = await load('allow:\n  - { name: m, reason: r, to: [mail.example.org, "*.cdn.example.com"], ports: [tcp/443] }\n');
    expect(printIr(l.ir!).split('\n').filter((x) => x.startsWith('rule') || x.startsWith('dns'))).toEqual([
      'dns proxy upstream system grace 1m min_lifetime 10s listen {127.0.0.153:153, [::1]:153} forwarder group egress-dns(990)',
      'rule allow m ipv4 dst {192.0.2.25[0]} dns {*.cdn.example.com, mail.example.org} l4 tcp {443}',
      'rule allow m ipv6 dst {} dns {*.cdn.example.com, mail.example.org} l4 tcp {443}',
    ]);
    // The IPv6 hostname set exists, empty, so a refresh can fill it in place.
    expect(l.ir!.rules.map((r) => r.sets!.map((s) => `${s.kind}:${s.elements.length}:${(s.patterns ?? s.hosts).join(',')}`))).toEqual([
      ['hostnames:1:mail.example.org', 'dns:0:*.cdn.example.com,mail.example.org'],
      ['hostnames:0:mail.example.org', 'dns:0:*.cdn.example.com,mail.example.org'],
    ]);
  });

  test('a deny rule: names are refused, never resolved, and deny no address; literal addresses still do', async () => {
    const l = await load('deny:\n  - { name: d, reason: r, to: [deb.debian.org, "*.ads.example.net", 192.0.2.66] }\n  - { name: only, reason: r, to: [mail.example.org] }\n');
    expect(l.resolved!.hosts).toEqual([]);
    const ir = printIr(l.ir!);
    expect(ir).toContain('dns refused *.ads.example.net rule d\ndns refused deb.debian.org rule d\ndns refused mail.example.org rule only\n');
    expect(l.ir!.rules.map((r) => `${r.origin.name} ${r.family}`)).toEqual(['d ipv4']);
    expect(ir).toContain('rule deny d ipv4 dst {192.0.2.66[0]} l4 any');
  });

  test('names in an except are resolved as without the proxy', async () => {
    const l = await load('deny:\n  - { name: d, reason: r, ports: [tcp/25], except: { to: [mail.example.org] } }\n');
    expect(l.resolved!.hosts.map((h) => h.name)).toEqual(['mail.example.org']);
    expect(l.ir!.dns!.refused).toEqual([]);
  });

  test('family: restricts the dynamic sets too', async () => {
    const l = await load('allow:\n  - { name: m, reason: r, family: ipv6, to: ["*.cdn.example.com"] }\n');
    expect(l.ir!.rules.map((r) => r.family)).toEqual(['ipv6']);
  });

  test('without the proxy, names behave exactly as before (no dns sets, no Ir.dns)', async () => {
    const l = await loadText(plain('allow:\n  - { name: m, reason: r, to: [mail.example.org], ports: [tcp/443] }\n'), { hosts: HOSTS });
    expect(l.ir!.dns).toBeUndefined();
    // Both families (the name may gain an IPv6 address; refresh fills that set in place), hostname sets only.
    expect(l.ir!.rules.map((r) => r.family)).toEqual(['ipv4', 'ipv6']);
    expect(l.ir!.rules.map((r) => r.sets!.map((s) => s.kind))).toEqual([['hostnames'], ['hostnames']]);
  });
});
