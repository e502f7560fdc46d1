/**
 * Campaign class 'resolver' (issue 12, D16): what names resolve to, through
 * check, compile and explain in-process (a fixed resolver), through the
 * apply-time compile with the state's last known good addresses, and
 * through the DNS forwarder with scripted upstreams. The standard: a
 * special-purpose answer (loopback, unspecified, link-local and the
 * metadata service, multicast, broadcast, IPv4-mapped) never admits
 * anything, and a rule that excludes or denies still does; huge answers are
 * bounded and exact; a name that fails is closed (a warning, no address) or
 * keeps its last known good addresses; never a stack trace or "internal
 * error".
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dnsPacket, { type Answer } from 'dns-packet';
import fc from 'fast-check';
import { afterEach, describe, expect, test } from 'vitest';
import { loadDesired } from '../../src/cli/kernel-flags.js';
import { Forwarder } from '../../src/dns/forwarder.js';
import { a, aaaa, addressesOf, askTcp, askUdp, cname, decode, FakeUpstream, FakeWriter, isTc, query, rcodeOf, respond, type Script } from '../../src/dns/dns.testkit.js';
import type { DnsName } from '../../src/dns/types.js';
import { noneSnapshot, writeState } from '../../src/kernel/state.js';
import { parseAddress, parseDest } from '../../src/policy/address.js';
import type { HostAddresses, Resolver } from '../../src/resolve/resolver.js';
import { run } from '../cli/run.js';
import { captureIo, fixedResolver, tempDir } from '../helpers.js';
import { attack, expectNoCrash, sample, SEED } from './tally.js';
import { envelope } from '../json.js';

const CLS = 'resolver';
const dir = tempDir('egress-campaign-resolver-');
const env = { EGRESS_STATE_DIR: join(dir, 'state') };

/** Special-purpose addresses as a resolver may hand them over (several spellings of some). */
const SPECIAL4 = ['0.0.0.0', '0.1.2.3', '127.0.0.1', '127.255.255.254', '169.254.169.254', '169.254.0.1', '224.0.0.1', '239.255.255.250', '240.0.0.1', '255.255.255.255'];
const SPECIAL6 = ['::', '::1', '0:0:0:0:0:0:0:1', '0000:0000::0001', 'fe80::1', 'FE80::1', 'febf::1', 'fe80::a9fe:a9fe', 'ff02::1', 'FF02::1', 'ff0e::1', '::ffff:192.0.2.1', '::FFFF:192.0.2.1', '0:0:0:0:0:ffff:c000:201', '::ffff:169.254.169.254', '::ffff:7f00:1'];
const SPECIAL = [...SPECIAL4.map((x) => ({ family: 'ipv4' as const, x })), ...SPECIAL6.map((x) => ({ family: 'ipv6' as const, x }))];
const ORDINARY = { ipv4: '192.0.2.80', ipv6: '2001:db8::80' };
const LOOPBACK = (x: string) => /^127\.|^::1$|^0:0:0:0:0:0:0:1$|^0000:0000::0001$/.test(x);

const value = (x: string) => parseAddress(x)!;

/** Every element of every nft set in a compiled ruleset, as intervals. */
function nftElements(text: string): { set: string; lo: bigint; hi: bigint; family: string }[] {
  const out: { set: string; lo: bigint; hi: bigint; family: string }[] = [];
  for (const m of text.matchAll(/set (\S+) \{[^}]*?elements = \{([^}]*)\}/g)) {
    for (const tok of m[2]!.split(',').map((t) => t.trim()).filter(Boolean)) {
      const d = parseDest(tok);
      if (d.kind !== 'addr') throw new Error(`not an element: ${tok}`);
      out.push({ set: m[1]!, lo: d.lo, hi: d.hi, family: d.family });
    }
  }
  return out;
}
const holds = (els: ReturnType<typeof nftElements>, x: string, set: RegExp) => {
  const v = value(x);
  return els.some((e) => set.test(e.set) && e.family === v.family && e.lo <= v.value && v.value <= e.hi);
};
/** The iptables destinations (`-d`) of a compiled ruleset. */
const iptDests = (text: string) => [...text.matchAll(/ -d (\S+)/g)].map((m) => parseDest(m[1]!)).filter((d) => d.kind === 'addr');

