import { describe, expect, test } from 'vitest';
import { diff, liveFingerprint, planIsEmpty, planSize } from './diff.js';
import { readIptablesSaves } from '../backends/iptables/parse-live.js';
import { normalizeElements, readNftLive } from '../backends/nft/parse-live.js';
import { emptyLive } from '../backends/live.js';
import { planJson, renderPlanText } from '../report/plan.js';

const nftJson = (rules: object[], sets: object[] = [], counters: object[] = []) =>
  JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'inet', name: 'egress', handle: 1 } },
      ...counters,
      ...sets,
      { chain: { family: 'inet', table: 'egress', name: 'output', handle: 2, type: 'filter', hook: 'output', prio: 0, policy: 'accept' } },
      ...rules,
    ],
  });

const rule = (handle: number, comment: string, expr: object[]) => ({ rule: { family: 'inet', table: 'egress', chain: 'output', handle, comment, expr } });
const accept = (addr: string, comment: string, handle = 5) =>
  rule(handle, comment, [{ match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: addr } }, { counter: { packets: handle, bytes: 9 } }, { accept: null }]);
const hostSet = (elem: unknown[]) => ({ set: { family: 'inet', name: 'allow_web_v4_hosts', table: 'egress', type: 'ipv4_addr', handle: 3, elem } });

describe('readNftLive', () => {
  test('absent table', () => {
    expect(readNftLive(undefined).present).toBe(false);
  });

  test('rules keyed without handles and counts; text from the -a listing; mode from the table comment', () => {
    const text = 'table inet egress { # handle 1\n\tcomment "egress: mode audit, default drop"\n\tchain output { # handle 2\n\t\tip daddr 192.0.2.1 counter packets 7 bytes 9 accept comment "web: r" # handle 7\n\t}\n}\n';
    const l = readNftLive(nftJson([accept('192.0.2.1', 'web: r', 7)]), text);
    expect(l).toMatchObject({ present: true, mode: 'audit', default: 'drop' });
    const r = l.chains.get('output')![0]!;
    expect(r).toMatchObject({ text: 'ip daddr 192.0.2.1 counter accept comment "web: r"', comment: 'web: r', packets: 7, bytes: 9 });
    expect(r.key).not.toMatch(/handle|"packets"/);
    expect(readNftLive(nftJson([accept('192.0.2.1', 'web: r', 8)])).chains.get('output')![0]!.key).toBe(r.key);
    // apply verifies a load by the fingerprint of the JSON listing alone (no text listing: one nft process fewer).
    expect(liveFingerprint(readNftLive(nftJson([accept('192.0.2.1', 'web: r', 7)])))).toBe(liveFingerprint(l));
  });

  test.each([
    [[{ prefix: { addr: '192.0.2.0', len: 24 } }, '198.51.100.7'], ['192.0.2.0/24', '198.51.100.7']],
    [[{ range: ['192.0.2.0', '192.0.2.255'] }], ['192.0.2.0/24']],
    [['2001:db8::1', '192.0.2.1'], ['192.0.2.1', '2001:db8::1']],
  ])('set elements %j normalize to %j', (elem, want) => {
    expect(readNftLive(nftJson([], [hostSet(elem)])).sets.get('allow_web_v4_hosts')!.elements).toEqual(want);
  });

  test('normalizeElements merges spellings of one interval', () => {
    expect(normalizeElements(['192.0.2.0-192.0.2.255', '192.0.2.0/24'])).toEqual(['192.0.2.0/24']);
  });

  test('normalizeElements sorts by family, then by first address (not by text)', () => {
    expect(normalizeElements(['2001:db8::10', '198.51.100.7', '2001:db8::9', '192.0.2.200', '192.0.2.0/25', '10.0.0.0-10.0.0.2'])).toEqual([
      '10.0.0.0-10.0.0.2',
      '192.0.2.0/25',
      '192.0.2.200',
      '198.51.100.7',
      '2001:db8::9',
      '2001:db8::10',
    ]);
  });
});

