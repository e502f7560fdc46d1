/**
 * The Execer seam: the only way egress spawns external programs (nft,
 * iptables-restore, ip, ping, the lab's probe and world processes). Code
 * that needs the outside world takes an `Execer` parameter, so tests pass a
 * fake and nothing reads a package-level hook (knftables' `execer`).
 *
 * No shell is ever involved: argv goes to execve as is, so no value is
 * quoted or interpreted twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface RunOptions {
  /** Text written to the program's standard input (then closed). */
  input?: string;
  /** Run inside this named network namespace (`ip netns exec NS …`). */
  netns?: string;
  /** Run as this uid/gid (via setpriv, after entering the namespace; supplementary groups cleared). */
  uid?: number;
  gid?: number;
  /** Kill the program (SIGKILL) after this long; the result then has `timedOut`. */
  timeoutMs?: number;
  /** Extra environment variables (added to this process's environment). */
  env?: Record<string, string>;
}

export interface RunResult {
  /** Exit status; 128+N when killed by signal N; 127 when the program could not be started. */
  code: number;
  stdout: string;
  stderr: string;
  timedOut?: boolean;
}

/** A long-running program (the lab's world listener, the nft writer): lines in, lines out, killed by `stop()`. */
export interface Started {
  pid: number | undefined;
  write(text: string): void;
  /** Resolves with the next line (without the newline) of stdout, or of stderr with `lines: 'stderr'`; rejects if the program exits first. */
  nextLine(): Promise<string>;
  /** SIGTERM, then SIGKILL after a grace period; resolves when it has exited. */
  stop(): Promise<RunResult>;
  exited: Promise<RunResult>;
}

/** A program started to outlive this one (the confirm watchdog). */
export interface DetachOptions {
  /** Its standard output and error are appended here (the file is created 0600). */
  logPath: string;
  /** Extra environment variables (added to this process's environment). */
  env?: Record<string, string>;
  cwd?: string;
  /** Its primary group (uid stays): the DNS forwarder runs as root with group egress-dns. */
  gid?: number;
  /** Start it in this named network namespace (`ip netns exec`, which execs it in place: the pid is its own). */
  netns?: string;
}

export interface StartOptions extends Omit<RunOptions, 'input' | 'timeoutMs'> {
  /**
   * Which output `nextLine()` reads (default stdout). The other one is
   * collected for the exit result, its last 64 KiB only. The nft writer reads
   * stderr: nft reports errors there, in order with its other messages.
   */
  lines?: 'stdout' | 'stderr';
}

export interface Execer {
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  start(cmd: string, args: readonly string[], opts?: StartOptions): Started;
  /**
   * Start a program in its own session (setsid: no controlling terminal, its
   * own process group) and do not wait for it: killing this process, its
   * group or its session does not reach it. Returns its pid.
   */
  detach(cmd: string, args: readonly string[], opts: DetachOptions): { pid: number | undefined };
}

/**
 * The argv actually executed for `cmd args` with `opts`: namespace entry
 * first (it needs root), then the uid/gid switch, then the program.
 */
export function commandLine(cmd: string, args: readonly string[], opts: Pick<RunOptions, 'netns' | 'uid' | 'gid'> = {}): string[] {
  let argv = [cmd, ...args];
  if (opts.uid !== undefined || opts.gid !== undefined) {
    const ids: string[] = [];
    if (opts.uid !== undefined) ids.push('--reuid', String(opts.uid));
    if (opts.gid !== undefined) ids.push('--regid', String(opts.gid));
    argv = ['setpriv', ...ids, '--clear-groups', '--', ...argv];
  }
  if (opts.netns !== undefined) argv = ['ip', 'netns', 'exec', opts.netns, ...argv];
  return argv;
}

const KILL_GRACE_MS = 2000;
const OTHER_KEEP = 64 * 1024;

