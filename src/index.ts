/**
 * The public library API and the whole pipeline in one place:
 * open → parse → check → resolve → lower → lint → emit (compilePolicy) / explain.
 * Every command that compiles (compile, apply, plan, refresh, lab) and the
 * benchmarks go through these functions.
 */
import { dirname } from 'node:path';
import { BACKENDS, type CompileTarget } from './backends/registry.js';
import type { Artifact, EmitOptions } from './backends/types.js';
import { error, hasErrors, warning, type Diagnostic, type Result } from './diag/diagnostic.js';
import { dnsUpstream, RESOLV_CONF, type UpstreamChoice } from './resolve/dns.js';
import { FileRefused, MAX_POLICY_BYTES, readBounded } from './diag/read-file.js';
import { errnoText } from './diag/errno.js';
import { SourceFile, SourceMap } from './diag/source.js';
import { lowerPolicy } from './ir/lower.js';
import { printIr } from './ir/print.js';
import type { Ir } from './ir/types.js';
import { lintPolicy } from './lint/lint.js';
import { lintLockout } from './lint/lockout.js';
import type { PolicyAst } from './policy/ast.js';
import { checkPolicy } from './policy/check.js';
import { parsePolicy } from './policy/parse.js';
import type { Policy } from './policy/types.js';
import { resolvePolicy } from './resolve/resolve.js';
import { systemResolver, type Resolver } from './resolve/resolver.js';
import type { HostEntry, ResolvedPolicy } from './resolve/types.js';

export interface LoadOptions {
  resolver?: Resolver;
  /** `check --strict`: a rule without a reason is an error (as with the policy's `require_reason: true`). */
  strict?: boolean;
  /** Today, for `expires` (default: now). */
  now?: Date;
  previousHosts?: HostEntry[];
  /** Do not resolve hostnames. */
  offline?: boolean;
  /** Where relative `{ file: }` sets are read from (default: the policy file's directory). */
  baseDir?: string;
  /** The caller's environment: with SSH_CONNECTION set, a policy that would cut that session is warned about. */
  env?: Record<string, string | undefined>;
  /** Told each stage as it starts (the CLI's stage line on a terminal: cli/progress.ts). */
  stage?: (what: string) => void;
}

/** Everything the front end produced; later stages are absent when an earlier one had errors. */
export interface Loaded {
  sources: SourceMap;
  diagnostics: Diagnostic[];
  ast?: PolicyAst;
  policy?: Policy;
  resolved?: ResolvedPolicy;
  ir?: Ir;
  /** With `dns.proxy` (and not offline): the servers the forwarder will ask, and where that list came from. */
  dnsUpstream?: UpstreamChoice;
}

/** Run the front end on policy text. Never throws on bad input: problems are diagnostics. */
export async function loadPolicyText(name: string, text: string, opts: LoadOptions = {}): Promise<Loaded> {
  const sources = new SourceMap();
  const src = sources.add(new SourceFile(name, text));
  const diagnostics: Diagnostic[] = [];
  const stage = opts.stage ?? (() => {});
  stage('checking the policy');
  const parsed = parsePolicy(src);
  diagnostics.push(...parsed.diagnostics);
  if (!parsed.value) return { sources, diagnostics };
  const checked = checkPolicy(parsed.value, { now: opts.now ?? new Date() });
  diagnostics.push(...checked.diagnostics);
  const out: Loaded = { sources, diagnostics, ast: parsed.value };
  if (!checked.value) return out;
  out.policy = checked.value;
  const resolver = opts.resolver ?? systemResolver();
  stage(opts.offline ? 'reading sets' : 'resolving names and reading sets');
  const resolved = await resolvePolicy(checked.value, resolver, {
    sources,
    ...(opts.previousHosts ? { previousHosts: opts.previousHosts } : {}),
    ...(opts.offline ? { offline: true } : {}),
    ...(opts.baseDir ? { baseDir: opts.baseDir } : {}),
  });
  diagnostics.push(...resolved.diagnostics);
  if (hasErrors(diagnostics) || !resolved.value) return out;
  out.resolved = resolved.value;
  stage('lowering');
  out.ir = lowerPolicy(resolved.value);
  stage('linting');
  diagnostics.push(...lintPolicy(checked.value, out.ir, opts.strict));
  if (out.ir.dns && !opts.offline) {
    stage('finding the DNS upstream servers');
    out.dnsUpstream = await dnsUpstream(checked.value.dns, resolver);
    if (out.dnsUpstream.from === 'none')
      diagnostics.push(
        warning('no-dns-upstream', `the DNS forwarder has no upstream server: "dns.upstream" is not set, and neither ${RESOLV_CONF} nor systemd-resolved names one that is not a loopback address`, checked.value.dns.spans.proxy, {
          hint: 'set "dns.upstream" to the DNS servers to ask; until then every lookup through the forwarder fails',
        }),
      );
  }
  if (opts.env) diagnostics.push(...lintLockout(out.ir, opts.env, checked.value).diagnostics);
  return out;
}

