/** What several commands do the same way: load a policy, print its diagnostics. */
import { resolve as resolvePath } from 'node:path';
import { hasErrors, type Diagnostic } from '../diag/diagnostic.js';
import { renderText, toJson } from '../diag/render.js';
import { loadPolicyFile, type LoadOptions, type Loaded } from '../index.js';
import type { Io } from './io.js';

export interface PolicyFlags {
  json?: boolean;
  silence?: string[];
  offline?: boolean;
}

export function silenced(ds: Diagnostic[], codes: string[] | undefined): Diagnostic[] {
  if (!codes?.length) return ds;
  return ds.filter((d) => d.severity === 'error' || !codes.includes(d.code));
}

/** Load a policy; print its diagnostics to stderr as text (unless --json, where the caller embeds them). */
export async function load(io: Io, file: string, flags: PolicyFlags, opts: LoadOptions = {}): Promise<Loaded> {
  const path = file === '-' ? file : resolvePath(io.cwd, file);
  const seams = { ...(io.resolver ? { resolver: io.resolver } : {}), ...(io.now ? { now: io.now } : {}), ...(io.stage ? { stage: io.stage } : {}), env: io.env };
  const loaded = await loadPolicyFile(path, { ...seams, ...opts, ...(flags.offline ? { offline: true } : {}) }, file);
  loaded.diagnostics = silenced(loaded.diagnostics, flags.silence);
  if (!flags.json && loaded.diagnostics.length) io.stderr(renderText(loaded.sources, loaded.diagnostics));
  return loaded;
}

export function diagnosticsJson(l: Loaded) {
  return toJson(l.sources, l.diagnostics);
}

export function failed(l: Loaded): boolean {
  return hasErrors(l.diagnostics) || !l.ir;
}
