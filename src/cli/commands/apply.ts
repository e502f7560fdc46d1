/**
 * `egress apply POLICY [--backend nft|iptables] [--confirm SECONDS] [--force]`,
 * and what the other life-cycle commands share: loading a policy into a
 * `Desired`, the kernel context, and kernel errors mapped to the policy.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';
import { BACKENDS } from '../../backends/registry.js';
import { error, hasErrors, type Diagnostic } from '../../diag/diagnostic.js';
import { locate, renderText, toJson } from '../../diag/render.js';
import { SourceMap } from '../../diag/source.js';
import { loadPolicyText, type Loaded } from '../../index.js';
import { backendInstalled } from '../../kernel/backend.js';
import { selfCommand, type SelfCommand } from '../../kernel/confirm.js';
import { realExecer, type Execer } from '../../kernel/exec.js';
import { LifecycleError, apply, type Ctx, type Desired } from '../../kernel/lifecycle.js';
import { LockBusyError } from '../../kernel/lock.js';
import type { LoadFailure } from '../../kernel/nft.js';
import { readState, sha256, stateDirOf, StateError, whoAmI } from '../../kernel/state.js';
import { KernelError } from '../../kernel/where.js';
import { checkLockout, parseSshConnection } from '../../plan/lockout.js';
import { planSize } from '../../plan/diff.js';
import { planJson, renderPlanText } from '../../plan/render.js';
import type { LinuxBackend } from '../../plan/types.js';
import type { HostEntry } from '../../resolve/types.js';
import { CommandError, UsageError, type Io } from '../io.js';
import { silenced, writeJson, type PolicyFlags } from '../shared.js';

/** Seams of the life-cycle commands (tests pass their own). */
export interface KernelSeams {
  execer?: Execer;
  /** Run kernel commands in this network namespace (tests). */
  netns?: string;
  self?: SelfCommand;
  uid?: number;
}

export function lifecycleCtx(io: Io, seams: KernelSeams = {}): Ctx {
  return {
    w: { x: seams.execer ?? realExecer(), ...(seams.netns ? { netns: seams.netns } : {}) },
    stateDir: stateDirOf(io.env),
    env: io.env,
    now: () => new Date(),
    who: whoAmI(io.env),
    note: (line) => io.stderr(line + '\n'),
    self: seams.self ?? selfCommand(),
  };
}

export function needRoot(cmd: string, seams: KernelSeams = {}): void {
  const uid = seams.uid ?? process.getuid?.();
  if (uid !== undefined && uid !== 0) throw new CommandError(`${cmd} needs root: it reads or changes the firewall and ${'/var/lib/egress'}; run it with sudo`);
}

export function parseBackend(v: string | undefined): LinuxBackend | undefined {
  if (v === undefined) return undefined;
  if (v !== 'nft' && v !== 'iptables') throw new UsageError(`--backend must be nft or iptables, not ${JSON.stringify(v)}`);
  return v;
}

/** The backend to use: the flag, else what is applied now, else nft when installed. */
export function chooseBackend(flag: LinuxBackend | undefined, stateDir: string): LinuxBackend {
  if (flag) return flag;
  try {
    const live = readState(stateDir, 'live');
    if (live) return live.backend;
  } catch {
    /* fall through */
  }
  return backendInstalled('nft') || !backendInstalled('iptables') ? 'nft' : 'iptables';
}

export interface LoadedDesired {
  loaded: Loaded;
  desired?: Desired;
  diagnostics: Diagnostic[];
}

/**
 * Read, check, resolve and compile a policy for a Linux backend. Hostnames
 * that fail to resolve keep the addresses recorded at the last apply or
 * refresh. Diagnostics are printed unless `--json`.
 */
export async function loadDesired(io: Io, file: string, backend: LinuxBackend, flags: PolicyFlags, stateDir: string): Promise<LoadedDesired> {
  const path = resolvePath(io.cwd, file);
  let text: string;
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
    text = bytes.toString('utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const d = error('io-error', `cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`, { file, start: 0, end: 0 });
    if (!flags.json) io.stderr(`${file}: error: ${d.message}\n`);
    return { loaded: { sources: new SourceMap(), diagnostics: [d] }, diagnostics: [d] };
  }
  let previousHosts: HostEntry[] | undefined;
  try {
    previousHosts = readState(stateDir, 'live')?.hosts;
  } catch (e) {
    if (e instanceof StateError) io.stderr(`egress: warning: ${e.message}\n`);
  }
  const loaded = await loadPolicyText(file, text, {
    baseDir: dirname(path),
    ...(io.resolver ? { resolver: io.resolver } : {}),
    ...(io.now ? { now: io.now } : {}),
    ...(previousHosts ? { previousHosts } : {}),
  });
  loaded.diagnostics = silenced(loaded.diagnostics, flags.silence);
  const diagnostics = [...loaded.diagnostics];
  if (!hasErrors(diagnostics) && loaded.ir) {
    const res = BACKENDS[backend]!.emit(loaded.ir);
    diagnostics.push(...res.diagnostics);
    if (res.value && !hasErrors(res.diagnostics)) {
      const desired: Desired = { backend, ir: loaded.ir, artifact: res.value, policyFile: path, policyText: text, policyHash: sha256(bytes) };
      if (!flags.json && diagnostics.length) io.stderr(renderText(loaded.sources, diagnostics));
      return { loaded, desired, diagnostics };
    }
  }
  if (!flags.json && diagnostics.length) io.stderr(renderText(loaded.sources, diagnostics));
  return { loaded, diagnostics };
}

