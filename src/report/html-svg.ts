/**
 * Hand-made SVG for the HTML report (html.ts): axes with round ticks, a
 * stacked time series with change markers, horizontal bars, and the policy
 * as a layered who → rule → destinations diagram. Pure string building,
 * drawn on the server: no script runs in the page. Every text that comes
 * from a policy, a log or the history goes through `esc`; every mark carries
 * data- attributes (what tests and curious readers select on) and a
 * <title> (the browser's tooltip).
 */
import { formatIso } from '../logs/since.js';
import type { ChangeView, PolicyPicture, Row, TimelineView } from './html-data.js';

/** Text for HTML or SVG, in element content or a double- or single-quoted attribute. */
export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;'));
}

const num = (n: number) => n.toLocaleString('en-US');

/** At most `max` characters, ending in "…" when cut (the whole text goes in the mark's <title>). */
export function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, Math.max(1, max - 1))}…`;
}

/** Ticks 0, step, 2·step, … with step 1, 2 or 5 × 10^k, the last at or above `max`, about `count` of them. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const whole = Math.max(1, step); // counts are whole numbers: no tick at 0.5
  const out: number[] = [];
  for (let t = 0; t < max + whole; t += whole) out.push(t);
  return out;
}

const MIN = 60_000;
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 20160, 43200].map((m) => m * MIN);

/**
 * Round UTC times within [from, to] for an axis: at most `max` of them, on
 * multiples of a step of whole minutes, hours or days. Labels are ISO 8601
 * UTC, to the minute ("2026-05-31T10:00Z"), or the date alone for steps of a
 * day or more.
 */
export function timeTicks(from: number, to: number, max = 6): { t: number; label: string }[] {
  const span = Math.max(to - from, MIN);
  const step = TIME_STEPS.find((s) => span / s <= max) ?? Math.ceil(span / max / 86_400_000) * 86_400_000;
  const out: { t: number; label: string }[] = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) out.push({ t, label: step >= 86_400_000 ? formatIso(t).slice(0, 10) : formatIso(t).slice(0, 16) + 'Z' });
  return out;
}

/** Marker kinds on the timeline: an auto-rollback is a rollback. */
export function markerKind(action: string): 'apply' | 'rollback' | 'refresh' | 'remove' {
  return action === 'auto-rollback' || action === 'rollback' ? 'rollback' : action === 'refresh' ? 'refresh' : action === 'remove' ? 'remove' : 'apply';
}

const MARK_LETTER = { apply: 'A', rollback: 'R', refresh: 'F', remove: 'X' } as const;

function changeTitle(c: ChangeView): string {
  const parts = [`${c.action}${c.outcome === 'pending' ? ' (pending confirmation)' : ''} at ${c.time}`];
  if (c.user) parts.push(`by ${c.user}`);
  if (c.mode) parts.push(`${c.mode} mode`);
  if (c.policyHash) parts.push(`policy ${c.policyHash.replace(/^sha256:/, '').slice(0, 12)}`);
  let s = parts.join(', ');
  if (c.beforePerHour !== undefined && c.afterPerHour !== undefined) s += `\ndenials per hour: ${rate(c.beforePerHour)} before → ${rate(c.afterPerHour)} after${c.jump ? ' (jumped)' : ''}`;
  else if (c.note) s += `\n${c.note}`;
  if (c.message) s += `\n${c.message}`;
  return s;
}

export function rate(perHour: number): string {
  return perHour >= 10 ? String(Math.round(perHour)) : perHour.toFixed(1);
}

/**
 * Connections per bucket, stacked (denied below, would deny above), with a
 * vertical marker at every apply, rollback, refresh and remove the
 * history holds within the chart's time span.
 */
export function timeChart(tl: TimelineView, changes: readonly ChangeView[], width = 960, height = 300): string {
  const m = { left: 60, right: 16, top: 26, bottom: 64 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const t0 = Date.parse(tl.start);
  const bucketMs = tl.bucketMinutes * MIN;
  const t1 = t0 + tl.buckets.length * bucketMs;
  const x = (t: number) => m.left + ((t - t0) / (t1 - t0)) * pw;
  const peak = Math.max(1, ...tl.buckets.map((b) => b.denied + b.wouldDeny));
  const yTicks = niceTicks(peak);
  const yMax = yTicks.at(-1)!;
  const y = (v: number) => m.top + ph - (v / yMax) * ph;
  const out: string[] = [];
  out.push(`<svg data-chart="timeline" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-labelledby="tl-title">`);
  out.push(`<title id="tl-title">Connections denied and would-be-denied per ${tl.bucketMinutes >= 60 ? `${tl.bucketMinutes / 60} h` : `${tl.bucketMinutes} min`}, ${esc(tl.start)} to ${esc(formatIso(t1))}</title>`);
  // Y axis: grid lines with their counts.
  out.push('<g class="axis y">');
  for (const v of yTicks) out.push(`<line class="grid" x1="${m.left}" x2="${m.left + pw}" y1="${y(v)}" y2="${y(v)}"/><text x="${m.left - 6}" y="${y(v) + 4}" text-anchor="end">${num(v)}</text>`);
  out.push(`<text class="label" transform="translate(14 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">connections</text></g>`);
  // Bars.
  const bw = pw / tl.buckets.length;
  out.push('<g class="bars">');
  tl.buckets.forEach((b, i) => {
    const bx = m.left + i * bw + Math.min(1, bw * 0.1);
    const w = Math.max(0.5, bw - 2 * Math.min(1, bw * 0.1));
    const end = formatIso(Date.parse(b.start) + bucketMs);
    out.push(`<g data-bucket="${i}" data-start="${esc(b.start)}">`);
    let base = 0;
    for (const [verdict, n, what] of [['denied', b.denied, 'denied (enforce)'], ['would-deny', b.wouldDeny, 'would deny (audit)']] as const) {
      if (!n) continue;
      out.push(
        `<rect class="bar ${verdict}" data-bar="${verdict}" data-count="${n}" x="${bx.toFixed(2)}" y="${y(base + n).toFixed(2)}" width="${w.toFixed(2)}" height="${(y(base) - y(base + n)).toFixed(2)}"><title>${esc(b.start)} – ${esc(end)}: ${num(n)} ${what}</title></rect>`,
      );
      base += n;
    }
    out.push('</g>');
  });
  out.push('</g>');
  // X axis.
  out.push(`<g class="axis x"><line class="domain" x1="${m.left}" x2="${m.left + pw}" y1="${m.top + ph}" y2="${m.top + ph}"/>`);
  for (const tk of timeTicks(t0, t1, Math.max(2, Math.floor(pw / 150))))
    // A label at either end is anchored inside the chart, not cut by its edge.
    out.push(`<line x1="${x(tk.t)}" x2="${x(tk.t)}" y1="${m.top + ph}" y2="${m.top + ph + 5}"/><text x="${x(tk.t)}" y="${m.top + ph + 18}" text-anchor="${x(tk.t) > width - 60 ? 'end' : x(tk.t) < m.left + 10 ? 'start' : 'middle'}">${esc(tk.label)}</text>`);
  out.push(`<text class="label" x="${m.left + pw / 2}" y="${m.top + ph + 36}" text-anchor="middle">time (UTC)</text></g>`);
  // Change markers.
  out.push('<g class="markers">');
  for (const c of changes) {
    const t = Date.parse(c.time);
    if (t < t0 || t > t1) continue;
    const k = markerKind(c.action);
    const mx = x(t).toFixed(2);
    out.push(
      `<g class="marker ${k}${c.jump ? ' jump' : ''}" data-marker="${k}" data-action="${esc(c.action)}" data-time="${esc(c.time)}"><title>${esc(changeTitle(c))}</title><line x1="${mx}" x2="${mx}" y1="${m.top - 4}" y2="${m.top + ph}"/><circle cx="${mx}" cy="${m.top - 12}" r="8"/><text x="${mx}" y="${m.top - 8}" text-anchor="middle">${MARK_LETTER[k]}</text></g>`,
    );
  }
  out.push('</g>');
  // Legend.
  const ly = height - 12;
  const legend: string[] = [
    `<rect class="bar denied" x="0" y="-9" width="12" height="12"/><text x="16" y="1">denied (enforce)</text>`,
    `<rect class="bar would-deny" x="0" y="-9" width="12" height="12"/><text x="16" y="1">would deny (audit)</text>`,
    ...(['apply', 'rollback', 'refresh', 'remove'] as const).map((k) => `<g class="marker ${k}"><circle cx="6" cy="-3" r="7"/><text x="6" y="1" text-anchor="middle">${MARK_LETTER[k]}</text></g><text x="17" y="1">${k}</text>`),
  ];
  const widths = [140, 150, 80, 90, 85, 85];
  let lx = m.left;
  out.push('<g class="legend">');
  legend.forEach((l, i) => {
    out.push(`<g transform="translate(${lx} ${ly})">${l}</g>`);
    lx += widths[i]!;
  });
  out.push('</g></svg>');
  return out.join('');
}

/**
 * Horizontal bars, most first: label, bar, count; an x axis with round ticks.
 * `name` is the chart's data-chart value.
 */
export function barChart(name: string, rows: readonly Row[], unit: string, width = 460): string {
  const rowH = 22;
  const labelW = 190;
  const m = { left: labelW + 8, right: 56, top: 4, bottom: 28 };
  const pw = width - m.left - m.right;
  const height = m.top + rows.length * rowH + m.bottom;
  const ticks = niceTicks(Math.max(1, ...rows.map((r) => r.count)), 4);
  const xMax = ticks.at(-1)!;
  const x = (v: number) => m.left + (v / xMax) * pw;
  const out: string[] = [`<svg data-chart="${esc(name)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img">`];
  out.push('<g class="axis x">');
  for (const t of ticks) out.push(`<line class="grid" x1="${x(t)}" x2="${x(t)}" y1="${m.top}" y2="${m.top + rows.length * rowH}"/><text x="${x(t)}" y="${m.top + rows.length * rowH + 16}" text-anchor="middle">${num(t)}</text>`);
  out.push('</g>');
  rows.forEach((r, i) => {
    const y = m.top + i * rowH;
    const detail = r.detail ? `\n${r.detail}` : '';
    out.push(
      `<g class="row" data-row="${i}" data-label="${esc(r.label)}" data-count="${r.count}"><title>${esc(r.label)}: ${num(r.count)} ${esc(unit)}, ${num(r.packets)} log lines${esc(detail)}</title>` +
        `<text class="name" x="0" y="${y + 15}">${esc(clip(r.label, 30))}</text>` +
        `<rect class="bar ${esc(r.kind ?? '')}" x="${m.left}" y="${y + 4}" width="${Math.max(r.count > 0 ? 1 : 0, x(r.count) - m.left).toFixed(2)}" height="${rowH - 8}"/>` +
        `<text class="value" x="${(x(r.count) + 4).toFixed(2)}" y="${y + 15}">${num(r.count)}</text></g>`,
    );
  });
  out.push('</svg>');
  return out.join('');
}

/**
 * The policy as a picture: who (users, groups, forward sources) → rule →
 * destinations (with the rule's ports in its node). Three columns of nodes
 * ordered to cross few links (each who and destination placed by the mean
 * position of its rules), links as curves coloured by the rule's action.
 */
export function policyChart(p: PolicyPicture, width = 960): string {
  const rowH = 30;
  const nodeH = 22;
  const colW = 230;
  const cols = [0, (width - colW) / 2, width - colW];
  const n = Math.max(p.who.length, p.rules.length, p.destinations.length, 1);
  const top = 24;
  const height = top + n * rowH + 8;
  const place = (count: number, i: number) => top + ((n - count) * rowH) / 2 + i * rowH;
  const pos = new Map<string, { x: number; y: number }>();
  p.who.forEach((w, i) => pos.set(w.id, { x: cols[0]!, y: place(p.who.length, i) }));
  p.rules.forEach((r, i) => pos.set(r.id, { x: cols[1]!, y: place(p.rules.length, i) }));
  p.destinations.forEach((d, i) => pos.set(d.id, { x: cols[2]!, y: place(p.destinations.length, i) }));
  const action = new Map(p.rules.map((r) => [r.id, r.action]));
  const out: string[] = [`<svg data-chart="policy" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img">`];
  out.push(`<g class="heads"><text x="${cols[0]}" y="14">who</text><text x="${cols[1]}" y="14">rule</text><text x="${cols[2]}" y="14">destinations</text></g>`);
  out.push('<g class="links">');
  for (const l of p.links) {
    const a = pos.get(l.from);
    const b = pos.get(l.to);
    if (!a || !b) continue;
    const x1 = a.x + colW;
    const y1 = a.y + nodeH / 2;
    const x2 = b.x;
    const y2 = b.y + nodeH / 2;
    const mx = (x1 + x2) / 2;
    const act = action.get(l.from) ?? action.get(l.to) ?? 'allow';
    out.push(`<path class="link ${act}" data-link="${esc(l.from)} ${esc(l.to)}" d="M${x1} ${y1} C${mx} ${y1} ${mx} ${y2} ${x2} ${y2}"/>`);
  }
  out.push('</g><g class="nodes">');
  const node = (kind: string, id: string, label: string, title: string, cls: string, extra = '') => {
    const { x, y } = pos.get(id)!;
    return `<g class="node ${cls}" data-node="${kind}"${extra}><title>${esc(title)}</title><rect x="${x}" y="${y}" width="${colW}" height="${nodeH}" rx="4"/><text x="${x + 8}" y="${y + 15}">${esc(clip(label, 34))}</text></g>`;
  };
  for (const w of p.who) out.push(node('who', w.id, w.label, w.title ?? w.label, 'who'));
  for (const r of p.rules) {
    const counted = r.packets !== undefined ? `\nkernel counter: ${num(r.packets)} packets` : '';
    const label = `${r.name}${r.service ? `  ${r.service}` : ''}`;
    out.push(node('rule', r.id, label, `${r.action} rule "${r.name}"${r.service ? `: ${r.service}` : ''}${r.reason ? `\n${r.reason}` : ''}${r.except ? `\nexcept ${r.except}` : ''}${counted}`, `rule ${r.action}`, ` data-rule="${esc(r.name)}" data-action="${r.action}"`));
  }
  for (const d of p.destinations) out.push(node('destination', d.id, d.label, d.title ?? d.label, 'destination'));
  out.push('</g></svg>');
  return out.join('');
}