async function cli(argv: string[], resolver: Resolver, cwd = dir) {
  const r = await run(argv, { cwd, resolver, env });
  expectNoCrash(r.stdout + r.stderr);
  return r;
}

let n = 0;
function policyFile(text: string): string {
  const f = `p${++n}.yaml`;
  writeFileSync(join(dir, f), text);
  return f;
}

const ALLOW = (name: string) => `version: 1\ndefault: reject\nallow:\n  - name: web\n    reason: the web\n    to: [${name}]\n    ports: [tcp/443]\n`;
const DENY = (name: string) => `version: 1\ndefault: accept\ndeny:\n  - name: nometa\n    reason: not there\n    to: [${name}]\n`;
const DENY_EXCEPT = (name: string) => `version: 1\ndefault: accept\ndeny:\n  - name: most\n    reason: only what is excepted\n    to: [0.0.0.0/0, "::/0"]\n    except: { to: [${name}] }\n`;

const hostsOf = (fam: 'ipv4' | 'ipv6', xs: string[]): HostAddresses => ({ ipv4: fam === 'ipv4' ? xs : [], ipv6: fam === 'ipv6' ? xs : [] });

describe('special-purpose answers (check, compile, explain)', () => {
  test('an allow rule never admits them; check warns about each', async () => {
    const trials = SPECIAL.flatMap((s) => [
      { ...s, with: false },
      { ...s, with: true },
    ]);
    await attack(CLS, 'special answers: allow rules', trials, (t) => `${t.x}${t.with ? ' and an ordinary address' : ''}`, async (t) => {
      const answer = t.with ? [t.x, ORDINARY[t.family]] : [t.x];
      const resolver = fixedResolver({ 'meta.example': hostsOf(t.family, answer) });
      const f = policyFile(ALLOW('meta.example'));
      const c = await cli(['check', f, '--json'], resolver);
      expect(c.code).toBe(0);
      const warned = envelope(c.stdout, 'check').diagnostics.filter((d) => d.code === 'special-address');
      expect(warned.map((d) => d.message)).toEqual([expect.stringContaining(`resolved to ${t.x}, a special-purpose address`)]);
      const nft = await cli(['compile', f, '--target', 'nft'], resolver);
      expect(nft.code).toBe(0);
      const els = nftElements(nft.stdout);
      expect(holds(els, t.x, /^allow_/)).toBe(false);
      if (t.with) expect(holds(els, ORDINARY[t.family], /^allow_web_v[46]_hosts$/)).toBe(true);
      const ipt = await cli(['compile', f, '--target', 'iptables'], resolver);
      expect(ipt.code).toBe(0);
      const v = value(t.x);
      expect(iptDests(ipt.stdout).some((d) => d.kind === 'addr' && d.family === v.family && d.lo <= v.value && v.value <= d.hi)).toBe(false);
      const ex = await cli(['explain', f, '--to', t.x, '--port', 'tcp/443'], resolver);
      expect(ex.code).toBe(0);
      expect(ex.stdout).not.toContain('by allow rule "web"');
      const byName = await cli(['explain', f, '--to', 'meta.example', '--port', 'tcp/443'], resolver);
      expect(byName.stdout.split(/\n(?=\S)/).filter((b) => b.includes('by allow rule "web"')).map((b) => b.split(' ')[0])).toEqual(t.with ? [ORDINARY[t.family]] : []);
    });
  });

  test('a deny rule still denies them, and a deny’s except does not carve them out', async () => {
    const shapes = [
      { shape: 'deny', text: DENY },
      { shape: 'deny except', text: DENY_EXCEPT },
    ];
    // Loopback is accepted by the builtin before any rule: its verdict says nothing about the rule.
    const trials = shapes.flatMap((s) => SPECIAL.filter((x) => !LOOPBACK(x.x)).map((x) => ({ ...s, ...x })));
    await attack(CLS, 'special answers: deny rules and excepts', trials, (t) => `${t.shape}: ${t.x}`, async (t) => {
      const resolver = fixedResolver({ 'meta.example': hostsOf(t.family, [t.x]) });
      const f = policyFile(t.text('meta.example'));
      const ex = await cli(['explain', f, '--to', t.x, '--port', 'tcp/443'], resolver);
      expect(ex.code).toBe(0);
      if (t.shape === 'deny') expect(ex.stdout).toContain('by deny rule "nometa"');
      if (t.shape === 'deny except') expect(ex.stdout).toContain('by deny rule "most"');
      const nft = await cli(['compile', f, '--target', 'nft'], resolver);
      expect(nft.code).toBe(0);
      const els = nftElements(nft.stdout);
      if (t.shape === 'deny') expect(holds(els, t.x, /^deny_nometa_v[46]_hosts$/)).toBe(true);
      if (t.shape === 'deny except') expect(holds(els, t.x, /^deny_most_.*_hosts$/)).toBe(false);
    });
  });
});