/** A policy file as read from disk: its text, and the bytes its hash is taken over. */
export interface OpenedPolicy {
  /** The name diagnostics print (the path as the user typed it). */
  shownAs: string;
  path: string;
  text: string;
  bytes: Buffer;
  /** Where its relative `{ file: }` sets are read from. */
  baseDir: string;
}

/** Read a policy file. An unreadable file is one `io-error` diagnostic, worded by `errnoText`. */
export async function openPolicy(path: string, shownAs = path): Promise<Result<OpenedPolicy>> {
  try {
    const bytes = readBounded(path, MAX_POLICY_BYTES);
    return { value: { shownAs, path, text: bytes.toString('utf8'), bytes, baseDir: dirname(path) }, diagnostics: [] };
  } catch (e) {
    const tooBig = e instanceof FileRefused && /more than/.test(e.message);
    return { diagnostics: [error('io-error', `cannot read ${shownAs}: ${errnoText(e)}`, { file: shownAs, start: 0, end: 0 }, tooBig ? { hint: 'put long address lists in a set file (sets: { NAME: { file: PATH } }), which may be much larger' } : {})] };
  }
}

/** Read and load a policy file; an unreadable file is an `io-error` diagnostic. */
export async function loadPolicyFile(path: string, opts: LoadOptions = {}, shownAs = path): Promise<Loaded> {
  opts.stage?.(`reading ${shownAs}`);
  const opened = await openPolicy(path, shownAs);
  if (!opened.value) return { sources: new SourceMap(), diagnostics: opened.diagnostics };
  return loadPolicyText(shownAs, opened.value.text, { baseDir: opened.value.baseDir, ...opts });
}

/**
 * Emit a loaded policy for one target (`ir` prints the model). The result
 * holds only the backend's diagnostics (e.g. `unsupported-selector`), and a
 * value only when there are no errors; a policy that did not load is the
 * caller's to report.
 */
export function compilePolicy(ir: Ir, target: CompileTarget, opts: EmitOptions = {}): Result<Artifact> {
  if (target === 'ir') return { value: { text: printIr(ir), lineMap: new Map() }, diagnostics: [] };
  const res = BACKENDS[target].emit(ir, opts);
  return hasErrors(res.diagnostics) || !res.value ? { diagnostics: res.diagnostics } : res;
}

export { hasErrors } from './diag/diagnostic.js';
export type { Diagnostic, Result, DiagCode } from './diag/diagnostic.js';
export { renderText, toJson } from './diag/render.js';
export { printIr } from './ir/print.js';
export { TARGETS, type CompileTarget } from './backends/registry.js';
export type { Artifact } from './backends/types.js';
export type { Ir } from './ir/types.js';
export { explainReference } from './sim/reference.js';
export { indexedEvaluator } from './sim/indexed.js';
export { linearEvaluator } from './sim/linear.js';
export type { Flow, Decision } from './sim/flow.js';
export { policyJsonSchema } from './policy/schema.js';
export { systemResolver, staticResolver } from './resolve/resolver.js';
export { dnsUpstream, type UpstreamChoice } from './resolve/dns.js';
export type { Resolver } from './resolve/resolver.js';
