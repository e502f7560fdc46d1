/**
 * `egress lab` for a policy with `dns.proxy`: the world answers DNS with
 * rotating addresses, the host runs the real forwarder (src/dns/main.ts, as
 * the lab runs it, with its nft writer in the host namespace), and name rules
 * are probed by resolving and connecting at once, as several uids, over IPv4
 * and IPv6. The lab must agree with explain on every probe — and must report
 * disagreements when publishing is broken: a ruleset whose rules no longer
 * match their DNS sets, and a forwarder that answers without publishing.
 * The policy is examples/cdn-by-name.yaml.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { BACKENDS } from '../../src/backends/registry.js';
import type { Backend } from '../../src/backends/types.js';
import { realExecer } from '../../src/kernel/exec.js';
import { loadForLab, runLab, type LabOptions } from '../../src/lab/lab.js';
import { GUARD_RULE, POOL_SIZE } from '../../src/lab/names.js';
import { labJson, labOk, renderLabText } from '../../src/report/lab.js';
import { ACCOUNTS, NOW } from '../helpers.js';
import { kernelDescribe, useRootGuard } from './harness.js';
import { ROOT } from '../paths.js';

const REGISTER = join(ROOT, 'test', 'kernel', 'fixtures', 'register-ts.mjs');
/** The forwarder from source (what dist/dns/main.js is built from). */
const FORWARDER = [process.execPath, '--import', REGISTER, join(ROOT, 'src', 'dns', 'main.ts')];
const UNPUBLISHED = [process.execPath, '--import', REGISTER, join(ROOT, 'test', 'kernel', 'fixtures', 'lab-forwarder-unpublished.ts')];

const POLICY = readFileSync(join(ROOT, 'examples', 'cdn-by-name.yaml'), 'utf8');

type Json = ReturnType<typeof labJson>;
type JsonProbe = Json['probes'][number];

