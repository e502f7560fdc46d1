/**
 * A known case for `egress report`: a policy, two hours of kernel log
 * (an hour of audit mode, then an hour of enforce mode, at fixed times), an
 * apply history, counter samples and live counters; and what the page must
 * show for them, counted here from how the log is made, not from egress.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Io } from '../../src/cli/io.js';
import type { Status } from '../../src/kernel/status.js';
import { staticResolver } from '../../src/resolve/resolver.js';
import { ACCOUNTS, captureIo, NOW, tempDir } from '../helpers.js';
import { iso, TCP4, TCP6, UDP4 } from '../observe/lines.js';

export const POLICY = `version: 1
mode: enforce
default: reject
log: { prefix: "EGRESS " }
allow:
  - name: dns
    reason: the resolver
    to: [192.0.2.53]
    ports: [udp/53]
  - name: web
    reason: the API the site calls
    user: [www-data]
    to: [203.0.113.0/24]
    ports: [tcp/443]
deny:
  - name: smtp
    reason: only the MTA
    ports: [tcp/25]
    except: { user: 107 }
`;

const at = (min: number, sec = 0) => new Date(Date.UTC(2026, 4, 31, 10, min, sec)).toISOString();
const port = (line: string, from: string, spt: number) => line.replace(from, `SPT=${spt}`);

/**
 * 10:00–10:59 audit mode: every 5 minutes a `p:-` (root, udp/53 to
 * 203.0.113.9); every 15 minutes a `d:smtp` (www-data, tcp/25 to
 * 198.51.100.7) and its retransmission. 11:00–11:59 enforce: every 10
 * minutes a `D:smtp` and two retransmissions; every 2 minutes a `P:-`
 * (appuser, tcp/443 to 2001:db8::99). Plus lines that are no denial.
 */
export function knownLog(): string {
  const lines: string[] = [];
  let spt = 30000;
  for (let m = 0; m < 60; m++) {
    if (m % 5 === 0) lines.push(iso(`EGRESS p:- ${port(UDP4, 'SPT=45089', spt++)}`, at(m)));
    if (m % 15 === 0) {
      const l = `EGRESS d:smtp ${port(TCP4, 'SPT=57408', spt++)}`;
      lines.push(iso(l, at(m, 10)), iso(l, at(m, 11)));
    }
    lines.push(`${at(m, 30)} web1 systemd[1]: Started session ${m}.`);
  }
  for (let m = 60; m < 120; m++) {
    if (m % 10 === 0) {
      const l = `EGRESS D:smtp ${port(TCP4, 'SPT=57408', spt++)}`;
      lines.push(iso(l, at(m, 5)), iso(l, at(m, 6)), iso(l, at(m, 8)));
    }
    if (m % 2 === 0) lines.push(iso(`EGRESS P:- ${port(TCP6, 'SPT=40000', spt++)}`, at(m, 20)));
  }
  return lines.join('\n') + '\n';
}

/** What the page must show for knownLog() (and HISTORY). */
export const EXPECTED = {
  /** 10:00 to 11:58 is 119 minutes: 5-minute buckets, 24 of them. */
  buckets: 24,
  bucketMinutes: 5,
  /** Every bucket of the audit hour has a p:- line; every bucket of the enforce hour has a P:- line. */
  wouldDenyBars: 12,
  deniedBars: 12,
  denied: { connections: 6 + 30, packets: 18 + 30 },
  wouldDeny: { connections: 12 + 4, packets: 12 + 8 },
  destinations: {
    denied: [['[2001:db8::99] tcp/443', 30], ['198.51.100.7 tcp/25', 6]],
    'would-deny': [['203.0.113.9 udp/53', 12], ['198.51.100.7 tcp/25', 4]],
  },
  users: {
    denied: [['appuser (1001)', 30], ['www-data (33)', 6]],
    'would-deny': [['root (0)', 12], ['www-data (33)', 4]],
  },
  rules: {
    denied: [['(default)', 30], ['smtp', 6]],
    'would-deny': [['(default)', 12], ['smtp', 4]],
  },
  /** Within 10:00–12:00: refresh 10:20, apply 11:00, rollback 11:20, apply 11:40 (the apply at 09:00 is before the logs; confirm, the failed apply and the refresh that changed nothing are no changes). */
  markers: { apply: 2, rollback: 1, refresh: 1, remove: 0 },
  changes: 5,
  policyRules: ['dns', 'web', 'smtp'],
  stale: ['web'],
} as const;

