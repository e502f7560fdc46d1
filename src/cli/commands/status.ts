/** `egress status [--json]`: what is live, from the state directory and the kernel's counters. */
import { readStatus, type RuleView, type Status } from '../../kernel/status.js';
import type { Io } from '../io.js';
import { writeResult } from '../envelope.js';
import { stagesOn, withStages } from '../progress.js';
import { table } from '../../report/table.js';
import { isoText as iso } from '../../logs/since.js';
import { lifecycleCtx, lifecycleFailure, needRoot, type KernelSeams } from '../kernel-flags.js';

/** `quiet`: the first line alone (active or inactive) and no stage lines. */
export function statusCommand(io: Io, flags: { json?: boolean; quiet?: boolean }, seams: KernelSeams = {}): Promise<number> {
  return withStages(io, stagesOn(io, flags.quiet), seams, (io) => showStatus(io, flags, seams));
}

async function showStatus(io: Io, flags: { json?: boolean; quiet?: boolean }, seams: KernelSeams): Promise<number> {
  needRoot('status', seams);
  const ctx = lifecycleCtx(io, seams);
  try {
    const s = await readStatus(ctx.w, ctx.stateDir, io.now ?? ctx.now(), { env: io.env, ...(seams.kernel ? { kernel: seams.kernel } : {}), ...(io.stage ? { stage: io.stage } : {}) });
    if (flags.json) {
      writeResult(io, 'status', { ok: true, result: { active: s.applied, ...s } });
      return 0;
    }
    const out: string[] = [];
    if (!s.applied) out.push(`status:   inactive: nothing of egress is applied (state: ${s.stateDir})`);
    else {
      out.push('status:   active');
      out.push(`mode:     ${s.mode} (default ${s.default}), backend ${s.backend}`);
      out.push(`policy:   ${s.policyFile} (${s.policyHash})`);
      const disk = s.policyOnDisk;
      if (disk?.state === 'changed') out.push(`warning:  ${s.policyFile} changed since it was applied (now ${disk.hash}): "egress plan" shows what applying it would change`);
      else if (disk?.state === 'missing') out.push(`warning:  ${s.policyFile} is gone (what is applied is kept in the state directory)`);
      else if (disk?.state === 'unreadable') out.push(`warning:  ${s.policyFile} cannot be read (${disk.why}): not compared with what is applied`);
      out.push(`applied:  ${iso(s.appliedAt)} by ${s.appliedBy!.user} (uid ${s.appliedBy!.uid})`);
      if (s.pending)
        out.push(
          `pending:  NOT CONFIRMED: rolls back at ${iso(s.pending.deadline)} (${s.pending.secondsLeft} s left) unless "egress confirm" runs; watchdog ${s.pending.watchdog}${s.pending.watchdogAlive ? '' : ' (GONE: the next egress command rolls back)'}`,
        );
      else out.push('pending:  none (confirmed)');
      if (s.log) out.push(`logging:  ${logLine(s.log)}`);
      if (s.persistence) out.push(`boot:     ${bootLine(s.persistence)}`);
      if (s.lastAutoRollback) {
        const a = s.lastAutoRollback;
        out.push(`rollback: automatic at ${iso(a.time)}${a.message ? ` (${a.message})` : ''}: restored ${a.restored.policyFile ? `${a.restored.policyFile} (${a.restored.policyHash})` : 'nothing of egress (none was live before)'}`);
      }
      for (const n of s.names ?? []) out.push(`name:     ${n.name} ${[...n.ipv4, ...n.ipv6].join(', ') || '(no address: nothing admitted)'}${n.status === 'ok' ? '' : ` (${n.status === 'stale' ? 'stale: the last lookup failed, the last known addresses are kept' : 'never resolved'})`}`);
      if (s.refresh || s.names?.length) out.push(`refresh:  ${refreshLine(s.refresh)}`);
      if (s.dns)
        out.push(
          `dns:      forwarder ${s.dns.running ? `running (pid ${s.dns.pid})` : 'NOT RUNNING: lookups fail until it is restarted (by systemd, else by the next egress command)'}, ${s.dns.names} name${s.dns.names === 1 ? '' : 's'}, upstream ${s.dns.upstream.join(', ')}; learned ${s.dns.learned.map((l) => `${l.set} ${l.elements}`).join(', ') || 'nothing'}`,
        );
      if (s.dns?.counters) {
        const c = s.dns.counters;
        out.push(`dns:      ${c.queries} queries, ${c.answered} answered, ${c.refused} refused, ${c.servfail} SERVFAIL (${c.holdTimeouts} hold timeouts), ${c.malformed} malformed, ${c.published} addresses published; ${c.bypass} packets bypassing the forwarder rejected; ${c.fastAnswers} answered without holding (${c.refreshFailures} background refreshes failed)`);
      }
      for (const e of s.expires ?? [])
        out.push(
          e.past
            ? `expired:  rule ${e.rule} (expires ${e.expires}) stopped admitting at ${e.ends}; it stays in the ruleset, matching nothing, until the next apply leaves it out`
            : `expires:  rule ${e.rule} stops admitting at ${e.ends} (${e.daysLeft} day${e.daysLeft === 1 ? '' : 's'} left)`,
        );
      // An interrupted command explains a difference better than "changed outside egress?" (said below instead).
      if (s.drift && !s.interruptedBy) out.push('warning:  the live ruleset differs from what egress applied (changed outside egress?): see "egress plan"');
      if (s.compared?.what === 'structure') out.push(`note:     compared with what egress applied without the ${s.compared.setElements} set elements (listing them takes seconds): "egress plan" compares them too`);
    }
    if (s.interruptedBy) {
      const i = s.interruptedBy;
      const what =
        i.kernel === 'new'
          ? `it had already loaded its ruleset, which is live; the next egress command (apply, rollback, remove, confirm, refresh) records it`
          : i.kernel === 'old'
            ? `it had not changed the kernel; the ruleset from before it is live, and the next egress command drops its record`
            : `the live ruleset is neither the one from before it nor the one it was loading (changed meanwhile); the next egress command restores the one from before it`;
      out.push(`warning:  egress ${i.action} (pid ${i.pid}, started ${iso(i.startedAt)}) was cut off: ${what}`);
    } else if (s.interrupted) out.push('warning:  an interrupted egress command left an intent record; the next apply/rollback/remove settles it');
    for (const l of s.forward?.lines ?? []) out.push(l.replace(/^(warning|info): /, (_, k: string) => `${k}:`.padEnd(10)));
    const fit = io.columns ? { width: io.columns } : {};
    if (s.rules?.length) {
      out.push('');
      out.push(
        table(
          ['rule', 'action', 'scope', 'to', 'ports', 'users', 'logs', 'packets', 'bytes'],
          s.rules.map((r) => [r.rule, r.action, r.scope.join('+'), admits(r), [...r.ports, ...r.icmp.map((i) => `icmp ${i}`)].join(' ') || 'any', [...r.users, ...r.groups.map((g) => `group ${g}`)].join(' ') || 'any', r.logs ? 'yes' : 'no', String(r.packets), String(r.bytes)]),
          fit,
        ).trimEnd(),
      );
    }
    if (s.counters.length) {
      const forwarded = s.counters.some((c) => c.scope === 'forward');
      out.push('');
      out.push(
        table(
          forwarded ? ['rule', 'action', 'scope', 'family', 'packets', 'bytes'] : ['rule', 'action', 'family', 'packets', 'bytes'],
          s.counters.map((c) => [c.rule, c.action, ...(forwarded ? [c.scope ?? 'host'] : []), c.family ?? '', String(c.packets), String(c.bytes)]),
          fit,
        ).trimEnd(),
      );
    }
    io.stdout((flags.quiet ? out.slice(0, 1) : out).join('\n') + '\n');
    return 0;
  } catch (e) {
    return lifecycleFailure(io, e, undefined, flags.json ? 'status' : undefined);
  }
}

