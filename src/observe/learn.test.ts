import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { Loaded } from '../index.js';
import { KernelLineParser } from '../logs/parse-kernel.js';
import { indexedEvaluator } from '../sim/indexed.js';
import { Deduper } from './dedupe.js';
import { FlowCollector, learnedYaml, learnRules, verifyLearned, type Learned } from './learn.js';
import { mergeLearned } from './learn-merge.js';
import { NameIndex } from './names.js';
import { accountNames, FlowMaker } from './replay.js';
import type { NameRecord } from '../logs/dns-log.js';
import { ACCOUNTS, fixedResolver, loadText, NOW } from '../../test/helpers.js';
import { FWD_ICMP6, FWD_OTHER4, FWD_TCP4, FWD_TCP6, FWD_UDP4, iso, TCP4 } from '../../test/observe/lines.js';
import { ROOT } from '../../test/paths.js';

const GOLDEN = join(ROOT, 'test', 'observe', 'golden', 'learn');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const HOSTS = { 'mirror.example.org': { ipv4: ['198.51.100.80'], ipv6: ['2001:db8:80::80'] } };

function golden(file: string, got: string): void {
  const path = join(GOLDEN, file);
  rmSync(path + '.got', { force: true });
  if (UPDATE) return void writeFileSync(path, got);
  if (!existsSync(path)) {
    writeFileSync(path + '.got', got);
    throw new Error(`missing golden file ${path} (run with UPDATE_GOLDEN=1 to create it)`);
  }
  const want = readFileSync(path, 'utf8');
  if (want !== got) writeFileSync(path + '.got', got);
  expect(got).toBe(want);
}

/** A denied TCP SYN line: audit mode, the default. */
function syn(dst: string, port: number, uid: number | undefined, spt: number, at = '2026-11-23T09:00:00Z'): string {
  let f = TCP4.replace('DST=198.51.100.7', `DST=${dst}`).replace('DPT=25', `DPT=${port}`).replace('SPT=57408', `SPT=${spt}`);
  f = uid === undefined ? f.replace('UID=33 GID=33 ', '') : f.replace('UID=33 GID=33', `UID=${uid} GID=${uid}`);
  return iso(`EGRESS p:- ${f}`, at);
}

async function learnFrom(policyText: string, lines: string[], answers?: NameRecord[]): Promise<{ l: Loaded; learned: Learned }> {
  const l = await loadText(policyText, { hosts: HOSTS });
  let index: NameIndex | undefined;
  if (answers) {
    index = new NameIndex(l.ir!.dns ?? { graceSec: 60, minLifetimeSec: 10 });
    for (const a of answers) index.add(a);
  }
  const c = new FlowCollector(l.ir!, ACCOUNTS, index);
  const p = new KernelLineParser({ now: NOW.getTime() });
  const d = new Deduper();
  for (const line of lines) {
    const e = p.parseLine(line);
    if (e) c.add(e, d.isNew(e));
  }
  const taken = [...l.policy!.allow, ...l.policy!.deny].map((r) => r.ref.name);
  return { l, learned: learnRules(c.seen(), { ir: l.ir!, accounts: ACCOUNTS, taken }) };
}

const POLICY = readFileSync(join(GOLDEN, 'policy.yaml'), 'utf8');
const describeUser = (uid: number) => accountNames(ACCOUNTS).users.get(uid) ?? `uid ${uid}`;

