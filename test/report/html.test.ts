/** `egress report`: the data, the SVG and the page (escaping included), and the command through its seams and the CLI. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { reportCommand } from '../../src/cli/commands/report.js';
import type { ReportData } from '../../src/report/html-data.js';
import { policyPicture, timelineView } from '../../src/report/html-data.js';
import { CSP, jsonForScript, renderReportHtml } from '../../src/report/html.js';
import { esc, niceTicks, timeTicks } from '../../src/report/html-svg.js';
import { run } from '../cli/run.js';
import { captureIo, loadText } from '../helpers.js';
import { EXPECTED, hostileCase, knownDir, POLICY, STATUS } from './known.js';

const count = (html: string, re: RegExp) => (html.match(new RegExp(re.source, 'g')) ?? []).length;

/** The JSON the page carries. */
function embedded(html: string): ReportData {
  const m = /<script type="application\/json" id="egress-report-data">([^<]*)<\/script>/.exec(html);
  expect(m, 'the data element').not.toBeNull();
  return JSON.parse(m![1]!) as ReportData;
}

/** The rows of one top list: [label, count] in order. */
function rows(html: string, chart: string): [string, number][] {
  const svg = new RegExp(`<svg data-chart="${chart}"[\\s\\S]*?</svg>`).exec(html)?.[0] ?? '';
  return [...svg.matchAll(/data-row="\d+" data-label="([^"]*)" data-count="(\d+)"/g)].map((m) => [m[1]!, Number(m[2])]);
}

describe('axes', () => {
  test('round ticks from 0 to at least the maximum', () => {
    expect(niceTicks(4)).toEqual([0, 1, 2, 3, 4]);
    expect(niceTicks(30, 4)).toEqual([0, 10, 20, 30]);
    expect(niceTicks(12, 4)).toEqual([0, 5, 10, 15]);
    expect(niceTicks(1234)).toEqual([0, 500, 1000, 1500]);
    expect(niceTicks(0)).toEqual([0, 1]);
  });

  test('time ticks on round UTC times, ISO 8601 labels', () => {
    const from = Date.parse('2026-05-31T10:00:00Z');
    expect(timeTicks(from, from + 2 * 3_600_000, 6).map((t) => t.label)).toEqual(['2026-05-31T10:00Z', '2026-05-31T10:30Z', '2026-05-31T11:00Z', '2026-05-31T11:30Z', '2026-05-31T12:00Z']);
    expect(timeTicks(from, from + 5 * 86_400_000, 6).map((t) => t.label)).toEqual(['2026-06-01', '2026-06-02', '2026-06-03', '2026-06-04', '2026-06-05']);
  });
});

