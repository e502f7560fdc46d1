import { describe, expect, test } from 'vitest';
import { ACCOUNTS, NOW } from '../../test/helpers.js';
import { loadForLab, SPARE_ID_BASE } from './lab.js';

describe('loadForLab', () => {
  test('pins hostnames to documentation addresses no literal uses', async () => {
    const yaml = 'version: 1\nallow:\n  - name: m\n    reason: r\n    to: [a.example, b.example, 203.0.113.100]\n    ports: [tcp/443]\n';
    const { loaded, hosts } = await loadForLab('p.yaml', yaml, { now: NOW, accounts: ACCOUNTS });
    expect(loaded.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(hosts).toEqual([
      { name: 'a.example', ipv4: ['203.0.113.116'], ipv6: ['2001:db8:ffff::100'] },
      { name: 'b.example', ipv4: ['203.0.113.132'], ipv6: ['2001:db8:ffff::110'] },
    ]);
  });

  test('maps users and groups missing here to spare ids, keeps the ones that exist', async () => {
    const yaml = 'version: 1\nallow:\n  - name: m\n    reason: r\n    user: [postfix, ghost]\n    group: [phantom]\n    ports: [tcp/25]\n';
    const accounts = { ...ACCOUNTS, users: new Map([...ACCOUNTS.users, ['taken', SPARE_ID_BASE]]) };
    const { identities, accounts: lab, loaded } = await loadForLab('p.yaml', yaml, { now: NOW, accounts });
    expect(identities).toEqual([
      { kind: 'user', name: 'ghost', id: SPARE_ID_BASE + 1, spare: true },
      { kind: 'user', name: 'postfix', id: 107, spare: false },
      { kind: 'group', name: 'phantom', id: SPARE_ID_BASE + 2, spare: true },
    ]);
    expect(lab.users.get('ghost')).toBe(SPARE_ID_BASE + 1);
    expect(loaded.ir!.rules[0]!.users).toEqual(expect.arrayContaining([
      { name: 'ghost', id: SPARE_ID_BASE + 1 },
      { name: 'postfix', id: 107 },
    ]));
  });
});

describe('loadForLab under dns.proxy', () => {
  test('the forwarder group is mapped to a spare gid when the machine lacks it, and used in the IR', async () => {
    const yaml = 'version: 1\ndns:\n  proxy: true\nallow:\n  - name: m\n    reason: r\n    to: ["*.example.com"]\n    ports: [tcp/443]\n';
    const without = { ...ACCOUNTS, groups: new Map([...ACCOUNTS.groups].filter(([n]) => n !== 'egress-dns')) };
    const { identities, loaded, accounts } = await loadForLab('p.yaml', yaml, { now: NOW, accounts: without });
    expect(identities).toEqual([{ kind: 'group', name: 'egress-dns', id: SPARE_ID_BASE, spare: true }]);
    expect(accounts.groups.get('egress-dns')).toBe(SPARE_ID_BASE);
    expect(loaded.ir!.dns!.forwarder).toEqual({ name: 'egress-dns', id: SPARE_ID_BASE });
    expect(loaded.diagnostics.filter((d) => /egress-dns/.test(d.message))).toEqual([]);
    // The machine's own group when it has one.
    const mine = await loadForLab('p.yaml', yaml, { now: NOW, accounts: ACCOUNTS });
    expect(mine.identities).toEqual([{ kind: 'group', name: 'egress-dns', id: ACCOUNTS.groups.get('egress-dns'), spare: false }]);
  });
});
