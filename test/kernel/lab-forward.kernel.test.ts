/**
 * `egress lab` under `forward:` (issue 11): container namespaces behind the
 * host namespace — one per forward source, one on an interface no source
 * covers — probe the forward rules and the space around them (TCP, UDP,
 * ICMP, both families), and every outcome is held against `explain --from
 * ADDRESS --in INTERFACE`. examples/containers.yaml must pass on nft and
 * iptables; a second policy takes the other branches (networks outside the
 * documentation ranges, a source without interfaces, a one-family source,
 * `unlisted: deny`). And the lab must be able to fail: a ruleset whose
 * forward chain has lost its rules, an iptables ruleset without the jump to
 * EGRESS-FWD, and a source matched on the wrong interface are reported as
 * disagreements, with every host probe still agreeing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { BACKENDS } from '../../src/backends/registry.js';
import type { Backend, LinuxTarget } from '../../src/backends/types.js';
import { main } from '../../src/cli/main.js';
import { realExecer } from '../../src/kernel/exec.js';
import { loadForLab, runLab } from '../../src/lab/lab.js';
import { labJson, labOk, renderLabText } from '../../src/report/lab.js';
import { ACCOUNTS, captureIo, NOW } from '../helpers.js';
import { kernelDescribe, useRootGuard } from './harness.js';
import { ROOT } from '../paths.js';
import { envelope } from '../json.js';

const EXAMPLE = 'examples/containers.yaml';
const POLICY = readFileSync(join(ROOT, EXAMPLE), 'utf8');

type Json = ReturnType<typeof labJson>;
type JsonProbe = Json['probes'][number];

const forwarded = (j: Json) => j.probes.filter((p) => p.flow.from !== undefined);
const fam = (p: JsonProbe) => (p.flow.dst.includes(':') ? 6 : 4);
const disagreements = (ps: JsonProbe[], t: LinuxTarget) => ps.filter((p) => !p.kernel[t]!.agree).map((p) => `${p.rule} ${p.why} ${JSON.stringify(p.flow)} explain ${p.expected} kernel ${JSON.stringify(p.kernel[t])}`);

/** The lab in-process on `yaml`, with a backend replaced where given. */
async function lab(name: string, yaml: string, targets: LinuxTarget[], backends: Partial<Record<LinuxTarget, Backend>> = {}) {
  const { loaded, accounts, identities, hosts } = await loadForLab(name, yaml, { now: NOW, accounts: ACCOUNTS });
  expect(loaded.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const r = await runLab(loaded, accounts, identities, { execer: realExecer(), targets, backends, hosts });
  const report = { ...r, hosts, identities };
  return { ok: labOk(r), json: labJson(name, report, loaded.sources), text: renderLabText(name, report, loaded.sources) };
}

/** A backend whose ruleset text is rewritten by `f` before it is loaded. */
function sabotaged(target: LinuxTarget, f: (text: string) => string): Backend {
  const b = BACKENDS[target]!;
  return {
    ...b,
    emit(ir, o) {
      const a = b.emit(ir, o);
      if (!a.value) return a;
      const text = f(a.value.text);
      expect(text, 'the sabotage changed nothing').not.toBe(a.value.text);
      return { ...a, value: { ...a.value, text } };
    },
  };
}

kernelDescribe('egress lab: forwarded traffic from containers', () => {
  useRootGuard();

  test('examples/containers.yaml on nft and iptables: every forwarded probe agrees with explain', async () => {
    const io = captureIo(ROOT);
    const code = await main(['lab', EXAMPLE, '--backend', 'all', '--json'], io);
    const env = envelope(io.out, 'lab', code);
    const j = env.result as Json;
    const fwd = forwarded(j);
    expect({ code, ok: env.ok, nft: disagreements(j.probes, 'nft'), iptables: disagreements(j.probes, 'iptables') }).toEqual({ code: 0, ok: true, nft: [], iptables: [] });
    expect(j.containers).toEqual([
      { source: 'docker', hostIf: 'br-lab0', addresses: { ipv4: '198.51.100.1', ipv6: '2001:db8:d0c::1' } },
      { hostIf: 'lab-unl0', addresses: { ipv4: '192.0.2.1', ipv6: '2001:db8::1' } },
    ]);
    // TCP, UDP and ICMP, both families, from the docker container; explain was asked with its address and interface.
    const docker = fwd.filter((p) => p.flow.from!.source === 'docker');
    expect(new Set(docker.map((p) => `${p.flow.proto} ${fam(p)}`))).toEqual(new Set(['tcp 4', 'udp 4', 'icmp 4', 'tcp 6', 'udp 6', 'icmp 6']));
    for (const p of docker) expect(p.explain!.sources).toEqual(['docker']);
    for (const t of ['nft', 'iptables'] as const) {
      const s = j.summary[t] as { forwarded: { probes: number; through: number; rejected: number; disagreements: number } };
      expect(s.forwarded).toMatchObject({ probes: fwd.length, disagreements: 0 });
      expect(s.forwarded.through).toBeGreaterThan(0);
      expect(s.forwarded.rejected).toBeGreaterThan(0);
    }
    const verdicts = (rule: string, why: string, from: string | undefined) =>
      new Set(fwd.filter((p) => p.rule === rule && p.why === why && p.flow.from!.source === from).flatMap((p) => [p.explain!.decidedBy, p.kernel.nft!.verdict, p.kernel.iptables!.verdict]));
    // The registry is the containers' alone: through from docker (by its pinned name, resolved in the container), blocked around it.
    expect(verdicts('registry', 'allow', 'docker')).toEqual(new Set(['allow', 'accept']));
    expect(docker.filter((p) => p.rule === 'registry' && p.why === 'allow').every((p) => p.flow.host === 'registry.example.com')).toBe(true);
    expect(verdicts('registry', 'around', 'docker')).toEqual(new Set(['default', 'reject']));
    expect(verdicts('mirror-admin', 'deny', 'docker')).toEqual(new Set(['deny', 'reject']));
    // The host's own resolver rule does not cover containers.
    expect(verdicts('dns', 'around', 'docker')).toEqual(new Set(['default', 'reject']));
    // unlisted: warn lets the unlisted container through, everywhere it tries.
    const unlisted = fwd.filter((p) => p.flow.from!.source === undefined);
    expect(unlisted.length).toBeGreaterThan(0);
    expect(new Set(unlisted.flatMap((p) => [p.why, p.explain!.decidedBy, p.kernel.nft!.verdict, p.kernel.iptables!.verdict]))).toEqual(new Set(['unlisted', 'accept']));
    // The host is not a container: registry is not among its probes.
    expect(j.probes.filter((p) => !p.flow.from && p.rule === 'registry')).toEqual([]);
    expect(io.err).toMatch(/^lab: nft: 2 container namespaces behind egress-\S+; probing \d+ forwarded flows$/m);
  });

  test('networks outside the documentation ranges, a source without interfaces, a one-family source, unlisted: deny', async () => {
    const yaml = [
      'version: 1',
      'default: reject',
      'forward:',
      '  sources:',
      '    docker: { interfaces: [docker0], networks: [172.17.0.0/16, "fd00:d0c::/64"] }',
      '    gitbox: { networks: [172.17.0.5] }',
      '  default: drop',
      '  unlisted: deny',
      'allow:',
      '  - name: registry',
      '    reason: r',
      '    from: [docker, gitbox]',
      '    to: [192.0.2.10, "2001:db8::10"]',
      '    ports: [tcp/443]',
      '  - name: git',
      '    reason: r',
      '    from: [gitbox]',
      '    to: [192.0.2.22]',
      '    ports: [tcp/22]',
      '',
    ].join('\n');
    const { ok, json } = await lab('p.yaml', yaml, ['nft', 'iptables']);
    expect({ ok, nft: disagreements(json.probes, 'nft'), iptables: disagreements(json.probes, 'iptables') }).toEqual({ ok: true, nft: [], iptables: [] });
    expect(json.containers).toEqual([
      { source: 'docker', hostIf: 'docker0', addresses: { ipv4: '172.17.0.1', ipv6: 'fd00:d0c::1' } },
      { source: 'gitbox', hostIf: 'lab-src0', addresses: { ipv4: '172.17.0.5' } },
      { hostIf: 'lab-unl0', addresses: { ipv4: '192.0.2.1', ipv6: '2001:db8::1' } },
    ]);
    const fwd = forwarded(json);
    const from = (source: string | undefined) => fwd.filter((p) => p.flow.from!.source === source);
    // git is gitbox's: through from it, the forward default (drop) from docker.
    expect(new Set(from('gitbox').filter((p) => p.rule === 'git' && p.why === 'allow').map((p) => p.kernel.nft!.verdict))).toEqual(new Set(['accept']));
    expect(new Set(from('docker').filter((p) => p.rule === 'git').map((p) => `${p.explain!.decidedBy} ${p.kernel.nft!.verdict} ${p.kernel.iptables!.verdict}`))).toEqual(new Set(['default drop drop']));
    // unlisted: deny rejects the unlisted container (the forward deny verdict is reject unless the default is drop: here drop).
    expect(new Set(from(undefined).map((p) => `${p.explain!.decidedBy} ${p.kernel.nft!.verdict} ${p.kernel.iptables!.verdict}`))).toEqual(new Set(['unlisted drop drop']));
    expect(from('gitbox').every((p) => fam(p) === 4)).toBe(true);
  });

  test('a forward chain that lost its rules (nft) is caught: the forwarded probes disagree, the host probes do not', async () => {
    // Keep the chain and its hook; drop every rule in it.
    const broken = sabotaged('nft', (t) => t.replace(/(\tchain forward \{\n\t\tcomment [^\n]*\n\t\ttype filter hook forward[^\n]*\n)(?:\t\t[^\n]*\n)+/, '$1'));
    const { ok, json, text } = await lab(EXAMPLE, POLICY, ['nft'], { nft: broken });
    expect(ok).toBe(false);
    const host = json.probes.filter((p) => !p.flow.from);
    expect(disagreements(host, 'nft')).toEqual([]);
    const bad = forwarded(json).filter((p) => !p.kernel.nft!.agree);
    // Every forwarded probe explain blocks got through: nothing governs the containers any more.
    expect(bad.length).toBeGreaterThan(0);
    expect(bad.every((p) => p.expected === 'reject' && p.kernel.nft!.verdict === 'accept')).toBe(true);
    expect(bad.length).toBe(forwarded(json).filter((p) => p.expected !== 'accept').length);
    expect(text).toMatch(/forward\.default\s+around\s+docker \(198\.51\.100\.1 in br-lab0\)\s+tcp\/443 to 203\.0\.113\.254\s+reject by forward default of docker\s+accept \(connected\)\s+DISAGREES/);
    expect(text).toMatch(/^nft, forwarded: \d+ probes: .*; \d+ DISAGREE with explain$/m);
  });

  test('iptables without the jump to EGRESS-FWD is caught', async () => {
    const broken = sabotaged('iptables', (t) => t.replace(/^-I FORWARD 1 -j EGRESS-FWD\n/gm, ''));
    const { ok, json } = await lab(EXAMPLE, POLICY, ['iptables'], { iptables: broken });
    expect(ok).toBe(false);
    expect(disagreements(json.probes.filter((p) => !p.flow.from), 'iptables')).toEqual([]);
    const bad = forwarded(json).filter((p) => !p.kernel.iptables!.agree);
    expect(new Set(bad.map((p) => `${p.expected} ${p.kernel.iptables!.verdict}`))).toEqual(new Set(['reject accept']));
    expect(bad.filter((p) => fam(p) === 4).length).toBeGreaterThan(0);
    expect(bad.filter((p) => fam(p) === 6).length).toBeGreaterThan(0);
  });

  test('a source matched on the wrong interface is caught: its container is unlisted to the kernel', async () => {
    const broken = sabotaged('nft', (t) => t.replaceAll('"br-*"', '"bridge-*"'));
    const { ok, json } = await lab(EXAMPLE, POLICY, ['nft'], { nft: broken });
    expect(ok).toBe(false);
    const bad = forwarded(json).filter((p) => !p.kernel.nft!.agree);
    expect(bad.length).toBeGreaterThan(0);
    expect(new Set(bad.map((p) => p.flow.from!.source))).toEqual(new Set(['docker']));
  });
});