/** The real thing: child_process.spawn, no shell. */
export function realExecer(): Execer {
  const spawnIt = (cmd: string, args: readonly string[], opts: RunOptions): ChildProcess => {
    const [bin, ...rest] = commandLine(cmd, args, opts);
    return spawn(bin!, rest, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ? { ...process.env, ...opts.env } : process.env });
  };
  return {
    detach: detachReal,
    run(cmd, args, opts = {}) {
      return new Promise((resolve) => {
        const child = spawnIt(cmd, args, opts);
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let timedOut = false;
        let spawnError: Error | undefined;
        const timer =
          opts.timeoutMs !== undefined
            ? setTimeout(() => {
                timedOut = true;
                child.kill('SIGKILL');
              }, opts.timeoutMs)
            : undefined;
        child.stdout!.on('data', (b: Buffer) => out.push(b));
        child.stderr!.on('data', (b: Buffer) => err.push(b));
        child.on('error', (e) => (spawnError = e));
        child.stdin!.on('error', () => {}); // EPIPE when the program exits without reading
        child.stdin!.end(opts.input ?? '');
        child.on('close', (code, signal) => {
          if (timer) clearTimeout(timer);
          const stderr = Buffer.concat(err).toString('utf8') + (spawnError ? `cannot run ${cmd}: ${spawnError.message}\n` : '');
          resolve({
            code: spawnError ? 127 : code ?? 128 + signalNumber(signal),
            stdout: Buffer.concat(out).toString('utf8'),
            stderr,
            ...(timedOut ? { timedOut } : {}),
          });
        });
      });
    },
    start(cmd, args, opts = {}) {
      const child = spawnIt(cmd, args, opts);
      const lineStream = opts.lines === 'stderr' ? child.stderr! : child.stdout!;
      const otherStream = opts.lines === 'stderr' ? child.stdout! : child.stderr!;
      const err: Buffer[] = [];
      let errBytes = 0;
      let buf = '';
      const lines: string[] = [];
      const waiters: { resolve: (s: string) => void; reject: (e: Error) => void }[] = [];
      let done: RunResult | undefined;
      otherStream.on('data', (b: Buffer) => {
        err.push(b);
        errBytes += b.length;
        while (errBytes > OTHER_KEEP && err.length > 1) errBytes -= err.shift()!.length;
      });
      lineStream.setEncoding('utf8');
      lineStream.on('data', (s: string) => {
        buf += s;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          const w = waiters.shift();
          if (w) w.resolve(line);
          else lines.push(line);
        }
      });
      child.stdin!.on('error', () => {});
      let spawnError: Error | undefined;
      child.on('error', (e) => (spawnError = e));
      const exited = new Promise<RunResult>((resolve) => {
        child.on('close', (code, signal) => {
          const other = Buffer.concat(err).toString('utf8');
          const [stdout, stderr] = opts.lines === 'stderr' ? [other, buf] : [buf, other];
          done = { code: spawnError ? 127 : code ?? 128 + signalNumber(signal), stdout, stderr: stderr + (spawnError ? `cannot run ${cmd}: ${spawnError.message}\n` : '') };
          for (const w of waiters.splice(0)) w.reject(new Error(`${cmd} exited (${done.code}): ${done.stderr.trim()}`));
          resolve(done);
        });
      });
      return {
        pid: child.pid,
        write: (text) => void child.stdin!.write(text),
        nextLine() {
          const l = lines.shift();
          if (l !== undefined) return Promise.resolve(l);
          if (done) return Promise.reject(new Error(`${cmd} exited (${done.code}): ${done.stderr.trim()}`));
          return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
        },
        async stop() {
          if (!done) {
            child.stdin!.end();
            child.kill('SIGTERM');
            const t = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
            await exited;
            clearTimeout(t);
          }
          return exited;
        },
        exited,
      };
    },
  };
}

function detachReal(cmd: string, args: readonly string[], opts: DetachOptions): { pid: number | undefined } {
  const log = openSync(opts.logPath, 'a', 0o600);
  try {
    const [bin, ...rest] = commandLine(cmd, args, opts.netns !== undefined ? { netns: opts.netns } : {});
    const child = spawn(bin!, rest, {
      detached: true,
      ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
      stdio: ['ignore', log, log],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    });
    child.on('error', () => {}); // reported as an undefined pid
    child.unref();
    return { pid: child.pid };
  } finally {
    closeSync(log);
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const table: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return (signal && table[signal]) ?? 0;
}

export interface ExecCall {
  argv: string[];
  opts: RunOptions;
}

/**
 * A fake for tests: records every call (as the argv the real one would
 * execute) and answers from `reply` (default: exit 0, no output).
 */
export function fakeExecer(reply: (call: ExecCall) => Partial<RunResult> | Promise<Partial<RunResult>> = () => ({})): Execer & { calls: ExecCall[] } {
  const calls: ExecCall[] = [];
  const answer = async (call: ExecCall): Promise<RunResult> => ({ code: 0, stdout: '', stderr: '', ...(await reply(call)) });
  return {
    calls,
    detach(cmd, args, opts) {
      calls.push({ argv: commandLine(cmd, args, opts.netns !== undefined ? { netns: opts.netns } : {}), opts: { ...(opts.env ? { env: opts.env } : {}), ...(opts.gid !== undefined ? { gid: opts.gid } : {}) } });
      return { pid: undefined };
    },
    run(cmd, args, opts = {}) {
      const call = { argv: commandLine(cmd, args, opts), opts };
      calls.push(call);
      return answer(call);
    },
    start(cmd, args, opts = {}) {
      const call = { argv: commandLine(cmd, args, opts), opts };
      calls.push(call);
      const exited = answer(call);
      const lines = exited.then((r) => r.stdout.split('\n').filter(Boolean));
      return {
        pid: undefined,
        write: () => {},
        nextLine: async () => {
          const l = (await lines).shift();
          if (l === undefined) throw new Error(`${cmd} exited`);
          return l;
        },
        stop: () => exited,
        exited,
      };
    },
  };
}

/** A failed run as one line for an error message: the command and what it printed. */
export function describeFailure(argv: readonly string[], r: RunResult): string {
  const why = r.timedOut ? 'timed out' : `exit ${r.code}`;
  const said = (r.stderr || r.stdout).trim().split('\n').slice(0, 5).join('; ');
  return `${argv.join(' ')}: ${why}${said ? `: ${said}` : ''}`;
}
