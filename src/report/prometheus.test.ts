import { describe, expect, test } from 'vitest';
import { emptyCounts, type LogEvent } from '../logs/event.js';
import { KernelLineParser } from '../logs/parse-kernel.js';
import { StatsBuilder, type StatsContext } from '../observe/aggregate.js';
import { Deduper } from '../observe/dedupe.js';
import { escapeLabel, toPrometheus } from './prometheus.js';
import { sampleStatus } from './prometheus.testkit.js';
import { loadText, NOW } from '../../test/helpers.js';
import { FWD_OTHER4, FWD_TCP4, FWD_TCP6, ICMP6, iso, TCP4, UDP4 } from '../../test/observe/lines.js';

/**
 * The text exposition format's rules (prometheus/docs exposition_formats.md),
 * checked line by line: names and label names by their grammar, label values
 * only with the three escapes, HELP/TYPE at most once per family and before
 * its samples, a family's samples together, no series twice, counters named
 * `_total`, a final newline.
 */
function validate(text: string): string[] {
  const errors: string[] = [];
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
  if (!text.endsWith('\n')) errors.push('no final newline');
  const typed = new Map<string, string>();
  const helped = new Set<string>();
  const done = new Set<string>();
  const series = new Set<string>();
  let current: string | undefined;
  const enter = (name: string, n: number) => {
    if (current !== name) {
      if (current) done.add(current);
      if (done.has(name)) errors.push(`${n}: samples of ${name} are not together`);
      current = name;
    }
  };
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const n = i + 1;
      if (line.startsWith('#')) {
        const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
        if (!m) return;
        const [, kind, name, rest] = m;
        if (!NAME.test(name!)) errors.push(`${n}: bad metric name ${name}`);
        if (kind === 'TYPE') {
          if (typed.has(name!)) errors.push(`${n}: second TYPE for ${name}`);
          if (series.has(name!) || [...series].some((s) => s.startsWith(`${name}{`))) errors.push(`${n}: TYPE after samples of ${name}`);
          if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest!)) errors.push(`${n}: bad type ${rest}`);
          typed.set(name!, rest!);
        } else {
          if (helped.has(name!)) errors.push(`${n}: second HELP for ${name}`);
          if (/\\[^\\n]/.test(rest!.replace(/\\\\/g, ''))) errors.push(`${n}: bad escape in HELP`);
          helped.add(name!);
        }
        enter(name!, n);
        return;
      }
      const m = /^([^{\s]+)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
      if (!m) return void errors.push(`${n}: not a sample: ${line}`);
      const [, name, , labels, value] = m;
      if (!NAME.test(name!)) errors.push(`${n}: bad metric name ${name}`);
      if (!typed.has(name!)) errors.push(`${n}: ${name} has no TYPE`);
      if (typed.get(name!) === 'counter' && !name!.endsWith('_total')) errors.push(`${n}: counter ${name} does not end in _total`);
      if (!/^(NaN|[+-]Inf|-?\d+(\.\d+)?([eE][+-]?\d+)?)$/.test(value!)) errors.push(`${n}: bad value ${value}`);
      enter(name!, n);
      if (labels !== undefined) {
        const names: string[] = [];
        const rest = labels.replace(/([^=,]+)="((?:[^"\\]|\\[\\"n])*)"(,|$)/g, (_all, k: string) => {
          names.push(k);
          return '';
        });
        if (rest !== '') errors.push(`${n}: bad labels ${labels}`);
        for (const k of names) if (!LABEL.test(k) || k.startsWith('__')) errors.push(`${n}: bad label name ${k}`);
        if (new Set(names).size !== names.length) errors.push(`${n}: a label twice`);
      }
      const key = line.replace(/ \S+( -?\d+)?$/, '');
      if (series.has(key)) errors.push(`${n}: series twice: ${key}`);
      series.add(key);
    });
  return errors;
}

