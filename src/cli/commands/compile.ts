/** `egress compile POLICY --target T [--host ADDR]`: print the ruleset for one target. */
import { renderText, toJson } from '../../diag/render.js';
import { compilePolicy, TARGETS, type CompileTarget } from '../../index.js';
import { UsageError, type Io } from '../io.js';
import { writeResult } from '../envelope.js';
import { failed, load, silenced, type PolicyFlags } from '../shared.js';
import { compiling, stagesOn, withStages, type StageSeams } from '../progress.js';

export interface CompileFlags extends PolicyFlags {
  target: string;
  host?: string;
  /** No stage lines on standard error. */
  quiet?: boolean;
}

export function compileCommand(io: Io, file: string, flags: CompileFlags, seams: StageSeams = {}): Promise<number> {
  return withStages(io, stagesOn(io, flags.quiet), seams, (io) => compile(io, file, flags));
}

async function compile(io: Io, file: string, flags: CompileFlags): Promise<number> {
  if (!(TARGETS as readonly string[]).includes(flags.target))
    throw new UsageError(`unknown target "${flags.target}" (targets: ${TARGETS.join(', ')})`);
  const target = flags.target as CompileTarget;
  if ((target === 'wince' || target === 'wince-c') && !flags.host) throw new UsageError(`target "${target}" needs --host ADDR (the private host the rules are for)`);
  const l = await load(io, file, flags);
  if (failed(l)) {
    if (flags.json) writeResult(io, 'compile', { ok: false, result: null, diagnostics: toJson(l.sources, l.diagnostics) });
    return 1;
  }
  io.stage?.(compiling(l.ir!, target));
  const res = compilePolicy(l.ir!, target, flags.host ? { host: flags.host } : {});
  const found = silenced(res.diagnostics, flags.silence);
  const diagnostics = [...l.diagnostics, ...found];
  if (!flags.json && found.length) io.stderr(renderText(l.sources, found));
  if (flags.json) writeResult(io, 'compile', { ok: !!res.value, result: res.value ? { target, text: res.value.text } : null, diagnostics: toJson(l.sources, diagnostics) });
  else if (res.value) io.stdout(res.value.text);
  return res.value ? 0 : 1;
}