describe('huge answers', () => {
  test('2,000 to 10,000 addresses for one name: every ordinary one an element once, no special one', async () => {
    const sizes = [2000, 2047, 5000, 10_000];
    const trials = sizes.flatMap((size) => [
      { size, family: 'ipv4' as const, specials: false, dupes: false },
      { size, family: 'ipv6' as const, specials: true, dupes: false },
      { size, family: 'ipv4' as const, specials: true, dupes: true },
    ]);
    await attack(CLS, 'huge answers (check, compile)', trials, (t) => `${t.size} ${t.family}${t.specials ? ' with specials' : ''}${t.dupes ? ' each twice' : ''}`, async (t) => {
      const ordinary = Array.from({ length: t.size }, (_, i) =>
        t.family === 'ipv4' ? `${[198, 51, 100][0]}.${51 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}` : `2001:db8::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}`,
      );
      const specials = t.specials ? (t.family === 'ipv4' ? SPECIAL4 : SPECIAL6) : [];
      const answer = [...ordinary, ...(t.dupes ? ordinary : []), ...specials].reverse();
      const resolver = fixedResolver({ 'big.example': hostsOf(t.family, answer) });
      const f = policyFile(ALLOW('big.example'));
      const c = await cli(['check', f, '--json'], resolver);
      expect(c.code).toBe(0);
      const warned = envelope(c.stdout, 'check').diagnostics.filter((d) => d.code === 'special-address');
      // Spellings of one address are one element and one warning.
      expect(warned.length).toBe(new Set(specials.map((x) => value(x).value)).size);
      const nft = await cli(['compile', f, '--target', 'nft'], resolver);
      expect(nft.code).toBe(0);
      const els = nftElements(nft.stdout).filter((e) => e.set.startsWith('allow_web_'));
      expect(els.length).toBe(t.size);
      expect(new Set(els.map((e) => e.lo)).size).toBe(t.size);
      for (const x of specials) expect(holds(els, x, /./)).toBe(false);
    });
  });
});