describe('diff', () => {
  const live = readNftLive(nftJson([accept('192.0.2.1', 'a: r', 5), accept('192.0.2.2', 'b: r', 6)], [hostSet(['192.0.2.80'])], [{ counter: { name: 'allow_a_v4', packets: 1, bytes: 2 } }]));

  test('the same ruleset is no change, whatever the counts', () => {
    const again = readNftLive(nftJson([accept('192.0.2.1', 'a: r', 50), accept('192.0.2.2', 'b: r', 60)], [hostSet(['192.0.2.80'])], [{ counter: { name: 'allow_a_v4', packets: 99, bytes: 99 } }]));
    const p = diff(live, again);
    expect(planIsEmpty(p)).toBe(true);
    expect(liveFingerprint(live)).toBe(liveFingerprint(again));
    expect(renderPlanText(p)).toMatch(/^no changes/);
  });

  test('rules added and removed, set elements in and out', () => {
    const want = readNftLive(nftJson([accept('192.0.2.1', 'a: r', 5), accept('192.0.2.3', 'c: r', 6)], [hostSet(['192.0.2.81'])], [{ counter: { name: 'allow_a_v4', packets: 0, bytes: 0 } }]));
    const p = diff(live, want);
    expect(p.rules.map((r) => [r.op, r.comment])).toEqual([
      ['remove', 'b: r'],
      ['add', 'c: r'],
    ]);
    expect(p.sets).toEqual([{ name: 'allow_web_v4_hosts', op: 'change', added: ['192.0.2.81'], removed: ['192.0.2.80'] }]);
    expect(planSize(p)).toBe(4);
    expect(liveFingerprint(live)).not.toBe(liveFingerprint(want));
    expect(planJson(p)).toMatchObject({ changes: true, count: 4, table: null });
  });

  test('order is meaning: the same rules reordered is a change', () => {
    const want = readNftLive(nftJson([accept('192.0.2.2', 'b: r', 5), accept('192.0.2.1', 'a: r', 6)], [hostSet(['192.0.2.80'])], [{ counter: { name: 'allow_a_v4', packets: 0, bytes: 0 } }]));
    const p = diff(live, want);
    expect(p.rules).toEqual([]);
    expect(p.reordered).toEqual(['output']);
    expect(planIsEmpty(p)).toBe(false);
  });

  test('nothing live: the table is created; mode and default from settings', () => {
    const p = diff(emptyLive('nft'), live, {}, { mode: 'enforce', default: 'reject' });
    expect(p).toMatchObject({ table: 'create', mode: { to: 'enforce' }, default: { to: 'reject' } });
    expect(p.objects).toContainEqual({ op: 'add', kind: 'chain', name: 'output' });
  });

  test('taking it out', () => {
    expect(diff(live, emptyLive('nft')).table).toBe('remove');
  });

  test('mode change with the same rules', () => {
    const p = diff(live, live, { mode: 'audit', default: 'reject' }, { mode: 'enforce', default: 'reject' });
    expect(p.mode).toEqual({ from: 'audit', to: 'enforce' });
    expect(p.default).toBeUndefined();
  });
});

describe('readIptablesSaves', () => {
  const save4 = [
    '# Generated by iptables-save v1.8.9',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [10:100]',
    ':DOCKER - [0:0]',
    ':EGRESS - [0:0]',
    ':EGRESS-smtp - [0:0]',
    '[3:180] -A OUTPUT -j EGRESS',
    '[0:0] -A OUTPUT -d 10.0.0.0/8 -j DOCKER',
    '[2:120] -A EGRESS -o lo -m comment --comment "builtin: loopback" -j ACCEPT',
    '[1:60] -A EGRESS -p tcp -m tcp --dport 25 -m comment --comment "smtp: no mail" -j EGRESS-smtp',
    '[1:60] -A EGRESS-smtp -m comment --comment "smtp: no mail"',
    '[0:0] -A DOCKER -j RETURN',
    'COMMIT',
  ].join('\n');

  test('reads only what egress owns, with counts', () => {
    const l = readIptablesSaves({ ipv4: save4, ipv6: '' });
    expect([...l.chains.keys()]).toEqual(['ipv4:EGRESS', 'ipv4:EGRESS-smtp']);
    expect(l.jumps).toEqual({ ipv4: 1, ipv6: 0 });
    expect(l.chains.get('ipv4:EGRESS')![1]).toMatchObject({ key: '-A EGRESS -p tcp -m tcp --dport 25 -m comment --comment "smtp: no mail" -j EGRESS-smtp', comment: 'smtp: no mail', packets: 1 });
  });

  test('a missing IPv6 side is a pending change', () => {
    const l = readIptablesSaves({ ipv4: save4, ipv6: '' });
    const want = readIptablesSaves({ ipv4: save4, ipv6: save4 });
    const p = diff(l, want);
    expect(p.objects).toContainEqual({ op: 'add', kind: 'jump', name: 'ipv6:OUTPUT -j EGRESS' });
    expect(p.objects).toContainEqual({ op: 'add', kind: 'chain', name: 'ipv6:EGRESS' });
  });

  test('nothing owned', () => {
    expect(readIptablesSaves({ ipv4: '*filter\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n', ipv6: undefined }).present).toBe(false);
  });
});