// What a week of audit mode on web1 logged.
const SEEN = [
  // mirror.example.org on port 80 as well (the policy only allows 443): named by its hostname, both ports in one rule.
  syn('198.51.100.80', 80, 0, 1000, '2026-11-23T09:00:00Z'),
  syn('198.51.100.80', 80, 0, 1000, '2026-11-23T09:00:01Z'), // retransmission
  syn('198.51.100.80', 80, 0, 1001, '2026-11-23T10:00:00Z'),
  // two partner API addresses for appuser: one rule, two destinations.
  syn('203.0.113.10', 8443, 1001, 2000),
  syn('203.0.113.11', 8443, 1001, 2001),
  // a CDN: five addresses of one /24 on 443 as www-data: collapsed to the /24.
  ...[1, 2, 3, 4, 5].map((i) => syn(`198.51.100.${100 + i}`, 443, 33, 3000 + i)),
  // the same backup host reached by two users: one rule, both users.
  syn('192.0.2.200', 873, 0, 4000),
  syn('192.0.2.200', 873, 33, 4001),
  // no uid in the log line: a rule for every user.
  iso(`EGRESS p:- ${TCP4.replace('DST=198.51.100.7', 'DST=192.0.2.77').replace('DPT=25', 'DPT=9100').replace('UID=33 GID=33 ', '')}`),
  // caught by the smtp deny rule: not learnable.
  iso(`EGRESS d:smtp ${TCP4}`),
  // already allowed by dns.
  iso(`EGRESS p:- ${TCP4.replace('DST=198.51.100.7', 'DST=192.0.2.53').replace('DPT=25', 'DPT=53')}`),
  // GRE: cannot be allowed without allowing every protocol.
  iso('EGRESS p:- IN= OUT=eth0 SRC=192.0.2.1 DST=192.0.2.9 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=47 UID=0 GID=0 '),
];

