import { describe, expect, test } from 'vitest';
import { KernelLineParser } from '../logs/parse-kernel.js';
import { Deduper } from './dedupe.js';
import { Replayer } from './replay.js';
import { ACCOUNTS, loadText, NOW } from '../../test/helpers.js';
import { iso, TCP4, TCP6, UDP4 } from '../../test/observe/lines.js';

const CANDIDATE = `
version: 1
mode: enforce
default: reject
allow:
  - name: dns
    reason: resolver
    to: [203.0.113.9]
    ports: [udp/53]
  - name: api
    reason: partner API for appuser
    user: appuser
    to: ["2001:db8::99"]
    ports: [tcp/443]
deny:
  - name: smtp
    reason: only the MTA
    ports: [tcp/25]
    except: { user: postfix }
`;

describe('replay', () => {
  test('recorded denials through a candidate: what it still denies (and by which rule), what it admits', async () => {
    const l = await loadText(CANDIDATE);
    const r = new Replayer(l.ir!, ACCOUNTS);
    const p = new KernelLineParser({ now: NOW.getTime() });
    const d = new Deduper();
    const lines = [
      iso(`EGRESS p:- ${UDP4}`), // now allowed by dns
      iso(`EGRESS p:- ${TCP6}`), // uid 1001 = appuser: allowed by api
      iso(`EGRESS p:- ${TCP6.replace('UID=1001 GID=1001', 'UID=33 GID=33').replace('SPT=40000', 'SPT=40001')}`), // www-data: still the default
      iso(`EGRESS d:smtp ${TCP4}`), // still smtp
      iso(`EGRESS d:smtp ${TCP4}`, '2026-11-23T09:14:43.000000+01:00'), // retransmission
    ];
    for (const line of lines) {
      const e = p.parseLine(line);
      if (e) r.add(e, d.isNew(e));
    }
    const { stats, summary } = r.finish(p.counts, {});
    expect(summary).toEqual({
      connections: 4,
      denied: 2,
      admitted: 2,
      admittedBy: [
        { rule: 'api', connections: 1 },
        { rule: 'dns', connections: 1 },
      ],
      unreadable: 0,
    });
    // Shown as stats shows it, with the candidate's verdict (enforce) and rules.
    expect(stats).toMatchObject({ connections: 2, packets: 3, denied: 2, wouldDeny: 0 });
    expect(stats.rules.map((x) => [x.rule ?? '(default)', x.connections, x.packets])).toEqual([
      ['smtp', 1, 2],
      ['(default)', 1, 1],
    ]);
  });
});
