import type { Resolver } from '../resolve/resolver.js';

/** The CLI's whole connection to the outside, so tests can run `main` in-process. */
import { colourWanted } from '../diag/colour.js';

export interface Io {
  /** Hostnames, set files and accounts (default: the system's). */
  resolver?: Resolver;
  /** Today, for `expires` (default: now). */
  now?: Date;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: Record<string, string | undefined>;
  cwd: string;
  /** Standard input as text, when a command reads "-". */
  stdin?: () => Promise<string>;
  /** Standard input as it streams (log readers: a pipe may never end). Default: `stdin` as one chunk. */
  stdinChunks?: () => AsyncIterable<Buffer | string>;
  /** Whether stdout is a terminal (progress and colour only then). */
  isTty?: boolean;
  /** Whether standard error is a terminal: the stage lines of compile, plan, apply and status are drawn only then (cli/progress.ts). */
  stderrTty?: boolean;
  /** Its width then: a stage line is cut to fit it, as a line that wraps cannot be redrawn in place (default 80). */
  stderrColumns?: number;
  /** Say which stage of a long command runs now (cli/progress.ts withStages draws it on a terminal); absent: nothing is said. */
  stage?: (what: string) => void;
  /** The terminal's width when stdout is one: tables are cut to fit it (report/table.ts). */
  columns?: number;
  /** Whether to colour each stream (report/colour.ts: a terminal, no NO_COLOR, not --no-color). Default: no colour. */
  colour?: { readonly stdout: boolean; readonly stderr: boolean };
  /** The user this runs as (default: the process's); `init` writes the default policy only as root. */
  uid?: number;
  /** Called when a command prints its --json envelope (envelope.ts), so `main` prints one for a failure only when none was. */
  onResult?: (ok: boolean) => void;
  /** Tests only: the default policy instead of /etc/egress/policy.yaml (policy-path.ts), so no test reads or writes /etc. */
  defaultPolicy?: string;
}

/** Exit 2: the command line itself is wrong. */
export class UsageError extends Error {}

/** Exit 1 with a message: the thing asked for failed (the message is already user-facing). */
export class CommandError extends Error {}

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export function processIo(): Io {
  return {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    env: process.env,
    cwd: process.cwd(),
    isTty: !!process.stdout.isTTY,
    stderrTty: !!process.stderr.isTTY,
    ...(process.stderr.isTTY && process.stderr.columns ? { stderrColumns: process.stderr.columns } : {}),
    ...(process.stdout.isTTY && process.stdout.columns ? { columns: process.stdout.columns } : {}),
    colour: { stdout: colourWanted(!!process.stdout.isTTY, process.env), stderr: colourWanted(!!process.stderr.isTTY, process.env) },
    stdinChunks: () => process.stdin,
    stdin: async () => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}