function logLine(l: NonNullable<Status['log']>): string {
  const what = l.rules.length ? l.rules.map((r) => (r.rule === '-' ? `the default ("${r.prefix}")` : `${r.rule} ("${r.prefix}")`)).join(', ') : 'nothing';
  return `prefix "${l.prefix}", ${l.rate ? `at most ${l.rate}` : 'no rate limit'}, uid ${l.uid ? 'on' : 'off'}; logs ${what}`;
}

function bootLine(p: NonNullable<Status['persistence']>): string {
  if (!p.enabled) return 'not restored at boot ("egress persist" is off): a reboot leaves no egress rules';
  const units = p.units === 'package' ? `the package's units (${p.unit})` : p.units === 'persist' ? `units "egress persist" wrote (${p.unit})` : p.units === 'other' ? `a unit egress did not write (${p.unit})` : undefined;
  return `restored at boot (the last confirmed policy) by ${[units, p.ifupdownHook ? `the ifupdown hook ${p.ifupdownHook}` : undefined].filter(Boolean).join(' and ')}`;
}

function refreshLine(r: Status['refresh']): string {
  const last = r?.last ? `last ${iso(r.last.time)} (${r.last.outcome}${r.last.message ? `: ${r.last.message}` : ''})` : 'never refreshed since applied history began';
  const w = r?.watch;
  const next = w?.running ? `next ${w.next} (refresh --watch, pid ${w.pid}${w.names?.length ? `: ${w.names.join(', ')}` : ''})` : `no "refresh --watch" running${w ? ` (pid ${w.pid} is gone)` : ''}: addresses change only when "egress refresh" runs`;
  return `${last}; ${next}`;
}

/** What a rule's `to` names, in a few words. */
export function admits(r: RuleView): string {
  if (r.to.any) return 'anywhere';
  const k = r.kernelAddresses;
  const parts = [
    ...r.to.names,
    ...r.to.sets.map((x) => `${x.name}${x.elements !== undefined ? ` (${x.elements})` : x.file ? ` (file ${x.file})` : ''}`),
    ...(r.to.addresses ? [`${r.to.addresses} address${r.to.addresses === 1 ? '' : 'es'}`] : []),
  ];
  const kernel = k ? ` = ${[k.ipv4 !== undefined ? `${k.ipv4} ipv4` : '', k.ipv6 !== undefined ? `${k.ipv6} ipv6` : ''].filter(Boolean).join(' + ')} in the kernel` : '';
  return parts.join(', ') + kernel;
}
