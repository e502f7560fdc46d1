/** stats, learn, replay, stale through the CLI (in-process main, fixed resolver and accounts). */
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { run } from '../cli/run.js';
import { NOW, tempDir } from '../helpers.js';
import { FWD_ICMP6, FWD_OTHER4, FWD_TCP4, FWD_TCP6, FWD_UDP4, iso, TCP4, TCP6, UDP4 } from './lines.js';
import { ROOT } from '../paths.js';
import { envelope, jsonResult } from '../json.js';


const POLICY = `# web1
version: 1
mode: audit   # rollout
default: reject
log: { prefix: "EGRESS " }
allow:
  - name: dns
    reason: resolver
    to: [192.0.2.53]
    ports: [udp/53]
deny:
  - name: smtp
    reason: only the MTA
    ports: [tcp/25]
    except: { user: 107 }
`;

/** Two hours of audit mode: a steady trickle, then more after an apply at 10:00. */
function auditLog(): string {
  const lines: string[] = [];
  let spt = 20000;
  for (let m = 0; m < 120; m++) {
    const t = new Date(Date.UTC(2026, 10, 23, 9, m, 0)).toISOString();
    lines.push(iso(`EGRESS p:- ${UDP4.replace('SPT=45089', `SPT=${spt++}`)}`, t));
    if (m >= 60) for (let k = 0; k < 3; k++) lines.push(iso(`EGRESS p:- ${TCP6.replace('SPT=40000', `SPT=${spt++}`)}`, t));
    if (m % 30 === 0) {
      lines.push(iso(`EGRESS d:smtp ${TCP4.replace('SPT=57408', `SPT=${spt}`)}`, t));
      lines.push(iso(`EGRESS d:smtp ${TCP4.replace('SPT=57408', `SPT=${spt++}`)}`, t)); // retransmission
    }
    lines.push(`${t} web1 systemd[1]: Started session ${m}.`);
  }
  return lines.join('\n') + '\n';
}

function setup() {
  const dir = tempDir('egress-observe-cli-');
  const state = join(dir, 'state');
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  writeFileSync(join(dir, 'kern.log'), auditLog());
  return { dir, env: { EGRESS_STATE_DIR: state } };
}

