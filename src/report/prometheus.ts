/**
 * Stats → Prometheus text exposition format (version 0.0.4), for the
 * node_exporter textfile collector: `# HELP` and `# TYPE` once per metric
 * family, then its samples, one per distinct label set; label values escape
 * `\`, `"` and newline. Names follow the conventions: `egress_` namespace,
 * base units, `_total` on counters.
 *
 * Counters here count what the logs read contained: when a run rereads a
 * rotated log they start lower, which Prometheus treats as a counter reset
 * (rate() handles it). Destinations are capped (`topDestinations`) to keep
 * the series count bounded.
 *
 * Forwarded denials (containers, VMs: SPEC §6) are series of the same
 * families with `scope="forward"`, by `source` (the policy's forward sources
 * they belong to, joined by ","; "" for none) or, without a policy, by
 * `interface` (the input interface), instead of `user`: the host's series
 * keep their labels.
 */
import type { Stats } from '../observe/aggregate.js';
import type { Status } from '../kernel/status.js';
import type { ChangeStat } from '../observe/changes.js';

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

type Labels = Record<string, string>;

class Exposition {
  private readonly out: string[] = [];
  family(name: string, type: 'counter' | 'gauge', help: string, samples: [Labels, number][]): void {
    if (!samples.length) return;
    this.out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    const seen = new Set<string>();
    for (const [labels, value] of samples) {
      const keys = Object.keys(labels).sort();
      const l = keys.length ? `{${keys.map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(',')}}` : '';
      if (seen.has(l)) throw new Error(`duplicate series ${name}${l}`);
      seen.add(l);
      this.out.push(`${name}${l} ${formatValue(value)}`);
    }
  }
  text(): string {
    return this.out.join('\n') + '\n';
  }
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return Number.isInteger(v) ? String(v) : v.toPrecision(6).replace(/\.?0+$/, '');
}

const verdictLabel = (v: string) => (v === 'would-deny' ? 'would_deny' : v);

export interface PrometheusOptions {
  topDestinations?: number;
  changes?: ChangeStat[];
  /** What is live (kernel/status.ts readStatus, as `egress status` reads it): the exact kernel counters and the life-cycle gauges. */
  status?: Status;
}

/** The forwarded series: per source (or input interface) and rule. */
function forwardSamples(s: Stats, value: 'connections' | 'packets'): [Labels, number][] {
  return (s.forwarded?.sources ?? []).flatMap((src) => {
    const where: Labels = src.sources ? { source: src.sources.join(',') } : { interface: src.interfaces.join(',') };
    return src.rules.map((r): [Labels, number] => [{ rule: r.rule, scope: 'forward', ...where, verdict: verdictLabel(r.verdict) }, r[value]]);
  });
}