async function lab(extra: Partial<LabOptions> = {}) {
  const { loaded, accounts, identities, hosts } = await loadForLab('examples/cdn-by-name.yaml', POLICY, { now: NOW, accounts: ACCOUNTS });
  expect(loaded.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const r = await runLab(loaded, accounts, identities, { execer: realExecer(), targets: ['nft'], forwarderCommand: FORWARDER, hosts, ...extra });
  const report = { ...r, hosts, identities };
  return { ok: labOk(r), json: labJson('examples/cdn-by-name.yaml', report, loaded.sources), text: renderLabText('examples/cdn-by-name.yaml', report, loaded.sources) };
}

const fam = (p: JsonProbe) => (p.flow.dst.includes(':') ? 6 : 4);
const nft = (p: JsonProbe) => p.kernel.nft!;
const names = (ps: JsonProbe[]) => ps.filter((p) => p.flow.name !== undefined);

kernelDescribe('egress lab with dns.proxy', () => {
  useRootGuard();

  test('name rules are rehearsed through the real forwarder, and the kernel agrees with explain on every probe', async () => {
    const { ok, json, text } = await lab();
    expect({ ok, disagree: json.probes.filter((p) => !nft(p).agree).map((p) => `${p.rule} ${p.why} ${JSON.stringify(p.flow)} ${JSON.stringify(nft(p))}`) }).toEqual({ ok: true, disagree: [] });
    expect(json.notProbed).toEqual([]);
    const byName = names(json.probes);

    // Every name of the allow rules, each wildcard at three depths, both families, got through as every uid tried.
    const through = byName.filter((p) => p.why === 'allow');
    const want = ['one.cdn.example.com', 'two.one.cdn.example.com', 'three.two.one.cdn.example.com', 'api.example.net', 'mail.example.org'];
    expect(new Set(through.map((p) => `${p.flow.name} ${fam(p)}`))).toEqual(new Set(want.flatMap((n) => [`${n} 4`, `${n} 6`])));
    for (const p of through) {
      expect(nft(p).verdict).toBe('accept');
      expect(p.explain).toMatchObject({ verdict: 'accept', decidedBy: 'allow' });
      expect(nft(p).answered!.length).toBeGreaterThan(0);
      expect(nft(p).answered).toContain(nft(p).dst);
    }
    expect(new Set(through.filter((p) => p.rule === 'cdn').map((p) => p.flow.uid))).toEqual(new Set([0, 65534]));
    expect(new Set(through.filter((p) => p.rule === 'mail').map((p) => p.flow.user))).toEqual(new Set(['www-data']));
    // The answers rotate: asked again and again (as each uid, on each port), the name was told different addresses, all of its pool.
    const one = byName.filter((p) => p.flow.name === 'one.cdn.example.com' && fam(p) === 4).map((p) => nft(p).answered!);
    expect(one.length).toBeGreaterThanOrEqual(3);
    expect(new Set(one.map((a) => a.join(','))).size).toBeGreaterThanOrEqual(2);
    expect(new Set(one.flat()).size).toBe(POOL_SIZE);

    // Around the name rules: all blocked, as explain says.
    const around = byName.filter((p) => p.why === 'around');
    const blocked = (f: (p: JsonProbe) => boolean) => {
      const ps = around.filter(f);
      expect(ps.length).toBeGreaterThanOrEqual(2); // both families
      for (const p of ps) expect([p.flow.name, nft(p).verdict]).toEqual([p.flow.name, 'reject']);
    };
    blocked((p) => p.flow.name === 'cdn.example.com'); // the wildcard's bare domain
    blocked((p) => p.flow.name === 'unlisted.egress-lab.example');
    blocked((p) => p.rule === 'cdn' && p.flow.port !== 443); // another port
    blocked((p) => p.rule === 'mail' && p.flow.user === 'root'); // another user
    // An address of the pools that no answer ever held.
    const never = json.probes.filter((p) => p.why === 'around' && p.flow.name === undefined && /^198\.51\.100\.|^2001:db8:d45:/.test(p.flow.dst));
    expect(never.length).toBe(4);
    for (const p of never) expect(nft(p).verdict).toBe('reject');

    // The deny rule's names are REFUSED by the forwarder (the world's server would have answered them).
    const refused = byName.filter((p) => p.rule === 'ads');
    expect(new Set(refused.map((p) => `${p.flow.name} ${fam(p)}`))).toEqual(new Set(['ads.example.org 4', 'ads.example.org 6', 'refused.tracker.example.org 4', 'refused.tracker.example.org 6']));
    for (const p of refused) expect([p.expected, nft(p).verdict, nft(p).detail]).toEqual(['refused', 'refused', 'EREFUSED']);

    // DNS over TLS straight to the upstream, as an unprivileged uid: rejected by the guard.
    const guard = json.probes.filter((p) => p.rule === GUARD_RULE);
    expect(guard.map((p) => `${p.flow.proto}/${p.flow.port} ${p.flow.dst} ${p.flow.uid}`).sort()).toEqual(['tcp/853 192.0.2.53 65534', 'tcp/853 2001:db8::53 65534', 'udp/853 192.0.2.53 65534', 'udp/853 2001:db8::53 65534']);
    for (const p of guard) expect([p.explain!.decidedBy, nft(p).verdict]).toEqual(['builtin', 'reject']);

    expect(text).toMatch(/cdn\s+allow\s+tcp\/443 to three\.two\.one\.cdn\.example\.com \(AAAA 2001:db8:d45:[0-9a-f:]+\) as root\s+accept by allow cdn\s+accept \(connected\)/);
    expect(text).toMatch(/ads\s+deny\s+tcp\/443 to ads\.example\.org \(A [0-9.]+\) as uid 65534 \(group 65534\)\s+refused at DNS by deny ads\s+refused \(EREFUSED\)/);
    expect(text).toMatch(/nft: \d+ probes: .*, \d+ refused at DNS\); the kernel agrees with explain on every probe/);
  }, 180_000);

  test('a ruleset whose rules no longer match their DNS sets is caught: the names DISAGREE, and lab fails', async () => {
    const broken: Backend = {
      ...BACKENDS.nft!,
      emit(ir, o) {
        const a = BACKENDS.nft!.emit(ir, o);
        // The sets stay (the forwarder still publishes into them); the rules that match them go.
        return a.value ? { ...a, value: { ...a.value, text: a.value.text.replace(/^\t\tip6? daddr @\w+_dns .*\n/gm, '') } } : a;
      },
    };
    const { ok, json, text } = await lab({ backends: { nft: broken } });
    expect(ok).toBe(false);
    const through = names(json.probes).filter((p) => p.why === 'allow');
    expect(through.length).toBeGreaterThanOrEqual(10);
    for (const p of through) expect([p.flow.name, nft(p).verdict, nft(p).agree]).toEqual([p.flow.name, 'reject', false]);
    // Everything else still agrees: the breakage shows where it is.
    expect(json.probes.filter((p) => !nft(p).agree).every((p) => p.flow.name !== undefined && p.why === 'allow')).toBe(true);
    expect(text).toMatch(/cdn\s+allow\s+tcp\/443 to one\.cdn\.example\.com \(A [0-9.]+\) as root\s+accept by allow cdn\s+reject \(ECONNREFUSED\)\s+DISAGREES/);
  }, 180_000);

  test('a forwarder that answers without publishing is caught the same way', async () => {
    const { ok, json } = await lab({ forwarderCommand: UNPUBLISHED });
    expect(ok).toBe(false);
    const through = names(json.probes).filter((p) => p.why === 'allow');
    for (const p of through) expect([p.flow.name, nft(p).verdict, nft(p).agree]).toEqual([p.flow.name, 'reject', false]);
    // It still refused the deny names, and its answers still came: only the publishing is missing.
    for (const p of names(json.probes).filter((p) => p.rule === 'ads')) expect(nft(p).verdict).toBe('refused');
    for (const p of through) expect(nft(p).answered!.length).toBeGreaterThan(0);
  }, 180_000);
});
