/**
 * The public library API and the whole pipeline in one place:
 * read → parse → check → resolve → lower (→ lint) → emit / explain.
 */
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { error, hasErrors, warning, type Diagnostic } from './diag/diagnostic.js';
import { checkLockout, parseSshConnection } from './plan/lockout.js';
import { SourceFile, SourceMap } from './diag/source.js';
import { lowerPolicy } from './ir/lower.js';
import type { Ir } from './ir/types.js';
import type { PolicyAst } from './policy/ast.js';
import { checkPolicy } from './policy/check.js';
import { lintPolicy } from './policy/lint.js';
import { parsePolicy } from './policy/parse.js';
import type { Policy } from './policy/types.js';
import { resolvePolicy } from './resolve/resolve.js';
import { systemResolver, type Resolver } from './resolve/resolver.js';
import type { HostEntry, ResolvedPolicy } from './resolve/types.js';

export interface LoadOptions {
  resolver?: Resolver;
  /** Today, for `expires` (default: now). */
  now?: Date;
  previousHosts?: HostEntry[];
  /** Do not resolve hostnames. */
  offline?: boolean;
  /** Where relative `{ file: }` sets are read from (default: the policy file's directory). */
  baseDir?: string;
  /** The caller's environment: with SSH_CONNECTION set, a policy that would cut that session is warned about. */
  env?: Record<string, string | undefined>;
}

/** Everything the front end produced; later stages are absent when an earlier one had errors. */
export interface Loaded {
  sources: SourceMap;
  diagnostics: Diagnostic[];
  ast?: PolicyAst;
  policy?: Policy;
  resolved?: ResolvedPolicy;
  ir?: Ir;
}

/** Run the front end on policy text. Never throws on bad input: problems are diagnostics. */
export async function loadPolicyText(name: string, text: string, opts: LoadOptions = {}): Promise<Loaded> {
  const sources = new SourceMap();
  const src = sources.add(new SourceFile(name, text));
  const diagnostics: Diagnostic[] = [];
  const parsed = parsePolicy(src);
  diagnostics.push(...parsed.diagnostics);
  if (!parsed.value) return { sources, diagnostics };
  const checked = checkPolicy(parsed.value, { now: opts.now ?? new Date() });
  diagnostics.push(...checked.diagnostics);
  const out: Loaded = { sources, diagnostics, ast: parsed.value };
  if (!checked.value) return out;
  out.policy = checked.value;
  const resolver = opts.resolver ?? systemResolver();
  const resolved = await resolvePolicy(checked.value, resolver, {
    sources,
    ...(opts.previousHosts ? { previousHosts: opts.previousHosts } : {}),
    ...(opts.offline ? { offline: true } : {}),
    ...(opts.baseDir ? { baseDir: opts.baseDir } : {}),
  });
  diagnostics.push(...resolved.diagnostics);
  if (hasErrors(diagnostics) || !resolved.value) return out;
  out.resolved = resolved.value;
  out.ir = lowerPolicy(resolved.value);
  diagnostics.push(...lintPolicy(checked.value, out.ir));
  const session = opts.env ? parseSshConnection(opts.env) : undefined;
  const risk = session ? checkLockout(out.ir, session, checked.value) : undefined;
  if (risk) diagnostics.push(warning('ssh-lockout', risk.message, risk.span, { hint: risk.hint }));
  return out;
}

/**
 * Read and load a policy file; an unreadable file is an `io-error` diagnostic.
 * `shownAs` is the name diagnostics print (the path as the user typed it).
 */
export async function loadPolicyFile(path: string, opts: LoadOptions = {}, shownAs = path): Promise<Loaded> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : String((e as Error).message);
    return { sources: new SourceMap(), diagnostics: [error('io-error', `cannot read ${shownAs}: ${why}`, { file: shownAs, start: 0, end: 0 })] };
  }
  return loadPolicyText(shownAs, buf.toString('utf8'), { baseDir: dirname(path), ...opts });
}

export { hasErrors } from './diag/diagnostic.js';
export type { Diagnostic, Result, DiagCode } from './diag/diagnostic.js';
export { renderText, toJson } from './diag/render.js';
export { printIr } from './ir/print.js';
export type { Ir } from './ir/types.js';
export { explainReference } from './sim/reference.js';
export { indexedEvaluator } from './sim/index.js';
export { linearEvaluator } from './sim/linear.js';
export type { Flow, Decision } from './sim/flow.js';
export { policyJsonSchema } from './policy/schema.js';
export { systemResolver, staticResolver } from './resolve/resolver.js';
export type { Resolver } from './resolve/resolver.js';
