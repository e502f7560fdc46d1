/**
 * Where kernel commands run: an Execer, and optionally a named network
 * namespace (tests and the scratch namespaces plan uses). egress itself
 * normally runs with no `netns`: in whatever namespace it was started in.
 */
import { createNetns, netnsName, sweepStale, uniqueTag } from './netns.js';
import { describeFailure, type Execer, type RunResult } from './exec.js';

export interface Where {
  execer: Execer;
  netns?: string;
}

const TIMEOUT_MS = 120_000;

export async function runIn(w: Where, argv: string[], input?: string): Promise<RunResult> {
  return w.execer.run(argv[0]!, argv.slice(1), { ...(w.netns !== undefined ? { netns: w.netns } : {}), ...(input !== undefined ? { input } : {}), timeoutMs: TIMEOUT_MS });
}

export class KernelError extends Error {
  constructor(
    message: string,
    /** The loader's own text (stderr), for a `note:`. */
    readonly output: string = '',
  ) {
    super(message);
  }
}

export async function mustRun(w: Where, argv: string[], input?: string): Promise<string> {
  const r = await runIn(w, argv, input);
  if (r.code !== 0) throw new KernelError(describeFailure(argv, r), r.stderr);
  return r.stdout;
}

/**
 * Run `fn` in a throwaway network namespace (deleted afterwards, also on
 * failure and on SIGINT/SIGTERM). Used to have the kernel list a ruleset we
 * have not loaded yet, in its own canonical form, without touching anything.
 */
export async function withScratchNetns<T>(x: Execer, fn: (w: Where) => Promise<T>): Promise<T> {
  // A run killed with SIGKILL cannot delete its scratch namespace: the next one does (names carry the owner pid).
  await sweepStale(x);
  const ns = netnsName(uniqueTag(), 'scratch');
  const del = await createNetns(x, ns);
  try {
    return await fn({ execer: x, netns: ns });
  } finally {
    await del();
  }
}