function entry(time: string, action: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ time, action, user: 'alice', uid: 1002, policyFile: '/etc/egress/policy.yaml', policyHash: 'sha256:' + 'ab'.repeat(32), backend: 'nft', mode: 'enforce', outcome: 'ok', ...extra });
}

export const HISTORY = [
  entry('2026-05-31T09:00:00Z', 'apply', { mode: 'audit' }),
  entry('2026-05-31T10:20:00Z', 'refresh', { message: '1 address changed' }),
  entry('2026-05-31T11:00:00Z', 'apply'),
  entry('2026-05-31T11:01:00Z', 'confirm'),
  entry('2026-05-31T11:20:00Z', 'rollback'),
  entry('2026-05-31T11:30:00Z', 'apply', { outcome: 'failed' }),
  entry('2026-05-31T11:35:00Z', 'refresh', { message: 'no address changed' }),
  entry('2026-05-31T11:40:00Z', 'apply'),
];

/** Samples 40, 20 and 1 days before NOW: dns and smtp count up, web never moves (stale in 30 days). */
export function samples(): string {
  const s = (daysAgo: number, dns: number, web: number, smtp: number) =>
    JSON.stringify({
      time: new Date(NOW.getTime() - daysAgo * 86_400_000).toISOString(),
      counters: [
        { rule: 'dns', action: 'allow', family: 'ipv4', packets: dns, bytes: dns * 60 },
        { rule: 'web', action: 'allow', family: 'ipv4', packets: web, bytes: web * 60 },
        { rule: 'smtp', action: 'deny', family: 'ipv4', packets: smtp, bytes: smtp * 60 },
      ],
    });
  return [s(40, 10, 3, 1), s(20, 50, 3, 4), s(1, 90, 3, 9)].join('\n') + '\n';
}

export const STATUS: Status = {
  stateDir: '/x',
  applied: true,
  backend: 'nft',
  mode: 'enforce',
  default: 'reject',
  policyFile: '/etc/egress/policy.yaml',
  policyHash: 'sha256:' + 'ab'.repeat(32),
  drift: false,
  interrupted: false,
  counters: [
    { rule: 'dns', action: 'allow', family: 'ipv4', packets: 1200, bytes: 72000 },
    { rule: 'web', action: 'allow', family: 'ipv4', packets: 0, bytes: 0 },
    { rule: 'smtp', action: 'deny', family: 'ipv4', packets: 18, bytes: 1080 },
    { rule: 'reject', action: 'default', family: 'ipv6', packets: 30, bytes: 2400 },
  ],
  logging: { denials: 48, logged: 48, notLogged: 0, limit: '10/second burst 10' },
};

/** A directory with policy.yaml, kern.log and the state directory (history, samples): `env` points EGRESS_STATE_DIR at it. */
export function knownDir(policy = POLICY, log = knownLog(), history = HISTORY): { dir: string; env: Record<string, string> } {
  const dir = tempDir('egress-report-');
  const state = join(dir, 'state');
  mkdirSync(state);
  writeFileSync(join(dir, 'policy.yaml'), policy);
  writeFileSync(join(dir, 'kern.log'), log);
  writeFileSync(join(state, 'history.jsonl'), history.join('\n') + '\n');
  writeFileSync(join(state, 'counters.jsonl'), samples());
  return { dir, env: { EGRESS_STATE_DIR: state } };
}

/**
 * The known case with hostile names where a host can supply them: the policy
 * file's name `name`, and `h` as the history's user, policy file, hash and
 * message and as the account name of uid 33 (www-data in the log).
 */
export function hostileCase(h: string, name: string): { dir: string; io: Io & { out: string; err: string } } {
  const { dir, env } = knownDir(POLICY, undefined, [JSON.stringify({ time: '2026-05-31T10:30:00Z', action: 'apply', user: h, uid: 1, policyFile: h, policyHash: h, backend: 'nft', mode: 'enforce', outcome: 'ok', message: h })]);
  writeFileSync(join(dir, name), POLICY);
  const users = new Map([...ACCOUNTS.users].map(([n, id]) => [id === 33 ? h : n, id]));
  return { dir, io: Object.assign(captureIo(dir, env), { resolver: staticResolver({}, {}, { ...ACCOUNTS, users }) }) };
}