/** A kernel refusal as diagnostics: the policy rule the failing line came from, with the loader's own text as a note. */
export function kernelDiagnostics(f: LoadFailure): Diagnostic[] {
  const note = { message: `${f.output.split('\n').slice(0, 6).join('\n  ')}` };
  if (!f.rules.length) return [error('kernel-rejected', f.message, undefined, { notes: [note] })];
  return f.rules.map(({ rule, line }) =>
    error('kernel-rejected', `rule "${rule.name}" was rejected by the kernel: ${f.message}`, rule.span, { notes: [note], ...(line ? { hint: `generated line: ${line}` } : {}) }),
  );
}

/** Map the life-cycle's typed failures to the CLI's. */
export function lifecycleFailure(io: Io, e: unknown, loaded: Loaded | undefined, json: boolean, extra: Record<string, unknown> = {}): number {
  if (e instanceof LifecycleError && e.failure) {
    const ds = kernelDiagnostics(e.failure);
    if (json) writeJson(io, { ok: false, ...extra, error: e.message, diagnostics: loaded ? toJson(loaded.sources, ds) : ds });
    else io.stderr((loaded ? renderText(loaded.sources, ds) : e.message + '\n') + 'egress: nothing was changed\n');
    return 1;
  }
  if (e instanceof LifecycleError || e instanceof StateError || e instanceof LockBusyError || e instanceof KernelError) {
    if (json) writeJson(io, { ok: false, ...extra, error: e.message });
    else io.stderr(`egress: error: ${e.message}\n`);
    return 1;
  }
  throw e;
}

export interface ApplyFlags extends PolicyFlags {
  backend?: string;
  confirm?: string;
  force?: boolean;
}

export function parseSeconds(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 5 || Number(v) > 86_400) throw new UsageError(`--confirm takes whole seconds from 5 to 86400, not ${JSON.stringify(v)}`);
  return Number(v);
}

export async function applyCommand(io: Io, file: string, flags: ApplyFlags, seams: KernelSeams = {}): Promise<number> {
  const confirmSeconds = parseSeconds(flags.confirm);
  const flag = parseBackend(flags.backend);
  needRoot('apply', seams);
  const ctx = lifecycleCtx(io, seams);
  const backend = chooseBackend(flag, ctx.stateDir);
  const json = !!flags.json;
  const { loaded, desired, diagnostics } = await loadDesired(io, file, backend, flags, ctx.stateDir);
  if (!desired) {
    if (json) writeJson(io, { ok: false, file, diagnostics: toJson(loaded.sources, diagnostics) });
    else io.stderr(`${file}: invalid; nothing was changed\n`);
    return 1;
  }
  const session = parseSshConnection(io.env);
  const risk = session ? checkLockout(desired.ir, session, loaded.policy) : undefined;
  if (risk && !flags.force) {
    // Shown like a diagnostic; not one in --json, where it has its own field (it is about this session, not the file).
    const d = error('kernel-rejected', risk.message, risk.span, { hint: risk.hint });
    const at = risk.span ? locate(loaded.sources, risk.span) : undefined;
    if (json)
      writeJson(io, { ok: false, file, lockout: { message: risk.message, hint: risk.hint, peer: risk.session.peer, peerPort: risk.session.peerPort, ...(at ? { line: at.line, col: at.col } : {}) } });
    else io.stderr(renderText(loaded.sources, [d]) + 'egress: refused to apply (you are connected over SSH); nothing was changed\n');
    return 1;
  }
  if (risk) io.stderr(`egress: warning: ${risk.message} (applying anyway: --force)\n`);
  try {
    const r = await apply(ctx, desired, { ...(confirmSeconds !== undefined ? { confirmSeconds } : {}), ...(flags.force ? { force: true } : {}) });
    for (const w of r.warnings) io.stderr(`egress: warning: ${w}\n`);
    if (json) {
      writeJson(io, { ok: true, file, backend, mode: desired.ir.mode, policyHash: desired.policyHash, plan: planJson(r.plan), pending: r.pending ?? null, warnings: r.warnings, diagnostics: toJson(loaded.sources, diagnostics) });
      return 0;
    }
    const n = planSize(r.plan);
    io.stdout(renderPlanText(r.plan).replace(/\n\d+ changes? pending\n$/, '\n'));
    io.stdout(`applied ${file} with ${backend} (${desired.ir.mode}, default ${desired.ir.default}): ${n} change${n === 1 ? '' : 's'}\n`);
    if (r.pending)
      io.stdout(
        `waiting for confirmation until ${r.pending.deadline} (${confirmSeconds} s): run "egress confirm" to keep it; otherwise the previous ruleset is restored (watchdog: ${r.pending.watchdog}), even if this shell is gone\n`,
      );
    return 0;
  } catch (e) {
    return lifecycleFailure(io, e, loaded, json, { file });
  }
}