export function toPrometheus(s: Stats, opts: PrometheusOptions = {}): string {
  const x = new Exposition();
  x.family(
    'egress_denied_connections_total',
    'counter',
    'Connection attempts egress denied (verdict="would_deny": audit mode, logged but not blocked), read from kernel log lines; retransmissions count once.',
    [...s.ruleUsers.map((r): [Labels, number] => [{ rule: r.rule, user: r.user, verdict: verdictLabel(r.verdict) }, r.connections]), ...forwardSamples(s, 'connections')],
  );
  x.family(
    'egress_denied_packets_total',
    'counter',
    'Denied packets that were logged (one per log line; rate-limited logging undercounts, the kernel counters do not).',
    [...s.ruleUsers.map((r): [Labels, number] => [{ rule: r.rule, user: r.user, verdict: verdictLabel(r.verdict) }, r.packets]), ...forwardSamples(s, 'packets')],
  );
  const top = s.destinations.slice(0, opts.topDestinations ?? 20);
  x.family(
    'egress_denied_destination_connections_total',
    'counter',
    'Denied connection attempts to the most-denied destinations (address, protocol, port or ICMP type).',
    top.map((d) => [
      {
        destination: d.dst,
        protocol: d.proto === 'other' ? String(d.protoNum) : d.proto,
        port: d.port !== undefined ? String(d.port) : d.icmp ?? '',
        host: d.host ?? '',
      },
      d.connections,
    ]),
  );
  const c = s.counts;
  x.family('egress_log_lines_total', 'counter', 'Log lines read, by what they were.', [
    [{ kind: 'event' }, c.events],
    [{ kind: 'other_rule' }, c.other],
    [{ kind: 'inbound' }, c.inbound],
    [{ kind: 'malformed' }, c.malformed],
    [{ kind: 'before_since' }, c.beforeSince],
    [{ kind: 'not_netfilter' }, Math.max(0, c.lines - c.netfilter - c.pfirewall - c.malformed)],
  ]);
  if (c.lost) x.family('egress_kmsg_records_lost_total', 'counter', 'Kernel log records overwritten before they were read.', [[{}, c.lost]]);
  if (s.last !== undefined) x.family('egress_last_denied_timestamp_seconds', 'gauge', 'When the last denied connection was logged.', [[{}, Math.floor(s.last / 1000)]]);
  const last = opts.changes?.filter((ch) => ch.before && ch.after).at(-1);
  if (last) {
    x.family('egress_policy_change_denials_per_hour', 'gauge', 'Denied connections per hour in the hour before and after the last policy change that the logs cover.', [
      [{ window: 'before' }, last.before!.perHour],
      [{ window: 'after' }, last.after!.perHour],
    ]);
    x.family('egress_policy_change_denials_jumped', 'gauge', '1 when denials at least doubled after the last policy change.', [[{}, last.jump ? 1 : 0]]);
    x.family('egress_policy_change_timestamp_seconds', 'gauge', 'When the last policy change that the logs cover happened.', [[{}, Math.floor(last.entry.time / 1000)]]);
  }
  if (opts.status) statusFamilies(x, opts.status);
  return x.text();
}

/**
 * What `egress status` reads, as metrics: the kernel's exact per-rule
 * counters (never rate-limited, never reset but by a reload), the applied
 * policy, a pending confirmation and drift. Nothing when nothing is applied.
 */
function statusFamilies(x: Exposition, st: Status): void {
  if (!st.applied) return;
  const labels = (c: Status['counters'][number]): Labels => ({ rule: c.rule, action: c.action, family: c.family ?? '', scope: c.scope ?? 'host' });
  // Two counters of one rule, family and scope (iptables lists a builtin per family; nft one for both): summed, one series.
  const merged = new Map<string, [Labels, number, number]>();
  for (const c of st.counters) {
    const l = labels(c);
    const k = JSON.stringify(l);
    const m = merged.get(k);
    if (m) (m[1] += c.packets), (m[2] += c.bytes);
    else merged.set(k, [l, c.packets, c.bytes]);
  }
  x.family('egress_rule_packets_total', 'counter', 'Packets each rule of the live ruleset matched, from the kernel\'s own counters (exact; they restart when the ruleset is reloaded).', [...merged.values()].map(([l, p]) => [l, p]));
  x.family('egress_rule_bytes_total', 'counter', 'Bytes each rule of the live ruleset matched, from the kernel\'s own counters.', [...merged.values()].map(([l, , b]) => [l, b]));
  x.family('egress_policy_info', 'gauge', 'The applied policy: its hash, mode and backend (always 1).', [[{ hash: st.policyHash ?? '', mode: st.mode ?? '', backend: st.backend ?? '' }, 1]]);
  if (st.appliedAt) x.family('egress_policy_applied_timestamp_seconds', 'gauge', 'When the applied policy was applied.', [[{}, Math.floor(Date.parse(st.appliedAt) / 1000)]]);
  x.family('egress_pending_confirmation', 'gauge', '1 while an apply waits for "egress confirm" (it rolls back at its deadline).', [[{}, st.pending ? 1 : 0]]);
  if (st.pending) x.family('egress_pending_confirmation_seconds_left', 'gauge', 'Seconds until an unconfirmed apply rolls back.', [[{}, st.pending.secondsLeft]]);
  x.family('egress_drift', 'gauge', '1 when the live ruleset differs from what egress applied (changed outside egress, or an interrupted command).', [[{}, st.drift || st.interrupted ? 1 : 0]]);
  if (st.policyOnDisk) x.family('egress_policy_file_changed', 'gauge', '1 when the policy file on disk differs from what is applied (or is gone).', [[{}, st.policyOnDisk.state === 'same' ? 0 : 1]]);
}
