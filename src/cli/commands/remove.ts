/** `egress remove`: take every rule of egress out (both backends). */
import { remove } from '../../kernel/lifecycle.js';
import type { Io } from '../io.js';
import { writeResult } from '../envelope.js';
import { lifecycleCtx, lifecycleFailure, needRoot, type KernelSeams } from '../kernel-flags.js';

const WHAT = { nft: 'table inet egress', iptables: 'chains EGRESS* and the OUTPUT jumps (iptables and ip6tables)' } as const;

export async function removeCommand(io: Io, flags: { json?: boolean }, seams: KernelSeams = {}): Promise<number> {
  needRoot('remove', seams);
  const ctx = lifecycleCtx(io, seams);
  try {
    const r = await remove(ctx);
    if (flags.json) writeResult(io, 'remove', { ok: true, result: { removed: r.removed } });
    else if (!r.removed.length) io.stdout('nothing of egress was live; nothing was changed\n');
    else io.stdout(`removed ${r.removed.map((b) => WHAT[b]).join(' and ')}; "egress rollback" puts it back\n`);
    return 0;
  } catch (e) {
    return lifecycleFailure(io, e, undefined, flags.json ? 'remove' : undefined);
  }
}