function stats(lines: string[], ctx: StatsContext = {}) {
  const p = new KernelLineParser({ now: NOW.getTime() });
  const b = new StatsBuilder();
  const d = new Deduper();
  for (const l of lines) {
    const e = p.parseLine(l);
    if (e) b.add(e as LogEvent, d.isNew(e));
  }
  return b.finish(p.counts, { users: new Map([[33, 'www-data']]), hosts: new Map([['203.0.113.9', 'dns.example.net']]), ...ctx });
}

describe('Prometheus text', () => {
  test('the validator catches what it should', () => {
    expect(validate('# TYPE a_total counter\na_total 1\n# TYPE b gauge\nb 2\na_total{x="1"} 3\n')).toEqual(['5: samples of a_total are not together']);
    expect(validate('a 1\n')).toEqual(['1: a has no TYPE']);
    expect(validate('# TYPE a counter\na{x="\\q"} 1\n')).toEqual(['2: counter a does not end in _total', '2: bad labels x="\\q"']);
  });

  test('stats export: valid exposition, the series the seed asks for', () => {
    const text = toPrometheus(
      stats([
        iso(`EGRESS D:smtp ${TCP4}`, '2026-11-23T09:00:00Z'),
        iso(`EGRESS D:smtp ${TCP4}`, '2026-11-23T09:00:01Z'),
        iso(`EGRESS P:- ${UDP4}`, '2026-11-23T09:01:00Z'),
        iso(`EGRESS P:- ${ICMP6}`, '2026-11-23T09:02:00Z'),
        'EGRESS D:smtp IN= OUT=eth0 SRC=1',
      ]),
    );
    expect(validate(text)).toEqual([]);
    expect(text).toContain('egress_denied_connections_total{rule="smtp",user="www-data",verdict="denied"} 1\n');
    expect(text).toContain('egress_denied_packets_total{rule="smtp",user="www-data",verdict="denied"} 2\n');
    expect(text).toContain('egress_denied_connections_total{rule="-",user="0",verdict="denied"} 2\n');
    expect(text).toContain('egress_denied_destination_connections_total{destination="203.0.113.9",host="dns.example.net",port="53",protocol="udp"} 1\n');
    expect(text).toContain('egress_denied_destination_connections_total{destination="2001:db8::99",host="",port="echo-request",protocol="icmp"} 1\n');
    expect(text).toContain('egress_log_lines_total{kind="malformed"} 1\n');
    expect(text).toContain(`egress_last_denied_timestamp_seconds ${Date.UTC(2026, 10, 23, 9, 2) / 1000}\n`);
  });

  test('forwarded denials: series with scope="forward" by source (or input interface); the host\'s series as before', async () => {
    const host = [iso(`EGRESS D:smtp ${TCP4}`, '2026-11-23T09:00:00Z'), iso(`EGRESS P:- ${UDP4}`, '2026-11-23T09:01:00Z')];
    const forwarded = [
      iso(`EGRESS D:registry ${FWD_TCP4}`, '2026-11-23T09:02:00Z'),
      iso(`EGRESS D:registry ${FWD_TCP4}`, '2026-11-23T09:02:01Z'),
      iso(`EGRESS P:- ${FWD_TCP6}`, '2026-11-23T09:02:02Z'),
      iso(`EGRESS U:- ${FWD_OTHER4}`, '2026-11-23T09:02:03Z'),
    ];
    const hostText = toPrometheus(stats(host));
    const l = await loadText('version: 1\nforward: { sources: { docker: { interfaces: ["br-*"] } } }\n');
    const text = toPrometheus(stats([...host, ...forwarded], { forwardSources: l.ir!.forward!.sources }));
    expect(validate(text)).toEqual([]);
    for (const line of hostText.split('\n').filter((x) => /^egress_denied_(connections|packets)_total\{/.test(x))) expect(text).toContain(`${line}\n`);
    expect(text).toContain('egress_denied_connections_total{rule="registry",scope="forward",source="docker",verdict="denied"} 1\n');
    expect(text).toContain('egress_denied_packets_total{rule="registry",scope="forward",source="docker",verdict="denied"} 2\n');
    expect(text).toContain('egress_denied_connections_total{rule="-",scope="forward",source="docker",verdict="denied"} 1\n');
    expect(text).toContain('egress_denied_connections_total{rule="(unlisted)",scope="forward",source="",verdict="denied"} 1\n');
    const bare = toPrometheus(stats(forwarded));
    expect(validate(bare)).toEqual([]);
    expect(bare).toContain('egress_denied_connections_total{interface="br-test",rule="registry",scope="forward",verdict="denied"} 1\n');
    expect(bare).toContain('egress_denied_connections_total{interface="tap-vm1",rule="(unlisted)",scope="forward",verdict="denied"} 1\n');
  });

  test('label values are escaped', () => {
    expect(escapeLabel('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const s = stats([iso(`EGRESS D:smtp ${TCP4}`)]);
    s.ruleUsers[0]!.user = 'we"ird\\user\n';
    const text = toPrometheus(s);
    expect(validate(text)).toEqual([]);
    expect(text).toContain('user="we\\"ird\\\\user\\n"');
  });

  test('nothing read: still valid, counts only', () => {
    const s = new StatsBuilder().finish(emptyCounts());
    const text = toPrometheus(s);
    expect(validate(text)).toEqual([]);
    expect(text).not.toContain('egress_denied_connections_total');
  });
});

describe('Prometheus: what status reads', () => {
  test('exact kernel counters per rule, action, family and scope; policy info; pending; drift', () => {
    const text = toPrometheus(new StatsBuilder().finish(emptyCounts()), { status: sampleStatus({ pending: { deadline: 'x', secondsLeft: 42, watchdog: 'process 9', watchdogAlive: true }, drift: true }) });
    expect(validate(text)).toEqual([]);
    expect(text).toContain('egress_rule_packets_total{action="allow",family="ipv4",rule="web",scope="host"} 10\n');
    expect(text).toContain('egress_rule_bytes_total{action="allow",family="ipv6",rule="web",scope="host"} 600\n');
    expect(text).toContain('egress_rule_packets_total{action="allow",family="ipv4",rule="web",scope="forward"} 1\n');
    expect(text).toContain('egress_rule_packets_total{action="builtin",family="ipv4",rule="loopback",scope="host"} 5\n');
    expect(text).toContain('egress_rule_packets_total{action="default",family="ipv4",rule="reject",scope="host"} 9\n');
    expect(text).toContain('egress_policy_info{backend="nft",hash="sha256:0123",mode="enforce"} 1\n');
    expect(text).toContain('egress_pending_confirmation 1\n');
    expect(text).toContain('egress_pending_confirmation_seconds_left 42\n');
    expect(text).toContain('egress_drift 1\n');
    expect(text).toContain('egress_policy_file_changed 0\n');
    const calm = toPrometheus(new StatsBuilder().finish(emptyCounts()), { status: sampleStatus() });
    expect(calm).toContain('egress_pending_confirmation 0\n');
    expect(calm).not.toContain('egress_pending_confirmation_seconds_left');
    expect(calm).toContain('egress_drift 0\n');
  });

  test('rule names with quotes, backslashes and newlines are escaped in label values', () => {
    const odd = 'we"ird\\rule\nname';
    const text = toPrometheus(new StatsBuilder().finish(emptyCounts()), { status: sampleStatus({ counters: [{ rule: odd, action: 'deny', family: 'ipv6', packets: 1, bytes: 2 }], policyHash: 'a"b' }) });
    expect(validate(text)).toEqual([]);
    expect(text).toContain('egress_rule_packets_total{action="deny",family="ipv6",rule="we\\"ird\\\\rule\\nname",scope="host"} 1\n');
    expect(text).toContain('hash="a\\"b"');
  });

  test('nothing applied: no status series', () => {
    const text = toPrometheus(new StatsBuilder().finish(emptyCounts()), { status: { stateDir: '/x', applied: false, drift: false, interrupted: false, counters: [] } });
    expect(validate(text)).toEqual([]);
    expect(text).not.toMatch(/egress_(rule|policy|pending|drift)/);
  });
});
