/**
 * What the life-cycle commands (apply, plan, refresh, confirm, rollback,
 * remove, status, persist) share: their seams and flags, the kernel context,
 * the policy compiled for a Linux backend, and typed failures mapped to exit
 * codes. Glue only: the work is in src/index.ts and src/kernel/.
 */
import { resolve as resolvePath } from 'node:path';
import type { LinuxTarget } from '../backends/types.js';
import { hasErrors, type Diagnostic } from '../diag/diagnostic.js';
import { renderText, toJson } from '../diag/render.js';
import { SourceMap } from '../diag/source.js';
import { compilePolicy, loadPolicyText, openPolicy, type Loaded } from '../index.js';
import { backendInstalled, type LinuxKernel } from '../kernel/backend.js';
import { selfCommand, type SelfCommand } from '../kernel/confirm.js';
import { realExecer, type Execer } from '../kernel/exec.js';
import { LifecycleError, type Ctx, type Desired } from '../kernel/lifecycle.js';
import { LockBusyError } from '../kernel/lock.js';
import { kernelDiagnostics } from '../kernel/nft.js';
import { readState, sha256, stateDirOf, StateError, whoAmI } from '../kernel/state.js';
import { KernelError } from '../kernel/where.js';
import type { HostEntry } from '../resolve/types.js';
import { CommandError, UsageError, type Io } from './io.js';
import { commandDiagnostic, writeResult, type JsonCommand } from './envelope.js';
import { silenced, type PolicyFlags } from './shared.js';
import { compiling, type StageSeams } from './progress.js';

/** Seams of the life-cycle commands (tests pass their own). */
export interface KernelSeams extends StageSeams {
  execer?: Execer;
  /** Run kernel commands in this network namespace (tests). */
  netns?: string;
  self?: SelfCommand;
  uid?: number;
  /** Whether PID 1 is systemd (default: /run/systemd/system exists); persist says what it did and did not. */
  systemdBooted?: () => boolean;
  /** What the life cycle does to the kernel (default: the real one through the execer); tests pass kernel/fake-kernel.testkit.ts. */
  kernel?: LinuxKernel;
}

export function lifecycleCtx(io: Io, seams: KernelSeams = {}): Ctx {
  return {
    w: { execer: seams.execer ?? realExecer(), ...(seams.netns ? { netns: seams.netns } : {}) },
    stateDir: stateDirOf(io.env),
    env: io.env,
    now: () => new Date(),
    who: whoAmI(io.env),
    note: (line) => io.stderr(line + '\n'),
    self: seams.self ?? selfCommand(),
    ...(io.stage ? { stage: io.stage } : {}),
    ...(seams.kernel ? { kernel: seams.kernel } : {}),
  };
}

export function needRoot(cmd: string, seams: KernelSeams = {}): void {
  const uid = seams.uid ?? process.getuid?.();
  if (uid !== undefined && uid !== 0) throw new CommandError(`${cmd} needs root: it reads or changes the firewall and ${'/var/lib/egress'}; run it with sudo`);
}

export function parseBackend(v: string | undefined): LinuxTarget | undefined {
  if (v === undefined) return undefined;
  if (v !== 'nft' && v !== 'iptables') throw new UsageError(`--backend must be nft or iptables, not ${JSON.stringify(v)}`);
  return v;
}

/** The backend to use: the flag, else what is applied now, else nft when installed. */
export function chooseBackend(flag: LinuxTarget | undefined, stateDir: string): LinuxTarget {
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
export async function loadDesired(io: Io, file: string, backend: LinuxTarget, flags: PolicyFlags, stateDir: string): Promise<LoadedDesired> {
  io.stage?.(`reading ${file}`);
  const opened = await openPolicy(resolvePath(io.cwd, file), file);
  if (!opened.value) {
    const d = opened.diagnostics;
    if (!flags.json) io.stderr(`${file}: error: ${d[0]!.message}\n`);
    return { loaded: { sources: new SourceMap(), diagnostics: d }, diagnostics: d };
  }
  const { path, text, bytes, baseDir } = opened.value;
  let previousHosts: HostEntry[] | undefined;
  try {
    previousHosts = readState(stateDir, 'live')?.hosts;
  } catch (e) {
    if (e instanceof StateError) io.stderr(`egress: warning: ${e.message}\n`);
  }
  const loaded = await loadPolicyText(file, text, {
    baseDir,
    ...(io.resolver ? { resolver: io.resolver } : {}),
    ...(io.now ? { now: io.now } : {}),
    ...(previousHosts ? { previousHosts } : {}),
    ...(io.stage ? { stage: io.stage } : {}),
  });
  loaded.diagnostics = silenced(loaded.diagnostics, flags.silence);
  const diagnostics = [...loaded.diagnostics];
  let desired: Desired | undefined;
  if (!hasErrors(diagnostics) && loaded.ir) {
    io.stage?.(compiling(loaded.ir, backend));
    const res = compilePolicy(loaded.ir, backend);
    diagnostics.push(...silenced(res.diagnostics, flags.silence));
    if (res.value) desired = { backend, ir: loaded.ir, artifact: res.value, policyFile: path, policyText: text, policyHash: sha256(bytes) };
  }
  if (!flags.json && diagnostics.length) io.stderr(renderText(loaded.sources, diagnostics));
  return { loaded, diagnostics, ...(desired ? { desired } : {}) };
}

/** Map the life-cycle's typed failures to the CLI's. */
/**
 * A life-cycle command failed: say why (exit 1). `json`: the command whose
 * envelope to print, with the kernel's findings and the failure itself as
 * its diagnostics.
 */
export function lifecycleFailure(io: Io, e: unknown, loaded: Loaded | undefined, json: JsonCommand | undefined): number {
  const failedHere = (e: Error) => commandDiagnostic('failed', e.message);
  if (e instanceof LifecycleError && e.failure) {
    const ds = kernelDiagnostics(e.failure);
    if (json) writeResult(io, json, { ok: false, result: null, diagnostics: [...(loaded ? toJson(loaded.sources, ds) : toJson(new SourceMap(), ds)), failedHere(e)] });
    else io.stderr((loaded ? renderText(loaded.sources, ds) : e.message + '\n') + 'egress: nothing was changed\n');
    return 1;
  }
  if (e instanceof LifecycleError || e instanceof StateError || e instanceof LockBusyError || e instanceof KernelError) {
    if (json) writeResult(io, json, { ok: false, result: null, diagnostics: [failedHere(e)] });
    else io.stderr(`egress: error: ${e.message}\n`);
    return 1;
  }
  throw e;
}