describe('egress stats', () => {
  test('the terminal report: totals, chart, top destinations, users, rules', async () => {
    const { dir, env } = setup();
    const r = await run(['stats', 'kern.log', '--policy', 'policy.yaml'], { cwd: dir, env });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const out = r.stdout;
    expect(out.split('\n')[0]).toMatch(/^304 connections audit mode would have denied \(logged, not blocked\) from 2026-11-23T\d{2}:\d{2}:\d{2}Z to /); // times in ISO 8601 UTC, as everywhere
    expect(out).toContain('308 log lines; retransmissions within 60 s counted once');
    expect(out).toMatch(/over time \(5 min per column, peak 21\)\n  [▁-█ ]{24}\n/);
    expect(out).toMatch(/top destinations \(3 of 3\)\n {2}connections .*\n {10}180 +█+ +\[2001:db8::99\] +tcp\/443 +appuser +\(default\)\n {10}120 +█+ +203\.0\.113\.9 +udp\/53 +root +\(default\)\n {12}4 +█+ +198\.51\.100\.7 +tcp\/25 +www-data +smtp\n/);
    expect(out).toMatch(/by user\n.*\n +180 +█+ +appuser \(1001\)\n +120 +█+ +root \(0\)\n +4 +█+ +www-data \(33\)\n/);
    expect(out).toMatch(/by rule\n.*\n +300 +300 +\(default\)\n +4 +8 +smtp\n/);
    expect(out).toContain('no apply history');
  });

  test('--json', async () => {
    const { dir, env } = setup();
    const r = await run(['stats', 'kern.log', '--json', '--top', '2'], { cwd: dir, env });
    expect(r.code).toBe(0);
    const j = jsonResult(r.stdout, 'stats', r.code);
    expect(j).toMatchObject({ mode: 'audit', connections: 304, packets: 308, denied: 0, wouldDeny: 304, first: '2026-11-23T09:00:00Z', last: '2026-11-23T10:59:00Z', destinationCount: 3 });
    expect(j.destinations).toHaveLength(2);
    expect(j.destinations[0]).toMatchObject({ dst: '2001:db8::99', port: 443, connections: 180, users: [{ uid: 1001, user: 'appuser', connections: 180 }] });
    expect(j.lines).toMatchObject({ lines: 428, events: 308, malformed: 0 });
    expect(j.timeline).toMatchObject({ bucketMinutes: 5, start: '2026-11-23T09:00:00Z' });
    expect(j.kernelCounters).toEqual({ note: 'nothing of egress is applied on this host' });
  });

  test('before/after each policy change from the apply history; a jump is flagged', async () => {
    const { dir, env } = setup();
    const { mkdirSync } = await import('node:fs');
    mkdirSync(env.EGRESS_STATE_DIR);
    const entry = (time: string, action: string, outcome = 'ok') => JSON.stringify({ time, action, user: 'root', uid: 0, policyFile: '/etc/egress.yaml', policyHash: 'sha256:' + 'ab'.repeat(32), backend: 'nft', mode: 'audit', outcome });
    writeFileSync(join(env.EGRESS_STATE_DIR, 'history.jsonl'), [entry('2026-11-23T09:30:00Z', 'apply'), entry('2026-11-23T09:31:00Z', 'confirm'), entry('2026-11-23T10:00:00Z', 'apply'), '{torn'].join('\n') + '\n');
    const j = jsonResult((await run(['stats', 'kern.log', '--json'], { cwd: dir, env })).stdout, 'stats');
    // 09:30: 31 connections in the half hour on each side (udp each minute, smtp on the half hour).
    // 10:00: then 59 minutes of 4 a minute plus two smtp: 238 in 59 min.
    expect(j.changes.map((c: { time: string; jump: boolean; before?: { perHour: number }; after?: { perHour: number } }) => [c.time, Math.round(c.before!.perHour), Math.round(c.after!.perHour), c.jump])).toEqual([
      ['2026-11-23T09:30:00Z', 62, 62, false],
      ['2026-11-23T10:00:00Z', 62, 242, true],
    ]);
    const text = (await run(['stats', 'kern.log'], { cwd: dir, env })).stdout;
    expect(text).toMatch(/policy changes .*\n {2}1 unreadable lines in .*history\.jsonl skipped\n.*\n.* apply audit +abababababab +62 +62\n.* apply audit +abababababab +62 +242 +<< denials jumped\n/);
    const prom = (await run(['stats', 'kern.log', '--prometheus'], { cwd: dir, env })).stdout;
    expect(prom).toContain('egress_policy_change_denials_jumped 1\n');
  });

  test('--prometheus --output writes the textfile atomically', async () => {
    const { dir, env } = setup();
    const r = await run(['stats', 'kern.log', '--prometheus', '--output', 'egress.prom'], { cwd: dir, env });
    expect(r).toMatchObject({ code: 0, stdout: '' });
    expect(readFileSync(join(dir, 'egress.prom'), 'utf8')).toContain('egress_denied_connections_total{rule="-",user="appuser",verdict="would_deny"} 180\n');
  });

  test('gzip, stdin and --since', async () => {
    const { dir, env } = setup();
    writeFileSync(join(dir, 'kern.log.2.gz'), gzipSync(auditLog()));
    const gz = jsonResult((await run(['stats', 'kern.log.2.gz', '--json', '--since', '2026-11-23T10:30:00Z'], { cwd: dir, env })).stdout, 'stats');
    expect(gz).toMatchObject({ connections: 30 * 4 + 1, first: '2026-11-23T10:30:00Z' });
    const stdin = jsonResult((await run(['stats', '-', '--json'], { cwd: dir, env, stdin: auditLog() })).stdout, 'stats');
    expect(stdin.connections).toBe(304);
  });

  test.each([
    [['stats', 'kern.log', '--journal', '--kmsg'], 2, /--journal or --kmsg, not both/],
    [['stats', 'kern.log', '--since', 'soon'], 2, /--since "soon"/],
    [['stats', 'kern.log', '--json', '--prometheus'], 2, /--json or --prometheus/],
    [['stats', 'kern.log', '--top', '0'], 2, /--top/],
    [['stats', 'nope.log'], 1, /^egress: error: cannot read nope\.log: no such file\n$/],
    [['stats', 'kern.log', '--policy', 'nope.yaml'], 1, /cannot read nope\.yaml/],
  ])('egress %j → %i', async (argv, code, err) => {
    const { dir, env } = setup();
    const r = await run(argv, { cwd: dir, env });
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(err);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('egress learn', () => {
  test('prints YAML to review: a valid allow list with comments', async () => {
    const { dir, env } = setup();
    const r = await run(['learn', 'kern.log', '--policy', 'policy.yaml'], { cwd: dir, env });
    expect(r.code).toBe(0);
    const y = parse(r.stdout);
    expect(y.allow.map((x: { name: string; to: string[]; ports: string[]; user: string }) => [x.name, x.to, x.ports, x.user])).toEqual([
      ['learned-2001-db8-99-appuser', ['2001:db8::99'], ['tcp/443'], 'appuser'],
      ['learned-203-0-113-9-root', ['203.0.113.9'], ['udp/53'], 'root'],
    ]);
    expect(r.stdout).toMatch(/# not learned: 198\.51\.100\.7 tcp\/25 as www-data \(4 connections\): denied by deny rule "smtp"/);
    expect(r.stdout).toMatch(/  # 180 connections seen, first 2026-11-23T10:00:00Z, last 2026-11-23T10:59:00Z\n  - name: learned-2001-db8-99-appuser\n/);
    expect(readFileSync(join(dir, 'policy.yaml'), 'utf8')).toBe(POLICY);
  });

  test('--write merges into the policy (comments kept); replay then denies only what a deny rule denies', async () => {
    const { dir, env } = setup();
    const w = await run(['learn', 'kern.log', '--policy', 'policy.yaml', '--write'], { cwd: dir, env });
    expect(w.code).toBe(0);
    expect(w.stderr).toMatch(/added 2 allow rules to policy\.yaml/);
    const text = readFileSync(join(dir, 'policy.yaml'), 'utf8');
    expect(text.startsWith('# web1\nversion: 1\nmode: audit   # rollout\n')).toBe(true);
    const check = await run(['replay', 'policy.yaml', 'kern.log', '--check'], { cwd: dir, env });
    expect(check.code).toBe(1); // smtp still denies www-data
    expect(check.stdout).toMatch(/replayed 304 logged connections .*\n  4 would be denied, 300 would be admitted\n/);
    expect(check.stdout).toMatch(/180 +admitted by allow learned-2001-db8-99-appuser/);
    const again = await run(['learn', 'kern.log', '--policy', 'policy.yaml'], { cwd: dir, env });
    expect(again.stdout).toMatch(/# nothing to learn/);
    expect(again.stdout).toMatch(/# 300 connections are already allowed/);
  });

  test('--write through a linked policy rewrites the target of the link, keeping its mode (it replaced the link, mode 0644) — D4', async () => {
    const { dir, env } = setup();
    mkdirSync(join(dir, 'real'));
    renameSync(join(dir, 'policy.yaml'), join(dir, 'real', 'policy.yaml'));
    chmodSync(join(dir, 'real', 'policy.yaml'), 0o600);
    symlinkSync(join('real', 'policy.yaml'), join(dir, 'policy.yaml'));
    const w = await run(['learn', 'kern.log', '--policy', 'policy.yaml', '--write'], { cwd: dir, env });
    expect(w.code).toBe(0);
    expect(lstatSync(join(dir, 'policy.yaml')).isSymbolicLink()).toBe(true);
    expect(statSync(join(dir, 'real', 'policy.yaml')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'real', 'policy.yaml'), 'utf8')).toMatch(/learned-2001-db8-99-appuser/);
    expect(readdirSync(join(dir, 'real'))).toEqual(['policy.yaml']);
  });

  test('--json', async () => {
    const { dir, env } = setup();
    const j = jsonResult((await run(['learn', 'kern.log', '--policy', 'policy.yaml', '--json'], { cwd: dir, env })).stdout, 'learn');
    expect(j).toMatchObject({ flows: 3, alreadyAllowed: 0, verified: { flows: 2, stillDenied: [] } });
    expect(j.rules[0]).toMatchObject({ name: 'learned-2001-db8-99-appuser', connections: 180, first: '2026-11-23T10:00:00Z' });
    expect(j.notLearned).toEqual([{ family: 'ipv4', to: '198.51.100.7', proto: 'tcp', port: 25, uid: 33, connections: 4, why: 'denied-by-rule', rules: ['smtp'] }]);
  });

  test.each([
    [['learn', 'kern.log'], 1, /no policy given, and the default .*policy\.yaml does not exist/], // --policy defaults to /etc/egress/policy.yaml
  ])('egress %j → %i', async (argv, code, err) => {
    const { dir, env } = setup();
    const r = await run(argv, { cwd: dir, env });
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(err);
  });
});

describe('egress replay', () => {
  test('the candidate as it is: everything the logs hold is still denied; --json', async () => {
    const { dir, env } = setup();
    const r = await run(['replay', 'policy.yaml', 'kern.log', '--json'], { cwd: dir, env });
    expect(r.code).toBe(0);
    const j = jsonResult(r.stdout, 'replay', r.code);
    expect(j).toMatchObject({ mode: 'audit', summary: { connections: 304, denied: 304, admitted: 0 }, stats: { wouldDeny: 304 } });
  });
});

describe('egress stale and stats --sample', () => {
  test('no samples yet: says how to record them', async () => {
    const { dir, env } = setup();
    const r = await run(['stale', 'policy.yaml'], { cwd: dir, env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/no counter samples in .*counters\.jsonl: record them with "egress stats --sample"/);
    expect(r.stdout).toMatch(/dns +allow +0 +- +unknown: fewer than two samples/);
  });

  test('with samples: the rule without hits is stale', async () => {
    const { dir, env } = setup();
    const { mkdirSync } = await import('node:fs');
    mkdirSync(env.EGRESS_STATE_DIR);
    const s = (daysAgo: number, dns: number, smtp: number) =>
      JSON.stringify({ time: new Date(NOW.getTime() - daysAgo * 86_400_000).toISOString(), counters: [{ rule: 'dns', action: 'allow', family: 'ipv4', packets: dns, bytes: 0 }, { rule: 'smtp', action: 'deny', family: 'ipv4', packets: smtp, bytes: 0 }] });
    writeFileSync(join(env.EGRESS_STATE_DIR, 'counters.jsonl'), [s(10, 5, 3), s(5, 9, 3), s(1, 12, 3)].join('\n') + '\n');
    const r = await run(['stale', 'policy.yaml', '--days', '7', '--json'], { cwd: dir, env });
    expect(jsonResult(r.stdout, 'stale', r.code).rules.map((x: { rule: string; status: string; hits: number }) => [x.rule, x.status, x.hits])).toEqual([
      ['dns', 'used', 7],
      ['smtp', 'stale', 0],
    ]);
    expect(existsSync(join(env.EGRESS_STATE_DIR, 'counters.jsonl'))).toBe(true);
  });

  test('--sample with nothing applied is an error, not a crash', async () => {
    const { dir, env } = setup();
    const r = await run(['stats', '--sample'], { cwd: dir, env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^egress: error: (nothing of egress is applied|cannot read the live counters|stats --sample needs root)/);
  });
});

test('help lists the observe commands', async () => {
  const r = await run(['--help'], { cwd: ROOT });
  for (const c of ['stats', 'learn', 'replay', 'stale']) expect(r.stdout).toMatch(new RegExp(`\\n  ${c} `));
});

describe('names from the DNS forwarder’s log (dns.proxy)', () => {
  const PROXY = readFileSync(join(ROOT, 'test', 'observe', 'golden', 'learn', 'proxy-policy.yaml'), 'utf8');
  const rec = (o: Record<string, unknown>) => JSON.stringify({ proto: 'udp', qtype: 'A', ...o });
  const syn = (dst: string, port: number, uid: number, spt: number, at: string) =>
    iso(`EGRESS p:- ${TCP4.replace('DST=198.51.100.7', `DST=${dst}`).replace('DPT=25', `DPT=${port}`).replace('SPT=57408', `SPT=${spt}`).replace('UID=33 GID=33', `UID=${uid} GID=${uid}`)}`, at);

  function proxySetup() {
    const dir = tempDir('egress-observe-dns-');
    const state = join(dir, 'state');
    mkdirSync(state);
    writeFileSync(join(dir, 'policy.yaml'), PROXY);
    // The rotated file holds the older records; the forwarder's own writer events are skipped.
    writeFileSync(
      join(state, 'dns-forwarder.log.1'),
      [
        '{"time":"2026-11-23T08:59:00Z","event":"writer-up","pid":7,"generation":1}',
        rec({ time: '2026-11-23T09:00:00Z', event: 'dns-publish', name: 'deb.debian.org', rules: ['mirror'], sets: ['mirror_4'], addresses: ['192.0.2.14'], ttl: 5, lifetime: 65, uid: 0 }),
        rec({ time: '2026-11-23T09:00:01Z', event: 'dns-answer', name: 'a.cdn.example.net', addresses: ['198.51.100.21'], ttl: 30, uid: 33 }),
      ].join('\n') + '\n',
    );
    writeFileSync(
      join(state, 'dns-forwarder.log'),
      [
        rec({ time: '2026-11-23T09:00:02Z', event: 'dns-answer', name: 'b.cdn.example.net', addresses: ['198.51.100.22'], ttl: 30, uid: 33 }),
        rec({ time: '2026-11-23T09:00:02Z', event: 'dns-answer', name: 'x.y.cdn.example.net', addresses: ['198.51.100.23'], ttl: 30, uid: 33 }),
        rec({ time: '2026-11-23T09:00:03Z', event: 'dns-publish', name: 'deb.debian.org', rules: ['mirror'], sets: ['mirror_4'], addresses: ['192.0.2.15'], ttl: 5, lifetime: 65, uid: 33 }),
        rec({ time: '2026-11-23T09:00:04Z', event: 'dns-answer', name: 'api.partner.example.com', addresses: ['203.0.113.5'], ttl: 30, uid: 1001 }),
        rec({ time: '2026-11-23T09:00:05Z', event: 'dns-refused', name: 'www.evil.test', rules: ['no-evil'], uid: 1001 }),
        '{"event":"dns-answer","name":"cut',
      ].join('\n') + '\n',
    );
    writeFileSync(
      join(dir, 'kern.log'),
      [
        syn('198.51.100.21', 443, 33, 3001, '2026-11-23T09:00:05Z'),
        syn('198.51.100.22', 443, 33, 3002, '2026-11-23T09:00:05Z'),
        syn('198.51.100.23', 443, 33, 3003, '2026-11-23T09:00:05Z'),
        syn('203.0.113.5', 8443, 1001, 3004, '2026-11-23T09:00:06Z'),
        syn('192.0.2.77', 9100, 0, 3005, '2026-11-23T09:00:06Z'),
      ].join('\n') + '\n',
    );
    return { dir, env: { EGRESS_STATE_DIR: state } };
  }

  test('stats: the names section from the state directory’s log (.1 and current), --json too, --dns-log instead', async () => {
    const { dir, env } = proxySetup();
    const r = await run(['stats', 'kern.log'], { cwd: dir, env });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/names asked through the DNS forwarder \(top 5 of 5; 6 answers\)\n {2}9 lines of .*dns-forwarder\.log\.1, .*dns-forwarder\.log, 7 answers and refusals, 1 malformed \(skipped\)\n/);
    expect(r.stdout).toMatch(/\n +2 +█+ +deb\.debian\.org +2 +root, www-data +mirror\n/);
    expect(r.stdout).toMatch(/\n +1 +█+ +a\.cdn\.example\.net +1 +www-data +\(forwarded\)\n/);
    expect(r.stdout).toMatch(/names refused \(top 1 of 1; 1 queries\)\n.*\n +1 +www\.evil\.test +appuser +no-evil\n/);
    const j = jsonResult((await run(['stats', 'kern.log', '--json'], { cwd: dir, env })).stdout, 'stats');
    expect(j.names).toMatchObject({ names: 5, answers: 6, refusedNames: 1, refusals: 1, lines: { records: 7, other: 1, malformed: 1 } });
    expect(j.names.top[0]).toMatchObject({ name: 'deb.debian.org', answers: 2, published: 2, rules: ['mirror'], addresses: 2, users: [{ uid: 0, user: 'root', answers: 1 }, { uid: 33, user: 'www-data', answers: 1 }], first: '2026-11-23T09:00:00Z' });
    writeFileSync(join(dir, 'other.log'), rec({ time: '2026-11-23T09:00:00Z', event: 'dns-answer', name: 'only.example.org', addresses: [] }) + '\n');
    const other = jsonResult((await run(['stats', 'kern.log', '--json', '--dns-log', 'other.log'], { cwd: dir, env })).stdout, 'stats');
    expect(other.names.top.map((n: { name: string }) => n.name)).toEqual(['only.example.org']);
    const none = jsonResult((await run(['stats', 'kern.log', '--json'], { cwd: dir, env: { EGRESS_STATE_DIR: join(dir, 'nowhere') } })).stdout, 'stats');
    expect(none.names).toBeUndefined();
    const missing = await run(['stats', 'kern.log', '--dns-log', 'nope.log'], { cwd: dir, env });
    expect({ code: missing.code, stderr: missing.stderr }).toEqual({ code: 1, stderr: 'egress: error: cannot read nope.log: no such file\n' });
  });

  test('learn --write proposes the names (and a wildcard), the file passes check, replay admits them, learn again finds nothing new', async () => {
    const { dir, env } = proxySetup();
    const w = await run(['learn', 'kern.log', '--policy', 'policy.yaml', '--write'], { cwd: dir, env });
    expect(w.code).toBe(0);
    expect(w.stderr).toMatch(/\negress: added 3 allow rules to policy\.yaml; review them/);
    const y = parse(readFileSync(join(dir, 'policy.yaml'), 'utf8'));
    expect(y.allow.slice(1).map((x: { to: string[]; ports: string[]; user?: string }) => [x.to, x.ports, x.user])).toEqual([
      [['*.cdn.example.net'], ['tcp/443'], 'www-data'],
      [['192.0.2.77'], ['tcp/9100'], 'root'],
      [['api.partner.example.com'], ['tcp/8443'], 'appuser'],
    ]);
    expect(w.stdout).toContain('# *.cdn.example.net stands for 3 names seen: a.cdn.example.net, b.cdn.example.net, x.y.cdn.example.net');
    const check = await run(['check', 'policy.yaml'], { cwd: dir, env });
    expect(check.code).toBe(0);
    const replay = await run(['replay', 'policy.yaml', 'kern.log', '--check'], { cwd: dir, env });
    expect(replay.code).toBe(0);
    const again = await run(['learn', 'kern.log', '--policy', 'policy.yaml'], { cwd: dir, env });
    expect(again.stdout).toMatch(/# nothing to learn/);
    expect(again.stdout).toMatch(/# 5 connections are already allowed/);
    // Without the forwarder's log the same connections are addresses the policy does not admit.
    const blind = await run(['replay', 'policy.yaml', 'kern.log', '--check', '--dns-log', '/dev/null'], { cwd: dir, env });
    expect(blind.code).toBe(1);
  });

  test('learn --json carries the names and the forwarder log tally', async () => {
    const { dir, env } = proxySetup();
    const r = await run(['learn', 'kern.log', '--policy', 'policy.yaml', '--json'], { cwd: dir, env });
    expect(envelope(r.stdout, 'learn', r.code).ok).toBe(true);
    const j = jsonResult(r.stdout, 'learn');
    expect(j.dnsLog).toMatchObject({ records: 7, malformed: 1 });
    const partner = j.rules.find((r: { to: string[] }) => r.to[0] === 'api.partner.example.com');
    expect(partner.names).toEqual([{ name: 'api.partner.example.com', addresses: ['203.0.113.5'], sameUser: true }]);
  });
});

describe('forwarded traffic (SPEC §6): stats, learn, replay, stale', () => {
  const FORWARD = readFileSync(join(ROOT, 'test', 'observe', 'golden', 'learn', 'forward-policy.yaml'), 'utf8');
  const at = (s: number) => new Date(Date.UTC(2026, 10, 23, 9, 0, s)).toISOString();
  /** Audit mode on a container host: containers to the registry (v4, v6), DNS already allowed, a ping no-ping catches, a VM on an unlisted tap, the host itself. */
  const LOG = [
    iso(`EGRESS p:- ${FWD_TCP4}`, at(0)),
    iso(`EGRESS p:- ${FWD_TCP4}`, at(1)), // retransmission
    iso(`EGRESS p:- ${FWD_TCP4.replace('SRC=198.51.100.2', 'SRC=198.51.100.4').replace('SPT=43210', 'SPT=43299')}`, at(2)),
    iso(`EGRESS p:- ${FWD_TCP6.replace('DST=2001:0db8:0002:0000:0000:0000:0000:0009', 'DST=2001:0db8:0002:0000:0000:0000:0000:0443')}`, at(3)),
    iso(`EGRESS p:- ${FWD_UDP4}`, at(4)),
    iso(`EGRESS d:no-ping ${FWD_ICMP6}`, at(5)),
    iso(`EGRESS u:- ${FWD_OTHER4}`, at(6)),
    iso(`EGRESS p:- ${TCP4}`, at(7)),
  ];

  function fwdSetup(lines = LOG) {
    const dir = tempDir('egress-observe-fwd-');
    writeFileSync(join(dir, 'policy.yaml'), FORWARD);
    writeFileSync(join(dir, 'kern.log'), lines.join('\n') + '\n');
    return { dir, env: { EGRESS_STATE_DIR: join(dir, 'state') } };
  }

  test('stats: forwarded connections apart, by the policy\'s sources (or by interface without one); --json and --prometheus', async () => {
    const { dir, env } = fwdSetup();
    const r = await run(['stats', 'kern.log', '--policy', 'policy.yaml'], { cwd: dir, env });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^7 connections audit mode would have denied/);
    expect(r.stdout).toMatch(/by user\n.*\n +6 +█+ +\(forwarded: containers, VMs\)\n +1 +█+ +www-data \(33\)\n/);
    expect(r.stdout).toMatch(/ +4 +5 +\(default\) \(forwarded\)\n/);
    expect(r.stdout).toMatch(/ +1 +1 +\(unlisted: from no forward source, let through\)\n/);
    expect(r.stdout).toMatch(/forwarded \(containers, VMs\): 6 connections, 1 logged as from no source \(0 denied, 1 let through\)\n {2}connections +source +interfaces +addresses\n +4 +█+ +docker +br-test +2001:db8:1::2, 198\.51\.100\.2, 198\.51\.100\.4\n +1 +█+ +\(no source\) +tap-vm1 +192\.0\.2\.77\n +1 +█+ +docker, gitbox +br-test +198\.51\.100\.3\n/);
    const j = jsonResult((await run(['stats', 'kern.log', '--policy', 'policy.yaml', '--json'], { cwd: dir, env })).stdout, 'stats');
    expect(j).toMatchObject({ mode: 'audit', connections: 7, wouldDeny: 7, forwarded: { connections: 6, packets: 7, denied: 0, wouldDeny: 6, unlisted: { denied: 0, passed: 1 } } });
    expect(j.forwarded.sources[0]).toMatchObject({ sources: ['docker'], interfaces: ['br-test'], addressCount: 3, connections: 4, packets: 5, first: '2026-11-23T09:00:00Z', last: '2026-11-23T09:00:05Z' });
    expect(j.users[0]).toEqual({ forwarded: true, connections: 6, packets: 7 });
    const bare = jsonResult((await run(['stats', 'kern.log', '--json'], { cwd: dir, env })).stdout, 'stats');
    expect(bare.forwarded.sources.map((x: { sources?: string[]; interfaces: string[]; connections: number }) => [x.sources, x.interfaces, x.connections])).toEqual([
      [undefined, ['br-test'], 5],
      [undefined, ['tap-vm1'], 1],
    ]);
    const prom = (await run(['stats', 'kern.log', '--policy', 'policy.yaml', '--prometheus'], { cwd: dir, env })).stdout;
    expect(prom).toContain('egress_denied_connections_total{rule="-",scope="forward",source="docker",verdict="would_deny"} 3\n');
    expect(prom).toContain('egress_denied_connections_total{rule="-",user="www-data",verdict="would_deny"} 1\n');
  });

  test('host logs only: the report and JSON are as before (no forwarded section, no new fields)', async () => {
    const { dir, env } = fwdSetup(LOG.slice(-1));
    const j = jsonResult((await run(['stats', 'kern.log', '--policy', 'policy.yaml', '--json'], { cwd: dir, env })).stdout, 'stats');
    expect(j.forwarded).toBeUndefined();
    expect(j.rules).toEqual([{ isDefault: true, verdict: 'would-deny', connections: 1, packets: 1, logged: '-' }]);
    expect(j.users).toEqual([{ uid: 33, user: 'www-data', connections: 1, packets: 1 }]);
    expect((await run(['stats', 'kern.log'], { cwd: dir, env })).stdout).not.toMatch(/forwarded/);
  });

  test('learn --write proposes from: rules (no user), names the source to add for the unlisted tap; replay --check then passes; learn again finds nothing', async () => {
    const { dir, env } = fwdSetup(LOG.filter((l) => !l.includes('no-ping')));
    const w = await run(['learn', 'kern.log', '--policy', 'policy.yaml', '--write'], { cwd: dir, env });
    expect({ code: w.code, stderr: w.stderr }).toEqual({ code: 0, stderr: 'egress: added 2 allow rules to policy.yaml; review them, then "egress replay" and apply\n' });
    expect(w.stdout).toContain('# forwarded from no source: interface tap-vm1 (address 192.0.2.77), 1 connection, let through and logged (forward.unlisted: warn)\n');
    expect(w.stdout).toContain('#     tap-vm1: { interfaces: ["tap-vm1"] }\n');
    expect(w.stdout).toContain('#   flows: 203.0.113.9 tcp/443 (1)\n');
    const y = parse(readFileSync(join(dir, 'policy.yaml'), 'utf8'));
    expect(y.allow.slice(1).map((x: { name: string; from?: string[]; to: string[]; ports: string[]; user?: string }) => [x.name, x.from, x.to, x.ports, x.user])).toEqual([
      ['learned-tcp443-docker', ['docker'], ['203.0.113.9', '2001:db8:2::443'], ['tcp/443'], undefined],
      ['learned-198-51-100-7-www-data', undefined, ['198.51.100.7'], ['tcp/25'], 'www-data'],
    ]);
    expect((await run(['check', 'policy.yaml'], { cwd: dir, env })).code).toBe(0);
    const replay = await run(['replay', 'policy.yaml', 'kern.log', '--check'], { cwd: dir, env });
    expect({ code: replay.code, stderr: replay.stderr }).toEqual({ code: 0, stderr: '' });
    expect(replay.stdout).toMatch(/ +3 +admitted by allow learned-tcp443-docker\n/);
    expect(replay.stdout).toMatch(/ +1 +admitted by \(unlisted: forward\.unlisted warn\)\n/);
    const again = await run(['learn', 'kern.log', '--policy', 'policy.yaml'], { cwd: dir, env });
    expect(again.stdout).toMatch(/# nothing to learn/);
    expect(again.stdout).toMatch(/# 5 connections are already allowed/);
  });

  test('learn --json: from, the flows\' source, the unlisted interfaces', async () => {
    const { dir, env } = fwdSetup();
    const r = await run(['learn', 'kern.log', '--policy', 'policy.yaml', '--json'], { cwd: dir, env });
    expect(envelope(r.stdout, 'learn', r.code).ok).toBe(true);
    const j = jsonResult(r.stdout, 'learn');
    expect(j.rules[0]).toMatchObject({ name: 'learned-tcp443-docker', from: ['docker'], users: [] });
    expect(j.rules[1]).not.toHaveProperty('from');
    expect(j.notLearned).toEqual([{ family: 'ipv6', to: '2001:db8:2::9', proto: 'icmp', icmpType: 128, forwarded: { in: 'br-test', src: '2001:db8:1::2' }, connections: 1, why: 'denied-by-rule', rules: ['no-ping'] }]);
    expect(j.unlisted).toEqual([
      { interface: 'tap-vm1', addresses: ['192.0.2.77'], connections: 1, unlisted: 'warn', source: { name: 'tap-vm1', interfaces: ['tap-vm1'] }, default: 'reject', flows: [{ family: 'ipv4', to: '203.0.113.9', proto: 'tcp', port: 443, forwarded: { in: 'tap-vm1', src: '192.0.2.77' }, connections: 1 }] },
    ]);
  });

  test('stale: a forward-only rule is used through its forward counters', async () => {
    const { dir, env } = fwdSetup();
    mkdirSync(env.EGRESS_STATE_DIR);
    const s = (daysAgo: number, dnsFwd: number) =>
      JSON.stringify({
        time: new Date(NOW.getTime() - daysAgo * 86_400_000).toISOString(),
        counters: [
          { rule: 'dns', action: 'allow', family: 'ipv4', packets: 3, bytes: 0 },
          { rule: 'dns', action: 'allow', family: 'ipv4', scope: 'forward', packets: dnsFwd, bytes: 0 },
          { rule: 'no-ping', action: 'deny', family: 'ipv6', scope: 'forward', packets: 2, bytes: 0 },
        ],
      });
    writeFileSync(join(env.EGRESS_STATE_DIR, 'counters.jsonl'), [s(10, 5), s(5, 9), s(1, 12)].join('\n') + '\n');
    const j = jsonResult((await run(['stale', 'policy.yaml', '--days', '7', '--json'], { cwd: dir, env })).stdout, 'stale');
    expect(j.rules.map((x: { rule: string; status: string; hits: number }) => [x.rule, x.status, x.hits])).toEqual([
      ['dns', 'used', 7],
      ['no-ping', 'stale', 0],
    ]);
  });
});
