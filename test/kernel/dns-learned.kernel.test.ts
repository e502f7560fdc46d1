/**
 * What the DNS forwarder learned outlives a reload: apply and rollback
 * replace `table inet egress` but keep, in the same transaction, each live
 * `flags timeout` set the new ruleset declares too, elements and all — also
 * what the forwarder published after apply read the table, also across a
 * change of mode or default (kept in the output chain's comment, re-created
 * with the chain). Where that cannot be done (a table an older egress loaded,
 * or a set declared differently), the loader carries each learned element
 * with the seconds it had left. A set the new ruleset no
 * longer has takes its elements with it.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { compilePolicy } from '../../src/index.js';
import { load, readLive } from '../../src/kernel/backend.js';
import { realExecer } from '../../src/kernel/exec.js';
import { createNetns, netnsName, uniqueTag } from '../../src/kernel/netns.js';
import { mustRun } from '../../src/kernel/where.js';
import { loadText } from '../helpers.js';
import { kernelDescribe, useRootGuard } from './harness.js';

const POLICY = `version: 1
default: reject
dns: { proxy: true, upstream: [192.0.2.53] }
allow:
  - { name: cdn, reason: r, to: ["*.cdn.example.com"], ports: [tcp/443] }
  - { name: api, reason: r, to: ["*.api.example.org"], ports: [tcp/443] }
`;

kernelDescribe('learned DNS elements across a reload', () => {
  useRootGuard();
  const x = realExecer();
  const w = { execer: x, netns: netnsName(uniqueTag(), 'learned') };
  let del: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    del = await createNetns(x, w.netns);
  }, 60_000);
  afterAll(async () => {
    await del?.();
  }, 60_000);

  const artifact = async (text: string) => {
    const l = await loadText(text);
    expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    return compilePolicy(l.ir!, 'nft').value!;
  };
  const learned = async (set: string) => (await readLive(w, 'nft')).live.sets.get(set)?.learned ?? [];

  test('re-apply keeps them with their time left; a ruleset without the set drops them; nothing else is carried', async () => {
    const art = await artifact(POLICY);
    expect(await load(w, 'nft', art, await readLive(w, 'nft'))).toBeUndefined();
    await mustRun(w, ['nft', '-f', '-'], 'add element inet egress allow_cdn_v4_dns { 198.51.100.7 timeout 600s, 198.51.100.8 timeout 2s }\nadd element inet egress allow_cdn_v6_dns { 2001:db8:1::7 timeout 600s }\n');
    const before = await learned('allow_cdn_v4_dns');
    expect(before.map((l) => l.element).sort()).toEqual(['198.51.100.7', '198.51.100.8']);

    expect(await load(w, 'nft', art, await readLive(w, 'nft'))).toBeUndefined();
    const after = await learned('allow_cdn_v4_dns');
    expect(after.map((l) => l.element).sort()).toEqual(before.map((l) => l.element).sort());
    for (const a of after) expect(a.expiresSec).toBeLessThanOrEqual(before.find((b) => b.element === a.element)!.expiresSec);
    expect(after.find((a) => a.element === '198.51.100.7')!.expiresSec).toBeGreaterThan(500); // not reset to the set's default, not shortened to nothing
    expect((await learned('allow_cdn_v6_dns')).map((l) => l.element)).toEqual(['2001:db8:1::7']);
    expect(await learned('allow_api_v4_dns')).toEqual([]);

    // Published after the loader read the live table (the forwarder does not stop while apply runs): kept, and a
    // refresh meanwhile is not undone by the older lifetime that was read.
    const read = await readLive(w, 'nft');
    await mustRun(w, ['nft', '-f', '-'], 'add element inet egress allow_cdn_v4_dns { 198.51.100.9 timeout 600s }\ndelete element inet egress allow_cdn_v4_dns { 198.51.100.7 }\nadd element inet egress allow_cdn_v4_dns { 198.51.100.7 timeout 900s }\n');
    expect(await load(w, 'nft', art, read)).toBeUndefined();
    const kept = await learned('allow_cdn_v4_dns');
    expect(kept.map((l) => l.element).filter((e) => e !== '198.51.100.8').sort()).toEqual(['198.51.100.7', '198.51.100.9']); // .8 lives 2 s
    expect(kept.find((a) => a.element === '198.51.100.7')!.expiresSec).toBeGreaterThan(800);

    // Audit mode and back: mode and default are in the output chain, so the table and its learned sets stay too —
    // an element published after the read survives the mode change (it was lost when they were in the table's comment).
    const audit = await artifact(`mode: audit\n${POLICY}`);
    const beforeAudit = await readLive(w, 'nft');
    await mustRun(w, ['nft', '-f', '-'], 'add element inet egress allow_cdn_v4_dns { 198.51.100.10 timeout 600s }\n');
    expect(await load(w, 'nft', audit, beforeAudit)).toBeUndefined();
    const inAudit = await readLive(w, 'nft');
    expect(inAudit.live.mode).toBe('audit');
    expect((inAudit.live.sets.get('allow_cdn_v4_dns')?.learned ?? []).map((l) => l.element).filter((e) => e !== '198.51.100.8').sort()).toEqual(['198.51.100.10', '198.51.100.7', '198.51.100.9']);
    expect(await load(w, 'nft', art, inAudit)).toBeUndefined();
    expect((await readLive(w, 'nft')).live.mode).toBe('enforce');

    // A policy without the cdn rule: its sets and what they learned are gone.
    expect(await load(w, 'nft', await artifact(POLICY.replace(/ {2}- \{ name: cdn.*\n/, '')), await readLive(w, 'nft'))).toBeUndefined();
    const live = (await readLive(w, 'nft')).live;
    expect([...live.sets.keys()].filter((n) => n.includes('cdn'))).toEqual([]);
  }, 60_000);
});
