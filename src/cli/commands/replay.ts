/**
 * `egress replay POLICY [LOG…]`: what this (candidate) policy would have
 * denied over the recorded traffic, shown as `stats` shows it, plus what it
 * would now admit and by which rules. `--check` exits 1 when it would deny
 * anything: the gate before switching audit to enforce.
 */
import { resolve as resolvePath } from 'node:path';
import { writeFileAtomic } from '../../kernel/atomic.js';
import { Deduper } from '../../observe/dedupe.js';
import { LogReader } from '../../logs/read.js';
import { NameIndex } from '../../observe/names.js';
import { Replayer } from '../../observe/replay.js';
import { toPrometheus } from '../../report/prometheus.js';
import { replayJson, replayText } from '../../report/replay.js';
import { UsageError, type Io } from '../io.js';
import { contextOf, progressOf, readDnsNames, readOptionsOf, runReader, sayPrefixHint, sourcesOf, type ObserveSeams, type SourceFlags } from '../log-flags.js';
import { envelopeText, writeResult } from '../envelope.js';
import { diagnosticsJson, failed, load, type PolicyFlags } from '../shared.js';

export interface ReplayFlags extends SourceFlags, PolicyFlags {
  prometheus?: boolean;
  output?: string;
  top?: string;
  check?: boolean;
}

export async function replayCommand(io: Io, file: string, logs: string[], flags: ReplayFlags, seams: ObserveSeams = {}): Promise<number> {
  if (flags.follow) throw new UsageError('replay reads recorded logs; --follow is for "egress stats"');
  if (flags.json && flags.prometheus) throw new UsageError('give --json or --prometheus, not both');
  const top = flags.top === undefined ? 10 : Number(flags.top);
  if (!Number.isInteger(top) || top < 1) throw new UsageError('--top must be a whole number of at least 1');
  const loaded = await load(io, file, flags);
  if (failed(loaded)) {
    if (flags.json) writeResult(io, 'replay', { ok: false, result: null, diagnostics: diagnosticsJson(loaded) });
    return 1;
  }
  const sources = await sourcesOf(io, logs, flags, seams);
  // Every LOG line with an egress tag (whatever prefix the old policy had), or the --prefix lines.
  const opts = readOptionsOf(io, flags, seams, flags.prefix);
  const { ctx, accounts } = await contextOf(io, loaded);
  // With dns.proxy, a connection to an address the forwarder had just answered for a name is decided as the candidate's name rules would (docs/observe.md).
  const ir = loaded.ir!;
  const answers = new NameIndex(ir.dns ?? { graceSec: 60, minLifetimeSec: 10 });
  const dnsCounts = ir.dns ? await readDnsNames(io, flags, undefined, (r) => answers.add(r)) : undefined;
  const replayer = new Replayer(ir, accounts, dnsCounts ? answers : undefined);
  const dedupe = new Deduper();
  const reader = new LogReader(sources, opts, (e) => replayer.add(e, dedupe.isNew(e)));
  const progress = progressOf(io, flags, seams, sources, () => ({ bytes: reader.bytesRead, lines: reader.counts.lines }));
  try {
    await runReader(reader.run());
  } finally {
    progress.stop();
  }
  sayPrefixHint(io, reader.counts, reader.otherPrefixes(), flags);
  const { stats, summary } = replayer.finish(reader.counts, ctx, Math.max(top, 20));
  const mode = loaded.ir!.mode;
  let text: string;
  if (flags.prometheus) text = toPrometheus(stats, { topDestinations: top });
  else if (flags.json) text = envelopeText('replay', { ok: true, result: replayJson(file, mode, summary, stats, top), diagnostics: diagnosticsJson(loaded) });
  else text = replayText(file, mode, summary, stats, top);
  if (flags.output) writeFileAtomic(resolvePath(io.cwd, flags.output), text, 0o644);
  else io.stdout(text);
  return flags.check && summary.denied > 0 ? 1 : 0;
}