describe('resolution failures and last known good', () => {
  /** A resolver whose every lookup fails with `err` (thrown as is). */
  const failing = (err: unknown): Resolver => ({ ...fixedResolver(), lookupHost: () => Promise.reject(err) });

  test('a name that fails at check or compile is closed, with a warning; nothing unreadable in it crashes', async () => {
    const errors: { what: string; err: unknown }[] = [
      { what: 'ENOTFOUND', err: Object.assign(new Error('getaddrinfo ENOTFOUND meta.example'), { code: 'ENOTFOUND' }) },
      { what: 'EAI_AGAIN', err: Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' }) },
      { what: 'timed out', err: new Error('timed out') },
      { what: 'a string', err: 'boom' },
      { what: 'undefined', err: undefined },
      { what: 'null', err: null },
      { what: 'an object', err: { code: 5 } },
      { what: 'escapes and newlines', err: new Error('\u001b[2J\u001b]0;pwned\u0007\nline two\r\u009b31m') },
      { what: 'a 100 kB message', err: new Error('x'.repeat(100_000)) },
    ];
    const answers: { what: string; hosts: HostAddresses }[] = [
      { what: 'no addresses', hosts: { ipv4: [], ipv6: [] } },
      { what: 'not addresses', hosts: { ipv4: ['not-an-ip', '', '1.2.3', '192.0.2.1 ', '0x7f.0.0.1', '0177.0.0.1'], ipv6: ['fe80::1%eth0', ':::', 'zz::1'] } },
    ];
    const trials = [...errors.map((e) => ({ ...e, resolver: failing(e.err), warns: true })), ...answers.map((x) => ({ what: x.what, resolver: fixedResolver({ 'meta.example': x.hosts }), warns: false }))];
    await attack(CLS, 'resolution failures (check, compile, explain)', trials, (t) => t.what, async (t) => {
      const f = policyFile(ALLOW('meta.example'));
      const c = await cli(['check', f], t.resolver);
      expect(c.code).toBe(0);
      if (t.warns) expect(c.stderr).toMatch(/warning: cannot resolve "meta\.example" [\s\S]*?it matches no address until it resolves/);
      const nft = await cli(['compile', f, '--target', 'nft'], t.resolver);
      expect(nft.code).toBe(0);
      expect(nftElements(nft.stdout).filter((e) => e.set.startsWith('allow_web_'))).toEqual([]);
      const ex = await cli(['explain', f, '--to', '192.0.2.1', '--port', 'tcp/443'], t.resolver);
      expect(ex.stdout).not.toContain('by allow rule "web"');
    });
  });

  test('apply-time compile: a failing name keeps its last known good addresses, which admit no special one', async () => {
    const cases: { what: string; prev: HostAddresses; resolves?: HostAddresses; policy: (n: string) => string; admitted: string[]; denied?: string[]; notAdmitted: string[] }[] = [
      { what: 'ordinary LKG kept', prev: { ipv4: ['192.0.2.10'], ipv6: ['2001:db8::10'] }, policy: ALLOW, admitted: ['192.0.2.10', '2001:db8::10'], notAdmitted: [] },
      { what: 'LKG from before D16 holds the metadata service', prev: { ipv4: ['169.254.169.254', '192.0.2.10'], ipv6: ['::1', 'fe80::1'] }, policy: ALLOW, admitted: ['192.0.2.10'], notAdmitted: ['169.254.169.254', '::1', 'fe80::1'] },
      { what: 'LKG holds only special addresses', prev: { ipv4: ['127.0.0.1', '0.0.0.0'], ipv6: ['::'] }, policy: ALLOW, admitted: [], notAdmitted: ['127.0.0.1', '0.0.0.0', '::'] },
      { what: 'LKG holds text that is no address', prev: { ipv4: ['not-an-ip', '', '192.0.2.11', '2001:db8::11'], ipv6: ['x', '192.0.2.12'] }, policy: ALLOW, admitted: ['192.0.2.11'], notAdmitted: ['2001:db8::11', '192.0.2.12'] },
      { what: 'a deny rule keeps denying a special LKG address', prev: { ipv4: ['169.254.169.254'], ipv6: [] }, policy: DENY, admitted: [], denied: ['169.254.169.254'], notAdmitted: [] },
      { what: 'the name resolves again: the LKG is not used', prev: { ipv4: ['192.0.2.10'], ipv6: [] }, resolves: { ipv4: ['192.0.2.20'], ipv6: [] }, policy: ALLOW, admitted: ['192.0.2.20'], notAdmitted: ['192.0.2.10'] },
      { what: 'an empty LKG entry', prev: { ipv4: [], ipv6: [] }, policy: ALLOW, admitted: [], notAdmitted: [] },
    ];
    await attack(CLS, 'last known good (apply-time compile)', cases, (c) => c.what, async (c, i) => {
      const cwd = join(dir, `lkg${i}`);
      const stateDir = join(cwd, 'state');
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      writeState(stateDir, 'live', { ...noneSnapshot('nft', { user: 'root', uid: 0 }, '2026-05-01T00:00:00Z'), hosts: [{ name: 'meta.example', ...c.prev, status: 'ok' }] });
      writeFileSync(join(cwd, 'policy.yaml'), c.policy('meta.example'));
      const io = captureIo(cwd);
      io.resolver = c.resolves ? fixedResolver({ 'meta.example': c.resolves }) : failing(Object.assign(new Error('no'), { code: 'ENOTFOUND' }));
      let d;
      try {
        d = await loadDesired(io, 'policy.yaml', 'nft', {}, stateDir);
      } catch (e) {
        throw new Error(`loadDesired threw: ${(e as Error).stack?.split('\n').slice(0, 3).join(' / ')}`);
      }
      expectNoCrash(io.out + io.err);
      expect(d.desired).toBeDefined();
      const text = d.desired!.artifact.text;
      const els = nftElements(text);
      for (const x of c.admitted) expect(holds(els, x, /^allow_web_/), `${x} admitted`).toBe(true);
      for (const x of c.notAdmitted) expect(holds(els, x, /^allow_/), `${x} not admitted`).toBe(false);
      for (const x of c.denied ?? []) expect(holds(els, x, /^deny_nometa_/), `${x} denied`).toBe(true);
      if (!c.resolves && c.prev.ipv4.length + c.prev.ipv6.length) expect(io.err).toMatch(/keeping its last known addresses/);
    });
  });
});

// --- the DNS forwarder ---------------------------------------------------------------------

const NAMES: DnsName[] = [
  { pattern: 'meta.example', action: 'allow', rule: 'meta', sets: { ipv4: 'meta_4', ipv6: 'meta_6' } },
  { pattern: '*.cdn.example', action: 'allow', rule: 'cdn', sets: { ipv4: 'cdn_4', ipv6: 'cdn_6' } },
];
const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

async function forwarder(script: Script) {
  const up = await FakeUpstream.start(script);
  open.push(up);
  const writer = new FakeWriter();
  const fwd = new Forwarder(
    { listen: [{ address: '127.0.0.1', port: 0 }], upstream: [{ address: '127.0.0.1', port: up.port }], graceSec: 60, minLifetimeSec: 10, holdMs: 2000, names: NAMES, table: 'inet egress' },
    // Generous: the machine may be busy, and a timeout here would be a SERVFAIL for a reason that is not the answer's.
    { writer, uidOf: null, upstreamTimeoutMs: 15_000 },
  );
  await fwd.listen();
  open.push(fwd);
  return { writer, fwd, udp: fwd.addresses().udp[0]!.port, tcp: fwd.addresses().tcp[0]!.port };
}

/** Ask over UDP or TCP; the wait is a backstop (a busy machine), not a measure. */
const ask = async (proto: 'udp' | 'tcp', port: number, msg: Buffer) => (proto === 'udp' ? askUdp(port, msg, '127.0.0.1', 40_000) : (await askTcp(port, [msg]))[0]!);

/** The kernel's elements (set → addresses) of the fake writer. */
const published = (w: FakeWriter) => [...w.kernel.keys()].map((k) => k.split(' ')[1]!);
const same = (x: string, y: string) => {
  const p = parseAddress(x);
  const q = parseAddress(y);
  return !!p && !!q && p.family === q.family && p.value === q.value;
};

describe('the DNS forwarder', () => {
  test('special answers leave a named answer and are never published (UDP, TCP, through CNAMEs)', { timeout: 300_000 }, async () => {
    const wire = SPECIAL.filter((s, i, all) => all.findIndex((o) => same(o.x, s.x)) === i); // one spelling each: the wire has no spelling
    const trials = wire.flatMap((s) => ['direct', 'cname', 'alone'].map((how) => ({ ...s, how, proto: (['udp', 'tcp'] as const)[wire.indexOf(s) % 2]! })));
    await attack(CLS, 'forwarder: special answers', trials, (t) => `${t.x} ${t.how} over ${t.proto}`, async (t) => {
      const qtype = t.family === 'ipv4' ? 'A' : 'AAAA';
      const rr = (name: string, x: string) => (t.family === 'ipv4' ? a(name, x) : aaaa(name, x));
      const script: Script = (q) => {
        const name = q.questions![0]!.name;
        if (t.how === 'alone') return respond(q, [rr(name, t.x)]);
        if (t.how === 'direct') return respond(q, [rr(name, t.x), rr(name, ORDINARY[t.family])]);
        return respond(q, [cname(name, 'edge.elsewhere.test'), rr('edge.elsewhere.test', ORDINARY[t.family]), rr('edge.elsewhere.test', t.x)]);
      };
      const { writer, fwd, udp, tcp } = await forwarder(script);
      const r = await ask(t.proto, t.proto === 'udp' ? udp : tcp, query('meta.example', qtype));
      expect(rcodeOf(r)).toBe('NOERROR');
      const told = addressesOf(r);
      expect(told.some((x) => same(x, t.x))).toBe(false);
      expect(published(writer).some((x) => same(x, t.x))).toBe(false);
      // What the program is told was published first.
      for (const x of told) expect(published(writer).some((p) => same(p, x))).toBe(true);
      expect(told.length).toBe(t.how === 'alone' ? 0 : 1);
      expect(fwd.counters().special).toBe(1);
    });
  });

  test('maximal answers (UDP datagrams and TCP messages near 64 KiB): bounded, exact, and the forwarder still answers', async () => {
    const v4 = (i: number) => `198.51.${100 + ((i >> 8) & 3)}.${i & 255}`;
    const v6 = (i: number) => `2001:db8::${i.toString(16)}`;
    const shapes = sample(
      fc.record({
        family: fc.constantFrom('ipv4' as const, 'ipv6' as const),
        count: fc.oneof(fc.constant(-1), fc.integer({ min: 257, max: 4000 })),
        dupes: fc.boolean(),
        specials: fc.boolean(),
        proto: fc.constantFrom('udp' as const, 'tcp' as const),
        udpSize: fc.constantFrom(undefined, 512, 1232, 4096, 65_535),
        named: fc.boolean(),
      }),
      16,
      13,
    );
    await attack(CLS, 'forwarder: maximal answers', shapes, (t) => `seed ${SEED}: ${JSON.stringify(t)}`, async (t) => {
      // count -1: as many records as one message holds (65,535 bytes over TCP, a 65,507-byte datagram over UDP:
      // an upstream that ignores the asker's EDNS size).
      const script: Script = (q, proto) => {
        const name = q.questions![0]!.name;
        const limit = proto === 'udp' ? 65_507 : 65_535;
        const build = (k: number) => {
          const answers: Answer[] = [];
          for (let i = 0; i < k; i++) {
            const x = t.specials && i % 50 === 7 ? (t.family === 'ipv4' ? '169.254.169.254' : 'fe80::1') : t.family === 'ipv4' ? v4(t.dupes ? i % 100 : i) : v6(t.dupes ? i % 100 : i);
            answers.push(t.family === 'ipv4' ? a(name, x) : aaaa(name, x));
          }
          return dnsPacket.encode(respond(q, answers));
        };
        let k = t.count < 0 ? 4000 : t.count;
        for (let b = build(k); ; b = build(k)) {
          if (b.length <= limit) return b;
          k = Math.floor((k * limit) / b.length) - 1;
        }
      };
      const { writer, fwd, udp, tcp } = await forwarder(script);
      const qname = t.named ? 'meta.example' : 'other.example';
      const qtype = t.family === 'ipv4' ? 'A' : 'AAAA';
      const r = await ask(t.proto, t.proto === 'udp' ? udp : tcp, query(qname, qtype, t.udpSize));
      expect(r.length).toBeLessThanOrEqual(65_535);
      if (t.proto === 'udp') expect(r.length).toBeLessThanOrEqual(Math.max(512, t.udpSize ?? 512));
      const rc = rcodeOf(r);
      expect(['NOERROR', 'SERVFAIL']).toContain(rc);
      const told = addressesOf(r);
      if (t.named) {
        // Never more than the cap per family, never a special address, never an address that was not published.
        expect(new Set(told).size).toBeLessThanOrEqual(256);
        expect(told.some((x) => x === '169.254.169.254' || x === 'fe80::1')).toBe(false);
        const pub = new Set(published(writer));
        for (const x of told) expect(pub.has(x)).toBe(true);
        if (t.proto === 'tcp') expect(told.length).toBeGreaterThan(0);
      } else expect(writer.kernel.size).toBe(0);
      if (isTc(r)) expect(told).toEqual([]);
      // Still serving: a small question gets its answer.
      const again = await ask(t.proto, t.proto === 'udp' ? udp : tcp, query('x.cdn.example', qtype));
      expect(decode(again).id).toBeDefined();
      void fwd;
    });
  }, 300_000);
});
