/**
 * ReportData → one self-contained HTML page (`egress report`): styles
 * inline, charts as server-drawn SVG (html-svg.ts), no script to run and
 * nothing fetched — the Content-Security-Policy says so to the browser
 * (`default-src 'none'`, the one style block allowed by its hash). The data
 * the page was drawn from rides along as JSON in a
 * <script type="application/json"> (never executed), escaped so that no
 * string in it can end the element. Pure.
 */
import { createHash } from 'node:crypto';
import type { RuleCounter } from '../kernel/status.js';
import type { ChangeView, ReportData, VerdictView } from './html-data.js';
import { barChart, esc, markerKind, policyChart, rate, timeChart } from './html-svg.js';

const num = (n: number) => n.toLocaleString('en-US');

/** JSON that is safe inside a <script> element: no "<", ">" or "&" (so no "</script>" or "<!--"), no U+2028/2029. */
export function jsonForScript(v: unknown): string {
  return JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const STYLE = `
:root { color-scheme: light; --fg: #1d2329; --muted: #5b6670; --line: #d8dde2; --bg: #fff; --panel: #f6f8fa;
  --denied: #d55e00; --would: #0072b2; --allow: #009e73; --apply: #009e73; --rollback: #cc79a7; --refresh: #7a7a7a; --remove: #222; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 16px 0 4px; }
p, li { max-width: 90ch; }
.meta { color: var(--muted); margin: 0; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 170px; }
.card b { display: block; font-size: 22px; }
.card.denied b { color: var(--denied); } .card.would-deny b { color: var(--would); }
.side { display: flex; flex-wrap: wrap; gap: 32px; }
.side > section { flex: 1 1 460px; min-width: 0; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-weight: 600; background: var(--panel); }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.none { color: var(--muted); font-style: italic; }
.tag { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 12px; border: 1px solid var(--line); }
.tag.stale { background: #fde8e0; border-color: var(--denied); } .tag.used { background: #e2f4ee; border-color: var(--allow); }
.jump { color: var(--denied); font-weight: 600; }
svg { display: block; max-width: 100%; height: auto; font: 11.5px system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
svg text { fill: var(--fg); }
svg .axis text { fill: var(--muted); } svg .axis line { stroke: var(--muted); } svg .grid { stroke: var(--line); } svg .domain { stroke: var(--muted); }
svg .label { fill: var(--muted); }
svg .bar.denied { fill: var(--denied); } svg .bar.would-deny { fill: var(--would); }
svg .row:hover .bar, svg g[data-bucket]:hover .bar { opacity: .75; }
svg .marker line { stroke-width: 1.5; stroke-dasharray: 4 3; }
svg .marker circle { stroke: #fff; stroke-width: 1; }
svg .marker text { fill: #fff; font-weight: 700; font-size: 10px; }
svg .marker.apply line { stroke: var(--apply); } svg .marker.apply circle { fill: var(--apply); }
svg .marker.rollback line { stroke: var(--rollback); } svg .marker.rollback circle { fill: var(--rollback); }
svg .marker.refresh line { stroke: var(--refresh); } svg .marker.refresh circle { fill: var(--refresh); }
svg .marker.remove line { stroke: var(--remove); } svg .marker.remove circle { fill: var(--remove); }
svg .legend text { fill: var(--fg); }
svg .heads text { font-weight: 600; fill: var(--muted); }
svg .node rect { fill: var(--panel); stroke: var(--muted); }
svg .node.rule.allow rect { fill: #e2f4ee; stroke: var(--allow); } svg .node.rule.deny rect { fill: #fde8e0; stroke: var(--denied); }
svg .link { fill: none; stroke-width: 1.6; opacity: .55; } svg .link.allow { stroke: var(--allow); } svg .link.deny { stroke: var(--denied); }
svg .node:hover rect { stroke-width: 2; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
`;

/** `'sha256-…'` of a style or script element's text, for the Content-Security-Policy. */
function cspHash(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** The page's Content-Security-Policy: nothing may load or run; only its own style block applies. */
export const CSP = `default-src 'none'; style-src ${cspHash(STYLE)}; img-src 'none'; script-src 'none'; base-uri 'none'; form-action 'none'`;

function verdictSection(title: string, v: VerdictView, verdict: 'denied' | 'would-deny', intro: string): string {
  const out = [`<section data-verdict="${verdict}"><h3>${esc(title)}: ${num(v.connections)} connection${v.connections === 1 ? '' : 's'}</h3><p class="meta">${esc(intro)}</p>`];
  if (!v.connections) out.push('<p class="none">none in these logs</p>');
  else {
    out.push(`<h3>top destinations (${num(Math.min(v.destinations.length, v.destinationCount))} of ${num(v.destinationCount)})</h3>`, barChart(`destinations-${verdict}`, v.destinations, 'connections'));
    out.push('<h3>by user</h3>', barChart(`users-${verdict}`, v.users, 'connections'));
    out.push('<h3>by rule</h3>', barChart(`rules-${verdict}`, v.rules, 'connections'));
  }
  out.push('</section>');
  return out.join('\n');
}

function changesTable(changes: readonly ChangeView[]): string {
  const rows = changes.map(
    (c) =>
      `<tr data-change="${esc(markerKind(c.action))}"><td class="mono">${esc(c.time)}</td><td>${esc(c.action)}${c.outcome === 'pending' ? ' (pending)' : ''}</td><td>${esc(c.mode ?? '')}</td><td class="mono">${esc((c.policyHash ?? '').replace(/^sha256:/, '').slice(0, 12))}</td><td>${esc(c.user ?? '')}</td>` +
      `<td class="n">${c.beforePerHour !== undefined ? rate(c.beforePerHour) : '-'}</td><td class="n">${c.afterPerHour !== undefined ? rate(c.afterPerHour) : '-'}</td><td${c.jump ? ' class="jump"' : ''}>${c.jump ? 'denials jumped' : esc(c.note ?? '')}</td></tr>`,
  );
  return `<table data-table="changes"><thead><tr><th>time (UTC)</th><th>change</th><th>mode</th><th>policy</th><th>by</th><th>denials/h before</th><th>after</th><th></th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function countersSection(d: ReportData): string {
  const c = d.counters;
  if (!c.available) return `<p class="none" data-counters="none">Kernel counters not available: ${esc(c.note)}.</p>`;
  const label = (x: RuleCounter) => (x.action === 'default' ? `(default ${x.rule})` : x.action === 'unlisted' ? `(unlisted: ${x.rule})` : x.action === 'builtin' ? `(built-in ${x.rule})` : x.rule);
  const rows = c.rows.map(
    (x) =>
      `<tr data-counter="${esc(x.rule)}"><td>${esc(label(x))}</td><td>${esc(x.action)}</td><td>${esc(x.family ?? '')}</td><td>${x.scope === 'forward' ? 'forwarded' : 'host'}</td><td class="n">${num(x.packets)}</td><td class="n">${num(x.bytes)}</td></tr>`,
  );
  const lg = c.logging;
  const log = lg
    ? `<p>${lg.notLogged ? `${num(lg.logged)} of ${num(lg.denials)} denials logged; <b>${num(lg.notLogged)} not logged</b> (rate limit ${esc(lg.limit)}): no log reader sees those flows, and this page undercounts them.` : `Every one of ${num(lg.denials)} denials was logged (rate limit ${esc(lg.limit)}).`}</p>`
    : '';
  return (
    `<p class="meta">Exact, since the live ruleset was loaded: ${esc(c.backend ?? '?')}, ${esc(c.mode ?? '?')} mode, policy ${esc(c.policyFile ?? '?')} (${esc((c.policyHash ?? '').replace(/^sha256:/, '').slice(0, 12))}).</p>` +
    `<table data-table="counters"><thead><tr><th>rule</th><th>action</th><th>family</th><th>traffic</th><th>packets</th><th>bytes</th></tr></thead><tbody>${rows.join('')}</tbody></table>${log}`
  );
}

function staleSection(d: ReportData): string {
  const s = d.stale;
  const head = s.samples
    ? `<p class="meta">${num(s.samples)} counter samples from ${esc(s.from!)} to ${esc(s.to!)} in <code>${esc(s.file)}</code>${s.skipped ? ` (${num(s.skipped)} unreadable lines skipped)` : ''}.</p>`
    : `<p class="none">${esc(s.note ?? 'no counter samples')}.</p>`;
  const stale = s.rules.filter((r) => r.status === 'stale');
  const verdict = stale.length
    ? `<p><b>${num(stale.length)} rule${stale.length === 1 ? '' : 's'} with no hits in ${s.days} days:</b> ${stale.map((r) => `<code>${esc(r.rule)}</code>`).join(', ')}.</p>`
    : `<p>No rule is known to be without hits in ${s.days} days.</p>`;
  const rows = s.rules.map(
    (r) =>
      `<tr data-stale="${esc(r.status)}"><td>${esc(r.rule)}</td><td>${esc(r.action)}</td><td class="n">${num(r.hits)}</td><td class="mono">${esc(r.lastHit ?? '-')}</td><td><span class="tag ${esc(r.status)}">${esc(r.status)}</span>${r.note ? ` ${esc(r.note)}` : ''}</td></tr>`,
  );
  return `${head}${verdict}<table data-table="stale"><thead><tr><th>rule</th><th>action</th><th>hits (${s.days} d)</th><th>last hit (UTC)</th><th>status</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

export function renderReportHtml(d: ReportData): string {
  const tl = d.timeline;
  const span = d.first && d.last ? `from ${d.first} to ${d.last}` : 'no denial in the logs read';
  const lines = d.lines;
  const linesText = [`${num(lines.lines)} lines read`, `${num(lines.events)} denial lines`, ...(lines.other ? [`${num(lines.other)} of other LOG rules`] : []), ...(lines.inbound ? [`${num(lines.inbound)} inbound`] : []), ...(lines.beforeSince ? [`${num(lines.beforeSince)} before --since`] : []), ...(lines.afterUntil ? [`${num(lines.afterUntil)} after --until`] : []), ...(lines.malformed ? [`${num(lines.malformed)} malformed (skipped)`] : []), ...(lines.lost ? [`${num(lines.lost)} lost (kernel buffer overrun)`] : [])].join(', ');
  const t0 = tl ? Date.parse(tl.start) : 0;
  const t1 = tl ? t0 + tl.buckets.length * tl.bucketMinutes * 60_000 : 0;
  const outside = tl ? d.changes.filter((c) => Date.parse(c.time) < t0 || Date.parse(c.time) > t1).length : d.changes.length;
  const body: string[] = [];
  body.push(`<header><h1>egress report</h1><p class="meta">policy <code>${esc(d.policy.file)}</code> (${esc(d.policy.mode)} mode, default ${esc(d.policy.default)}, ${num(d.policy.rules)} rules, log prefix <code>${esc(JSON.stringify(d.policy.logPrefix))}</code>)</p>`);
  body.push(`<p class="meta">logs ${d.logs.map((l) => `<code>${esc(l)}</code>`).join(', ')}${d.since ? `, since ${esc(d.since)}` : ''}${d.until ? `, until ${esc(d.until)}` : ''}: ${esc(span)}. Times are UTC (ISO 8601).</p></header>`);
  body.push(
    `<div class="cards"><div class="card denied" data-total="denied"><b>${num(d.denied.connections)}</b>connections denied (enforce)</div><div class="card would-deny" data-total="would-deny"><b>${num(d.wouldDeny.connections)}</b>connections audit mode would deny</div><div class="card"><b>${num(d.denied.packets + d.wouldDeny.packets)}</b>log lines</div><div class="card"><b>${num(d.changes.length)}</b>policy changes in the history</div></div>`,
  );
  body.push(`<p class="meta">${esc(linesText)}. A connection is counted once: retransmissions within 60 s are the same attempt.</p>`);

  body.push('<h2 id="time">Denials over time</h2>');
  if (tl) {
    body.push(timeChart(tl, d.changes));
    body.push(`<p class="meta">${tl.bucketMinutes >= 60 ? `${tl.bucketMinutes / 60} h` : `${tl.bucketMinutes} min`} per bar; markers: every apply, rollback, refresh and remove of the apply history within the chart (hover for who, when and the denial rate before and after).${outside ? ` ${num(outside)} more change${outside === 1 ? '' : 's'} outside the logs' time span: see the table below.` : ''}</p>`);
  } else body.push('<p class="none">No denial with a time stamp in the logs read.</p>');

  body.push('<h2 id="verdicts">Enforce and audit, side by side</h2>');
  body.push(
    `<div class="side">${verdictSection('Denied (enforce)', d.denied, 'denied', 'Lines tagged D, P, B, U: blocked.')}${verdictSection('Would deny (audit)', d.wouldDeny, 'would-deny', 'Lines tagged d, p, b, u: logged and let through; enforce mode would block them.')}</div>`,
  );

  body.push('<h2 id="changes">Policy changes</h2>');
  if (d.historyNote) body.push(`<p class="meta">${esc(d.historyNote)}</p>`);
  if (d.changes.length) body.push(changesTable(d.changes));
  else if (!d.historyNote) body.push('<p class="none">No change of the ruleset in the apply history.</p>');

  body.push('<h2 id="counters">Kernel counters</h2>', countersSection(d));
  body.push(`<h2 id="stale">Stale rules</h2>`, staleSection(d));

  const p = d.picture;
  body.push('<h2 id="policy">The policy: who → rule → destinations</h2>');
  body.push(policyChart(p));
  const hidden = [p.hiddenRules ? `${num(p.hiddenRules)} more rules not drawn` : '', p.hiddenDestinations ? `${num(p.hiddenDestinations)} destinations drawn as one "more" node` : ''].filter(Boolean).join('; ');
  body.push(`<p class="meta">Green: allow rules, red: deny rules; ports in the rule's box. Traffic no rule admits gets the default (${esc(d.policy.default)}).${hidden ? ` ${esc(hidden)}.` : ''} Hover a box for its reason, exceptions and kernel counter.</p>`);

  body.push(`<footer>Generated by egress ${esc(d.version)} at ${esc(d.generated)}. This page loads nothing and runs no script; the data it was drawn from is in the element <code>#egress-report-data</code> (JSON).</footer>`);
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${esc(CSP)}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>egress report: ${esc(d.policy.file)}</title>`,
    `<style>${STYLE}</style>`,
    '</head><body>',
    ...body,
    `<script type="application/json" id="egress-report-data">${jsonForScript(d)}</script>`,
    '</body></html>',
    '',
  ].join('\n');
}
