/**
 * The Grafana dashboard (packaging/grafana/egress-dashboard.json): it parses,
 * every PromQL expression names only metrics the exporter emits (taken from
 * `toPrometheus` output for a sample that has every family), and every panel
 * and query reads the data source variable `${DS_PROMETHEUS}`, so an import
 * asks for the data source instead of naming one of the author's.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { emptyCounts, type LogEvent } from '../../src/logs/event.js';
import { KernelLineParser } from '../../src/logs/parse-kernel.js';
import { StatsBuilder } from '../../src/observe/aggregate.js';
import { Deduper } from '../../src/observe/dedupe.js';
import { toPrometheus } from '../../src/report/prometheus.js';
import { sampleStatus } from '../../src/report/prometheus.testkit.js';
import { NOW } from '../helpers.js';
import { iso, TCP4 } from '../observe/lines.js';
import { ROOT } from '../paths.js';

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  title: string;
  type: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}

const DASHBOARD = join(ROOT, 'packaging', 'grafana', 'egress-dashboard.json');
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'inf', 'nan']);

/** The metric names a PromQL expression selects: identifiers that are not functions, keywords, label names or strings. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\$\w+/g, '');
  const out: string[] = [];
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = bare.slice(m.index! + m[0].length).trimStart();
    if (after.startsWith('(') || KEYWORDS.has(m[0].toLowerCase())) continue;
    out.push(m[0]);
  }
  return out;
}

/** Every metric family the exporter writes, for a sample with denials, a destination, a pending confirmation and drift. */
function emittedMetrics(): Set<string> {
  const p = new KernelLineParser({ now: NOW.getTime() });
  const b = new StatsBuilder();
  const d = new Deduper();
  for (const l of [iso(`EGRESS D:smtp ${TCP4}`, '2026-11-23T09:00:00Z')]) {
    const e = p.parseLine(l);
    if (e) b.add(e as LogEvent, d.isNew(e));
  }
  const text = toPrometheus(b.finish(p.counts), { status: sampleStatus({ pending: { deadline: 'x', secondsLeft: 5, watchdog: 'process 1', watchdogAlive: true } }) });
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
}

function allPanels(ps: Panel[]): Panel[] {
  return ps.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

describe('Grafana dashboard', () => {
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; templating: { list: { name: string; type: string; query: unknown }[] }; __inputs?: { name: string }[] };
  const panels = allPanels(dash.panels);
  const targets = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));

  test('the metric-name reader reads what it should', () => {
    expect(metricNames('topk(20, sum by (destination, host) (increase(egress_x_total{instance=~"$instance", a="b(c)"}[$__range])))')).toEqual(['egress_x_total']);
    expect(metricNames('max(a_seconds) * 1000 + on (rule) group_left b')).toEqual(['a_seconds', 'b']);
  });

  test('every expression names only metrics the exporter emits, and the panels cover what the issue asks', () => {
    const emitted = emittedMetrics();
    expect(targets.length).toBeGreaterThan(0);
    for (const t of targets) {
      const names = metricNames(t.expr ?? '');
      expect(names.length, `${t.panel}: ${t.expr}`).toBeGreaterThan(0);
      for (const n of names) expect(emitted, `${t.panel}: ${n} is not emitted`).toContain(n);
    }
    const used = new Set(targets.flatMap((t) => metricNames(t.expr ?? '')));
    for (const m of ['egress_denied_connections_total', 'egress_denied_destination_connections_total', 'egress_rule_packets_total', 'egress_rule_bytes_total', 'egress_policy_info', 'egress_pending_confirmation', 'egress_drift']) expect(used).toContain(m);
  });

  test('the data source is the variable ${DS_PROMETHEUS}, everywhere', () => {
    expect(dash.__inputs?.map((i) => i.name)).toContain('DS_PROMETHEUS');
    expect(dash.templating.list.find((v) => v.name === 'DS_PROMETHEUS')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const p of panels.filter((p) => p.type !== 'row')) expect(p.datasource?.uid, p.title).toBe('${DS_PROMETHEUS}');
    for (const t of targets) expect(t.datasource?.uid, t.panel).toBe('${DS_PROMETHEUS}');
    expect(JSON.stringify(dash)).not.toMatch(/"uid":\s*"(?!\$\{DS_PROMETHEUS\}|egress-firewall)[^"]*"/);
  });

  test('empty counts still emit the log-line family the dashboard reads', () => {
    expect(toPrometheus(new StatsBuilder().finish(emptyCounts()))).toContain('# TYPE egress_log_lines_total counter');
  });
});
