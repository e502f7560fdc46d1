import { renderText, toJson } from '../../diag/render.js';
import { printIr } from '../../ir/print.js';
import { BACKENDS, TARGETS, type CompileTarget } from '../../backends/registry.js';
import { UsageError, type Io } from '../io.js';
import { failed, load, writeJson, type PolicyFlags } from '../shared.js';

export interface CompileFlags extends PolicyFlags {
  target: string;
  host?: string;
}

export async function compileCommand(io: Io, file: string, flags: CompileFlags): Promise<number> {
  if (!(TARGETS as readonly string[]).includes(flags.target))
    throw new UsageError(`unknown target "${flags.target}" (targets: ${TARGETS.join(', ')})`);
  const target = flags.target as CompileTarget;
  const backend = target === 'ir' ? undefined : BACKENDS[target];
  if (target !== 'ir' && !backend) throw new UsageError(`target "${target}" is not built yet in this version`);
  if ((target === 'wince' || target === 'wince-c') && !flags.host) throw new UsageError(`target "${target}" needs --host ADDR (the private host the rules are for)`);
  const l = await load(io, file, flags);
  if (failed(l)) {
    if (flags.json) writeJson(io, { ok: false, target, diagnostics: toJson(l.sources, l.diagnostics) });
    return 1;
  }
  if (!backend) {
    const text = printIr(l.ir!);
    if (flags.json) writeJson(io, { ok: true, target, text, diagnostics: toJson(l.sources, l.diagnostics) });
    else io.stdout(text);
    return 0;
  }
  const res = backend.emit(l.ir!, flags.host ? { host: flags.host } : {});
  const diagnostics = [...l.diagnostics, ...res.diagnostics];
  if (!flags.json && res.diagnostics.length) io.stderr(renderText(l.sources, res.diagnostics));
  const ok = !!res.value && !res.diagnostics.some((d) => d.severity === 'error');
  if (flags.json) writeJson(io, { ok, target, ...(ok ? { text: res.value!.text } : {}), diagnostics: toJson(l.sources, diagnostics) });
  else if (ok) io.stdout(res.value!.text);
  return ok ? 0 : 1;
}