describe('learn', () => {
  test('groups the way an operator writes rules', async () => {
    const { learned } = await learnFrom(POLICY, SEEN);
    expect(learned.rules.map((r) => ({ name: r.name, to: r.to, ports: r.ports, users: r.users, connections: r.connections }))).toEqual([
      { name: 'learned-198-51-100-0-www-data', to: ['198.51.100.0/24'], ports: ['tcp/443'], users: ['www-data'], connections: 5 },
      { name: 'learned-192-0-2-200', to: ['192.0.2.200'], ports: ['tcp/873'], users: ['root', 'www-data'], connections: 2 },
      { name: 'learned-tcp8443-appuser', to: ['203.0.113.10', '203.0.113.11'], ports: ['tcp/8443'], users: ['appuser'], connections: 2 },
      { name: 'learned-mirror-example-org-root', to: ['mirror.example.org'], ports: ['tcp/80'], users: ['root'], connections: 2 },
      { name: 'learned-192-0-2-77', to: ['192.0.2.77'], ports: ['tcp/9100'], users: [], connections: 1 },
    ]);
    expect(learned.rules[0]!.collapsed).toEqual([{ prefix: '198.51.100.0/24', seen: ['198.51.100.101', '198.51.100.102', '198.51.100.103', '198.51.100.104', '198.51.100.105'] }]);
    expect(learned.notLearned.map((n) => [n.flow.dst, n.why, n.rules])).toEqual([
      ['198.51.100.7', 'denied-by-rule', ['smtp']],
      ['192.0.2.9', 'protocol', undefined],
    ]);
    expect(learned.alreadyAllowed).toBe(1);
  });

  test('ports of one destination merge; ICMP joins as icmp:', async () => {
    const ping = iso('EGRESS p:- IN= OUT=eth0 SRC=192.0.2.1 DST=192.0.2.200 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=4315 DF PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 UID=0 GID=0 ');
    const { learned } = await learnFrom(POLICY, [syn('192.0.2.200', 873, 0, 1), syn('192.0.2.200', 22, 0, 2), ping]);
    expect(learned.rules.map((r) => [r.to, r.ports, r.icmp, r.users])).toEqual([[['192.0.2.200'], ['tcp/22', 'tcp/873'], ['echo-request'], ['root']]]);
  });

  test('round trip: the policy with the learned rules admits every flow it was learned from (and the deny still denies)', async () => {
    const { learned } = await learnFrom(POLICY, SEEN);
    const merged = mergeLearned(POLICY, learnedYaml(learned.rules, describeUser));
    const l2 = await loadText(merged, { hosts: HOSTS });
    expect(l2.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const evaluate = indexedEvaluator(l2.ir!);
    const maker = new FlowMaker(accountNames(ACCOUNTS));
    const p = new KernelLineParser({ now: NOW.getTime() });
    const verdicts = SEEN.map((line) => p.parseLine(line)).map((e) => (e ? evaluate(maker.flow(e)!).verdict : 'unparsed'));
    // smtp stays denied (reject), GRE stays at the default; everything else is accepted.
    expect(verdicts.filter((v) => v !== 'accept')).toEqual(['reject', 'reject']);
  });

  test('verifyLearned: merged, every learned flow is accepted; not merged, every one is still denied; a merge that breaks the policy says so', async () => {
    const { learned } = await learnFrom(POLICY, SEEN);
    const opts = { resolver: fixedResolver(HOSTS), now: NOW, baseDir: '.' };
    const flows = learned.rules.flatMap((r) => r.flows);
    const merged = mergeLearned(POLICY, learnedYaml(learned.rules, describeUser));
    expect(await verifyLearned(learned, ACCOUNTS, 'policy.yaml', merged, opts)).toEqual({ flows: flows.length, stillDenied: [] });
    expect(await verifyLearned(learned, ACCOUNTS, 'policy.yaml', POLICY, opts)).toEqual({ flows: flows.length, stillDenied: flows });
    const broken = await verifyLearned(learned, ACCOUNTS, 'policy.yaml', 'version: 1\nallow: [\n', opts);
    expect(broken.broken?.diagnostics.map((d) => d.code)).toContain('yaml-syntax');
    // Nothing learned: nothing to load, so not even a broken text is read.
    expect(await verifyLearned({ ...learned, rules: [] }, ACCOUNTS, 'policy.yaml', 'allow: [\n', opts)).toEqual({ flows: 0, stillDenied: [] });
  });

  test('golden: --write keeps every comment and the layout, adds commented rules at the end of allow', async () => {
    const { learned } = await learnFrom(POLICY, SEEN);
    const items = learnedYaml(learned.rules, describeUser);
    golden('policy.learned.yaml', mergeLearned(POLICY, items));
    // Every original line is still there, in order.
    const merged = mergeLearned(POLICY, items).split('\n');
    let i = 0;
    for (const line of POLICY.split('\n')) {
      while (i < merged.length && merged[i] !== line) i++;
      expect(i, `line ${JSON.stringify(line)} kept`).toBeLessThan(merged.length);
    }
  });

  test.each([
    ['empty-allow.yaml', 'empty-allow.learned.yaml'],
    ['no-allow.yaml', 'no-allow.learned.yaml'],
  ])('golden: %s', async (input, out) => {
    const text = readFileSync(join(GOLDEN, input), 'utf8');
    const { learned } = await learnFrom(text, [syn('198.51.100.80', 80, 0, 1000)]);
    const merged = mergeLearned(text, learnedYaml(learned.rules, describeUser));
    golden(out, merged);
    const l2 = await loadText(merged, { hosts: HOSTS });
    expect(l2.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    // This policy names no host, so the address stays an address.
    expect(l2.policy!.allow.map((r) => r.ref.name)).toEqual(['learned-198-51-100-80-root']);
  });

  test('a non-empty flow allow sequence is re-rendered (comments kept)', () => {
    const text = 'version: 1 # v\nallow: [{ name: a, reason: r, ports: [tcp/1] }] # inline\n';
    const merged = mergeLearned(text, '- name: b\n  reason: r\n  ports: [tcp/2]\n');
    expect(merged).toContain('# v');
    expect(merged).toContain('name: b');
    expect(merged).toContain('name: a');
  });
});

const PROXY = readFileSync(join(GOLDEN, 'proxy-policy.yaml'), 'utf8');

/** A forwarded answer (dns-answer record) at `at`. */
function answer(name: string, addresses: string[], at: string, uid?: number, ttl = 30): NameRecord {
  return { time: Date.parse(at), kind: 'answer', name, qtype: 'A', addresses, ttl, rules: [], proto: 'udp', ...(uid !== undefined ? { uid } : {}) };
}

const ANSWERS = [
  answer('www.example.org', ['198.51.100.7'], '2026-11-23T09:00:00Z', 33),
  // the same address, later, for another name to another user: the answer to the flow's own user wins
  answer('other.example.org', ['198.51.100.7'], '2026-11-23T09:00:03Z', 1001),
  // a partner API whose address rotated between the two connections
  answer('api.partner.example.com', ['203.0.113.5'], '2026-11-23T09:10:00Z', 1001),
  answer('api.partner.example.com', ['203.0.113.6'], '2026-11-23T09:59:59Z', 1001),
  // three names of one CDN
  answer('a.cdn.example.net', ['198.51.100.21'], '2026-11-23T09:20:00Z', 33),
  answer('b.cdn.example.net', ['198.51.100.22'], '2026-11-23T09:20:00Z', 33),
  answer('c.d.cdn.example.net', ['198.51.100.23'], '2026-11-23T09:20:00Z', 33),
  // answered long before the connection (TTL 30 + grace 60): no name
  answer('late.example.org', ['192.0.2.99'], '2026-11-23T09:00:00Z', 0),
  // a name the policy refuses now (answered before the deny rule was added)
  answer('x.evil.test', ['192.0.2.66'], '2026-11-23T09:00:00Z', 0),
];

const DNS_SEEN = [
  syn('198.51.100.7', 443, 33, 5000, '2026-11-23T09:00:05Z'),
  syn('203.0.113.5', 8443, 1001, 5001, '2026-11-23T09:10:01Z'),
  syn('203.0.113.6', 8443, 1001, 5002, '2026-11-23T10:00:00Z'),
  syn('198.51.100.21', 9443, 33, 5003, '2026-11-23T09:20:01Z'),
  syn('198.51.100.22', 9443, 33, 5004, '2026-11-23T09:20:01Z'),
  syn('198.51.100.23', 9443, 33, 5005, '2026-11-23T09:20:02Z'),
  syn('192.0.2.99', 22, 0, 5006, '2026-11-23T11:00:00Z'),
  syn('192.0.2.66', 80, 0, 5007, '2026-11-23T09:00:01Z'),
];

describe('learn with the DNS forwarder’s answers', () => {
  test('addresses become the names they were answered for; crowded siblings a wildcard; the rest stay addresses, with why', async () => {
    const { learned } = await learnFrom(PROXY, DNS_SEEN, ANSWERS);
    const byPort = Object.fromEntries(learned.rules.map((r) => [r.ports.join(), r]));
    expect(byPort['tcp/443']).toMatchObject({ to: ['www.example.org'], users: ['www-data'], names: [{ name: 'www.example.org', addresses: ['198.51.100.7'], sameUser: true }] });
    expect(byPort['tcp/8443']).toMatchObject({ to: ['api.partner.example.com'], users: ['appuser'], connections: 2, names: [{ name: 'api.partner.example.com', addresses: ['203.0.113.5', '203.0.113.6'] }] });
    expect(byPort['tcp/9443']).toMatchObject({ to: ['*.cdn.example.net'], wildcards: [{ pattern: '*.cdn.example.net', seen: ['a.cdn.example.net', 'b.cdn.example.net', 'c.d.cdn.example.net'] }] });
    expect(byPort['tcp/22']).toMatchObject({ to: ['192.0.2.99'], names: [], unnamed: [] });
    expect(byPort['tcp/80']).toMatchObject({ to: ['192.0.2.66'], unnamed: [{ address: '192.0.2.66', name: 'x.evil.test', why: 'a deny rule names it (the forwarder refuses it)' }] });
  });

  test('the merged policy passes check, and admits each flow once the forwarder answered its name; a wrong name does not', async () => {
    const { learned } = await learnFrom(PROXY, DNS_SEEN, ANSWERS);
    const items = learnedYaml(learned.rules, describeUser);
    expect(items).toContain('to: ["*.cdn.example.net"]');
    expect(items).toContain('# www.example.org: the DNS forwarder had just answered it with 198.51.100.7 (to the same user)');
    expect(items).toContain('# *.cdn.example.net stands for 3 names seen: a.cdn.example.net, b.cdn.example.net, c.d.cdn.example.net');
    expect(items).toContain('# 192.0.2.66 was answered for x.evil.test, kept as the address: a deny rule names it');
    const merged = mergeLearned(PROXY, items);
    const l2 = await loadText(merged);
    expect(l2.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const opts = { resolver: fixedResolver(HOSTS), now: NOW, baseDir: '.' };
    const flows = learned.rules.flatMap((r) => r.flows);
    expect(await verifyLearned(learned, ACCOUNTS, 'policy.yaml', merged, opts)).toEqual({ flows: flows.length, stillDenied: [] });
    // The oracle is not vacuous: a rule for another name admits nothing of its flows.
    const wrong = mergeLearned(PROXY, items.replace('to: [www.example.org]', 'to: [www.example.com]'));
    expect((await verifyLearned(learned, ACCOUNTS, 'policy.yaml', wrong, opts)).stillDenied.map((f) => f.dst)).toEqual(['198.51.100.7']);
  });

  test('without dns.proxy the addresses stay, and the comment says which name and why not', async () => {
    const { learned } = await learnFrom(PROXY.replace('dns: { proxy: true, upstream: [192.0.2.53] }\n', '').replace(/deny:[^]*$/, ''), DNS_SEEN, ANSWERS);
    expect(learned.rules.flatMap((r) => r.to).sort()).toEqual(['192.0.2.66', '192.0.2.99', '198.51.100.21', '198.51.100.22', '198.51.100.23', '198.51.100.7', '203.0.113.5', '203.0.113.6']);
    const items = learnedYaml(learned.rules, describeUser);
    expect(items).toContain('# 198.51.100.7 was answered for www.example.org, kept as the address: the policy does not set dns.proxy: true');
  });
});

const FORWARD = readFileSync(join(GOLDEN, 'forward-policy.yaml'), 'utf8');

/** A container's SYN forwarded from `src` on `inIf`, logged by audit mode's forward default. */
function fwd(dst: string, port: number, src: string, spt: number, tag = 'p', inIf = 'br-test'): string {
  return iso(`EGRESS ${tag}:- ${FWD_TCP4.replace('IN=br-test', `IN=${inIf}`).replace('SRC=198.51.100.2', `SRC=${src}`).replace('DST=203.0.113.9', `DST=${dst}`).replace('DPT=443', `DPT=${port}`).replace('SPT=43210', `SPT=${spt}`)}`);
}

const FWD_SEEN = [
  // two containers to the registry, and one over IPv6 to its v6 address: one rule from docker, both destinations.
  fwd('203.0.113.9', 443, '198.51.100.2', 1),
  fwd('203.0.113.9', 443, '198.51.100.4', 2),
  iso(`EGRESS p:- ${FWD_TCP6.replace('DST=2001:0db8:0002:0000:0000:0000:0000:0009', 'DST=2001:0db8:0002:0000:0000:0000:0000:0443')}`),
  // the git container (in docker and gitbox) to a git server over ssh: from both.
  fwd('192.0.2.10', 22, '198.51.100.3', 3),
  // the host itself to the registry, as www-data: a host rule of its own.
  syn('203.0.113.9', 443, 33, 4),
  // already allowed by dns (from host and docker).
  iso(`EGRESS p:- ${FWD_UDP4}`),
  // caught by no-ping: not learnable.
  iso(`EGRESS d:no-ping ${FWD_ICMP6}`),
  // a VM on an interface no source lists: let through (warn), reported with the source to add.
  iso(`EGRESS u:- ${FWD_OTHER4}`),
  iso(`EGRESS u:- ${FWD_OTHER4.replace('SPT=50000', 'SPT=50001').replace('SRC=192.0.2.77', 'SRC=192.0.2.78')}`),
];

describe('learn from forwarded traffic (SPEC §6)', () => {
  test('rules from: the sources the flows belong to, never a user; unlisted flows name the source to add', async () => {
    const { learned } = await learnFrom(FORWARD, FWD_SEEN);
    expect(learned.rules.map((r) => ({ name: r.name, from: r.from, to: r.to, ports: r.ports, users: r.users, connections: r.connections }))).toEqual([
      { name: 'learned-tcp443-docker', from: ['docker'], to: ['203.0.113.9', '2001:db8:2::443'], ports: ['tcp/443'], users: [], connections: 3 },
      { name: 'learned-192-0-2-10', from: ['docker', 'gitbox'], to: ['192.0.2.10'], ports: ['tcp/22'], users: [], connections: 1 },
      { name: 'learned-203-0-113-9-www-data', from: [], to: ['203.0.113.9'], ports: ['tcp/443'], users: ['www-data'], connections: 1 },
    ]);
    expect(learned.notLearned.map((n) => [n.flow.dst, n.flow.forwarded, n.why, n.rules])).toEqual([['2001:db8:2::9', { in: 'br-test', src: '2001:db8:1::2' }, 'denied-by-rule', ['no-ping']]]);
    expect(learned.alreadyAllowed).toBe(1);
    expect(learned.unlisted).toMatchObject([{ interface: 'tap-vm1', addresses: ['192.0.2.77', '192.0.2.78'], connections: 2, unlisted: 'warn', source: { name: 'tap-vm1', interfaces: ['tap-vm1'] }, default: 'reject' }]);
    expect(learned.unlisted[0]!.flows.map((f) => [f.dst, f.port, f.forwarded!.src, f.connections])).toEqual([
      ['203.0.113.9', 443, '192.0.2.77', 1],
      ['203.0.113.9', 443, '192.0.2.78', 1],
    ]);
  });

  test('the YAML carries from: and where the flows came from; merged, it checks and admits every flow (not merged: none)', async () => {
    const { learned } = await learnFrom(FORWARD, FWD_SEEN);
    const items = learnedYaml(learned.rules, describeUser);
    expect(items).toContain('  from: [docker, gitbox]\n');
    expect(items).toContain('# forwarded from br-test, per source address: 198.51.100.2 1, 198.51.100.4 1, 2001:db8:1::2 1\n');
    expect(items).not.toMatch(/every user/);
    const merged = mergeLearned(FORWARD, items);
    golden('forward-policy.learned.yaml', merged);
    const l2 = await loadText(merged);
    expect(l2.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const opts = { resolver: fixedResolver(HOSTS), now: NOW, baseDir: '.' };
    const flows = learned.rules.flatMap((r) => r.flows);
    expect(await verifyLearned(learned, ACCOUNTS, 'policy.yaml', merged, opts)).toEqual({ flows: flows.length, stillDenied: [] });
    expect((await verifyLearned(learned, ACCOUNTS, 'policy.yaml', FORWARD, opts)).stillDenied).toEqual(flows);
    // The forward rule admits the containers, not the host: the host's own flow needs its own rule.
    const hostOnly = mergeLearned(FORWARD, learnedYaml(learned.rules.filter((r) => r.from.length), describeUser));
    const still = await verifyLearned({ ...learned, rules: learned.rules.filter((r) => !r.from.length) }, ACCOUNTS, 'policy.yaml', hostOnly, opts);
    expect(still.stillDenied.map((f) => [f.dst, f.uid])).toEqual([['203.0.113.9', 33]]);
  });

  test('without a forward scope every forwarded flow is unlisted; the proposed source name avoids taken ones', async () => {
    const { learned } = await learnFrom(POLICY, [fwd('203.0.113.9', 443, '198.51.100.2', 1)]);
    expect(learned.rules).toEqual([]);
    expect(learned.unlisted).toMatchObject([{ interface: 'br-test', unlisted: 'none', source: { name: 'br-test' }, default: 'reject' }]);
    const taken = await learnFrom(FORWARD.replace('gitbox: { networks', 'br-x: { networks'), [fwd('203.0.113.9', 443, '192.0.2.5', 1, 'u', 'br.x')]);
    expect(taken.learned.unlisted.map((u) => u.source.name)).toEqual(['br-x-2']);
  });
});
