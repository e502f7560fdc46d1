/** `egress status [--json]`: what is live, from the state directory and the kernel's counters. */
import { readStatus } from '../../kernel/status.js';
import type { Io } from '../io.js';
import { writeJson } from '../shared.js';
import { table } from '../../report/table.js';
import { lifecycleCtx, lifecycleFailure, needRoot, type KernelSeams } from '../kernel-flags.js';

export async function statusCommand(io: Io, flags: { json?: boolean }, seams: KernelSeams = {}): Promise<number> {
  needRoot('status', seams);
  const ctx = lifecycleCtx(io, seams);
  try {
    const s = await readStatus(ctx.w, ctx.stateDir, ctx.now());
    if (flags.json) {
      writeJson(io, { ok: true, active: s.applied, ...s });
      return 0;
    }
    const out: string[] = [];
    if (!s.applied) out.push(`status:   inactive: nothing of egress is applied (state: ${s.stateDir})`);
    else {
      out.push('status:   active');
      out.push(`mode:     ${s.mode} (default ${s.default}), backend ${s.backend}`);
      out.push(`policy:   ${s.policyFile} (${s.policyHash})`);
      out.push(`applied:  ${s.appliedAt} by ${s.appliedBy!.user} (uid ${s.appliedBy!.uid})`);
      if (s.pending)
        out.push(
          `pending:  NOT CONFIRMED: rolls back at ${s.pending.deadline} (${s.pending.secondsLeft} s left) unless "egress confirm" runs; watchdog ${s.pending.watchdog}${s.pending.watchdogAlive ? '' : ' (GONE: the next egress command rolls back)'}`,
        );
      else out.push('pending:  none (confirmed)');
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
    }
    if (s.interruptedBy) {
      const i = s.interruptedBy;
      const what =
        i.kernel === 'new'
          ? `it had already loaded its ruleset, which is live; the next egress command (apply, rollback, remove, confirm, refresh) records it`
          : i.kernel === 'old'
            ? `it had not changed the kernel; the ruleset from before it is live, and the next egress command drops its record`
            : `the live ruleset is neither the one from before it nor the one it was loading (changed meanwhile); the next egress command restores the one from before it`;
      out.push(`warning:  egress ${i.action} (pid ${i.pid}, started ${i.startedAt}) was cut off: ${what}`);
    } else if (s.interrupted) out.push('warning:  an interrupted egress command left an intent record; the next apply/rollback/remove settles it');
    for (const l of s.forward?.lines ?? []) out.push(l.replace(/^(warning|info): /, (_, k: string) => `${k}:`.padEnd(10)));
    if (s.counters.length) {
      const forwarded = s.counters.some((c) => c.scope === 'forward');
      out.push('');
      out.push(
        table(
          forwarded ? ['rule', 'action', 'scope', 'family', 'packets', 'bytes'] : ['rule', 'action', 'family', 'packets', 'bytes'],
          s.counters.map((c) => [c.rule, c.action, ...(forwarded ? [c.scope ?? 'host'] : []), c.family ?? '', String(c.packets), String(c.bytes)]),
        ).trimEnd(),
      );
    }
    io.stdout(out.join('\n') + '\n');
    return 0;
  } catch (e) {
    return lifecycleFailure(io, e, undefined, !!flags.json);
  }
}