describe('data', () => {
  test('both verdicts in the same buckets', () => {
    const m = (iso: string) => Date.parse(iso) / 60_000;
    const tl = timelineView(new Map([[m('2026-05-31T10:07:00Z'), 3]]), new Map([[m('2026-05-31T10:00:00Z'), 2], [m('2026-05-31T10:09:00Z'), 1]]), 60);
    expect(tl).toEqual({
      bucketMinutes: 1,
      start: '2026-05-31T10:00:00Z',
      buckets: Array.from({ length: 10 }, (_, i) => ({ start: `2026-05-31T10:0${i}:00Z`, denied: i === 7 ? 3 : 0, wouldDeny: i === 0 ? 2 : i === 9 ? 1 : 0 })),
    });
    expect(timelineView(new Map(), new Map())).toBeUndefined();
  });

  test('the policy picture: a node per rule, who and destinations linked through it', async () => {
    const l = await loadText(POLICY);
    const p = policyPicture(l.policy!, STATUS.counters);
    expect(p.rules.map((r) => [r.name, r.action, r.service, r.packets])).toEqual([
      ['dns', 'allow', 'udp/53', 1200],
      ['web', 'allow', 'tcp/443', 0],
      ['smtp', 'deny', 'tcp/25', 18],
    ]);
    const label = new Map([...p.who, ...p.rules, ...p.destinations].map((n) => [n.id, n.label]));
    expect(p.links.map((x) => `${label.get(x.from)} → ${label.get(x.to)}`).sort()).toEqual(
      ['any local user → dns', 'any local user → smtp', 'user www-data → web', 'dns → 192.0.2.53', 'web → 203.0.113.0/24', 'smtp → anywhere'].sort(),
    );
    expect(p.rules.find((r) => r.name === 'smtp')!.except).toBe('user 107');
  });

  test('a big policy: the destinations past the limit are one "more" node, the rules past it are counted', async () => {
    const rules = Array.from({ length: 8 }, (_, i) => `  - name: r${i}\n    to: [198.51.100.${i * 2}, 198.51.100.${i * 2 + 1}]\n    ports: [tcp/443]\n`).join('');
    const l = await loadText(`version: 1\nallow:\n${rules}`);
    const p = policyPicture(l.policy!, undefined, { rules: 6, destinations: 5, who: 30 });
    expect(p.rules.map((r) => r.name)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4', 'r5']);
    expect(p.hiddenRules).toBe(2);
    expect(p.destinations.map((d) => d.label)).toEqual(['198.51.100.0', '198.51.100.1', '198.51.100.2', '198.51.100.3', '… 8 more']);
    expect(p.hiddenDestinations).toBe(8);
    // Every shown rule still links to something on both sides.
    for (const r of p.rules) {
      expect(p.links.some((x) => x.to === r.id)).toBe(true);
      expect(p.links.some((x) => x.from === r.id)).toBe(true);
    }
  });
});

const HOSTILE = [`</script><img src=x onerror="document.title='pwned'">`, `"><svg onload=alert(1)>`, `' onmouseover='alert(2)`, '<!-- & -->', '\u2028</SCRIPT >'];

/** A ReportData whose every string a log, a policy or the history can supply is hostile. */
function hostileData(h: string): ReportData {
  const row = { label: h, count: 3, packets: 4, detail: h, kind: 'denied' };
  const verdict = { connections: 3, packets: 4, destinationCount: 1, destinations: [row], users: [row], rules: [row] };
  return {
    generated: '2026-06-01T12:00:00Z',
    version: h,
    policy: { file: h, mode: 'enforce', default: 'reject', logPrefix: h, rules: 1 },
    logs: [h],
    first: '2026-05-31T10:00:00Z',
    last: '2026-05-31T10:05:00Z',
    lines: { lines: 1, netfilter: 1, events: 1, other: 0, inbound: 0, malformed: 0, beforeSince: 0, pfirewall: 0, lost: 0, rotations: 0, afterUntil: 0 },
    logMode: 'enforce',
    denied: verdict,
    wouldDeny: verdict,
    timeline: { bucketMinutes: 1, start: '2026-05-31T10:00:00Z', buckets: [{ start: '2026-05-31T10:00:00Z', denied: 3, wouldDeny: 1 }] },
    changes: [{ time: '2026-05-31T10:00:30Z', action: 'apply', outcome: 'ok', mode: h, user: h, policyHash: h, message: h, jump: false, note: h }],
    historyNote: h,
    counters: { available: true, backend: h, mode: h, policyFile: h, policyHash: h, rows: [{ rule: h, action: 'deny', packets: 1, bytes: 2 }], logging: { denials: 2, logged: 1, notLogged: 1, limit: h } },
    stale: { days: 30, file: h, samples: 2, skipped: 0, from: '2026-05-01T00:00:00Z', to: '2026-05-31T00:00:00Z', rules: [{ rule: h, action: 'allow', status: 'unknown', hits: 0, note: h, lastHit: h }] },
    picture: { who: [{ id: h, label: h, title: h }], rules: [{ id: 'r0', name: h, label: h, action: 'deny', service: h, reason: h, except: h }], destinations: [{ id: 'd0', label: h, title: h }], links: [{ from: h, to: 'r0' }, { from: 'r0', to: 'd0' }], hiddenRules: 0, hiddenDestinations: 0 },
  };
}

describe('escaping', () => {
  test('esc leaves no character that can open a tag, end an attribute or start an entity', () => {
    expect(esc(`<a href="x" title='y'>&amp;</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
  });

  test('JSON for a <script> element: no "<", ">", "&" or line separator left, and it parses back to the same value', () => {
    const v = { s: HOSTILE.join('') };
    const j = jsonForScript(v);
    expect(j).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(j)).toEqual(v);
  });

  test.each(HOSTILE)('every string of the page escaped: %s', (h) => {
    const html = renderReportHtml(hostileData(h));
    // Markup comes only from the renderer: every tag is one of its elements, with double-quoted attributes of its own, none an event handler.
    const tags = [...html.matchAll(/<(?!!DOCTYPE|\/)([^>]*)>/g)].map((m) => m[1]!);
    for (const t of tags) {
      expect(t).toMatch(/^(html|head|meta|title|style|body|header|h1|h2|h3|p|code|b|div|section|svg|g|line|text|rect|circle|path|table|thead|tbody|tr|th|td|span|footer|script)(\s+[a-zA-Z][a-zA-Z0-9-]*="[^"<>]*")*\s*\/?$/);
      expect([...t.matchAll(/\s([a-zA-Z][a-zA-Z0-9-]*)="[^"]*"/g)].map((m) => m[1]!).filter((a) => /^on/i.test(a))).toEqual([]);
    }
    // Exactly one <script> (the data), ended once.
    expect(count(html, /<script/i)).toBe(1);
    expect(count(html, /<\/script/i)).toBe(1);
    expect(html).not.toMatch(/<img|<!--/i);
    // The hostile text is shown as text (escaped), and the data carries it unchanged.
    expect(html).toContain(esc(h.length > 30 ? h.slice(0, 29) : h));
    const d = embedded(html);
    expect(d.policy.file).toBe(h);
    expect(d.changes[0]!.user).toBe(h);
    expect(d.picture.rules[0]!.name).toBe(h);
  });

  test('the Content-Security-Policy forbids every load and every script, and allows the page\'s own style block by its hash', () => {
    expect(CSP).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]+=*'; img-src 'none'; script-src 'none'; base-uri 'none'; form-action 'none'$/);
    const html = renderReportHtml(hostileData('x'));
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="${esc(CSP)}">`);
    expect(html).not.toMatch(/\b(src|href)=/i);
  });
});

describe('egress report', () => {
  const seams = { status: async () => STATUS };

  test('the known log: bars per bucket and verdict, change markers, top lists, a node per rule, counters, stale rules', async () => {
    const { dir, env } = knownDir();
    const io = captureIo(dir, env);
    expect(await reportCommand(io, 'policy.yaml', ['kern.log'], { output: 'out.html' }, seams)).toBe(0);
    expect(io.out).toMatch(/^wrote .*out\.html \(\d+ KB\): 36 denied and 16 would-deny connections, 5 policy changes/);
    const html = readFileSync(join(dir, 'out.html'), 'utf8');
    expect(count(html, /<g data-bucket=/)).toBe(EXPECTED.buckets);
    expect(count(html, /data-bar="denied"/)).toBe(EXPECTED.deniedBars);
    expect(count(html, /data-bar="would-deny"/)).toBe(EXPECTED.wouldDenyBars);
    const sum = (v: string) => [...html.matchAll(new RegExp(`data-bar="${v}" data-count="(\\d+)"`, 'g'))].reduce((a, m) => a + Number(m[1]), 0);
    expect(sum('denied')).toBe(EXPECTED.denied.connections);
    expect(sum('would-deny')).toBe(EXPECTED.wouldDeny.connections);
    for (const [k, n] of Object.entries(EXPECTED.markers)) expect(count(html, new RegExp(`data-marker="${k}"`)), k).toBe(n);
    for (const v of ['denied', 'would-deny'] as const) {
      expect(rows(html, `destinations-${v}`)).toEqual(EXPECTED.destinations[v]);
      expect(rows(html, `users-${v}`)).toEqual(EXPECTED.users[v]);
      expect(rows(html, `rules-${v}`)).toEqual(EXPECTED.rules[v]);
    }
    expect([...html.matchAll(/data-node="rule" data-rule="([^"]*)"/g)].map((m) => m[1])).toEqual(EXPECTED.policyRules);
    expect(count(html, /<tr data-change=/)).toBe(EXPECTED.changes);
    expect([...html.matchAll(/<tr data-counter="([^"]*)"/g)].map((m) => m[1])).toEqual(['dns', 'web', 'smtp', 'reject']);
    expect([...html.matchAll(/<tr data-stale="stale"><td>([^<]*)</g)].map((m) => m[1])).toEqual(EXPECTED.stale);
    const d = embedded(html);
    expect(d.timeline!.bucketMinutes).toBe(EXPECTED.bucketMinutes);
    expect([d.denied.connections, d.denied.packets, d.wouldDeny.connections, d.wouldDeny.packets]).toEqual([EXPECTED.denied.connections, EXPECTED.denied.packets, EXPECTED.wouldDeny.connections, EXPECTED.wouldDeny.packets]);
    expect([d.first, d.last, d.logMode]).toEqual(['2026-05-31T10:00:00Z', '2026-05-31T11:58:20Z', 'mixed']);
    // One time format throughout: ISO 8601 UTC, to the second, no milliseconds and no local offsets.
    expect(html).not.toMatch(/\d\d:\d\d:\d\d\.\d{3}Z|\d\d:\d\d:\d\d[+-]\d\d:\d\d/);
  });

  test('--since and --until cut the window; --output - prints the page', async () => {
    const { dir, env } = knownDir();
    const io = captureIo(dir, env);
    expect(await reportCommand(io, 'policy.yaml', ['kern.log'], { since: '2026-05-31T11:00Z', until: '2026-05-31T11:30Z', output: '-' }, seams)).toBe(0);
    const d = embedded(io.out);
    // 11:00–11:29: D:smtp at 11:00, 11:10, 11:20; P:- every 2 minutes from 11:00 to 11:28.
    expect([d.denied.connections, d.wouldDeny.connections, d.since, d.until]).toEqual([3 + 15, 0, '2026-05-31T11:00:00Z', '2026-05-31T11:30:00Z']);
    expect(d.lines.afterUntil).toBe(9 + 15);
    expect(io.out).toMatch(/^<!DOCTYPE html>/);
  });

  test('counters not readable: the page says why; no history, no samples: it says so', async () => {
    const { dir } = knownDir();
    const io = captureIo(dir, { EGRESS_STATE_DIR: join(dir, 'nowhere') });
    expect(await reportCommand(io, 'policy.yaml', ['kern.log'], { output: '-' }, { uid: 1000 })).toBe(0);
    expect(io.out).toContain('<p class="none" data-counters="none">Kernel counters not available: reading the live ruleset needs root.</p>');
    expect(io.out).toMatch(/no apply history \([^)]*history\.jsonl\)/);
    expect(io.out).toMatch(/no counter samples in [^ ]*counters\.jsonl/);
    expect(count(io.out, /data-marker=/)).toBe(0);
  });

  test('hostile names from the history, the accounts and the file name reach the page as text', async () => {
    const h = `</script><img src=x onerror="document.title='pwned'">`;
    const name = `x'"><img src=x onerror=alert(1)>.yaml`;
    const { io } = hostileCase(h, name);
    expect(await reportCommand(io, name, ['kern.log'], { output: '-' }, seams)).toBe(0);
    expect(io.out).not.toMatch(/<img/i);
    expect(count(io.out, /<\/script/i)).toBe(1);
    const d = embedded(io.out);
    expect(d.policy.file).toBe(name);
    expect(d.changes[0]!.user).toBe(h);
    expect(d.denied.users.map((u) => u.label)).toContain(`${h} (33)`);
  });

  test('through the CLI: usage errors exit 2, a missing default policy exits 1, the page is written', async () => {
    const { dir, env } = knownDir();
    expect((await run(['report', 'policy.yaml', 'kern.log', '--top', '0'], { cwd: dir, env })).code).toBe(2);
    const r = await run(['report', 'policy.yaml', 'kern.log', '--since', '2026-05-31T11:00Z', '--until', '2026-05-31T10:00Z'], { cwd: dir, env });
    expect([r.code, r.stderr]).toEqual([2, 'egress: error: --until must be later than --since\n']);
    expect((await run(['report', 'policy.yaml', 'kern.log', '--until', 'soon'], { cwd: dir, env })).code).toBe(2);
    const missing = await run(['report'], { cwd: dir, env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no policy given, and the default .* does not exist/);
    const ok = await run(['report', 'policy.yaml', 'kern.log'], { cwd: dir, env, uid: 1000 });
    expect([ok.code, ok.stderr]).toEqual([0, '']);
    expect(readFileSync(join(dir, 'egress-report.html'), 'utf8')).toMatch(/^<!DOCTYPE html>[\s\S]*<\/html>\n$/);
  });
});
