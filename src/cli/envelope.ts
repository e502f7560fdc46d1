/**
 * `--json`: one envelope for every command, success or failure, usage
 * errors included (docs/json.md):
 *
 *     { "ok": true, "command": "status", "version": "0.1.0", "result": {…}, "diagnostics": [] }
 *
 * `result` has one type per command (results.ts; its JSON Schema is
 * `schema/json/COMMAND.schema.json`), or is null when the command could not
 * produce it (an invalid policy, a usage error, a failed kernel command);
 * `diagnostics` holds what went wrong or deserves a look, policy findings
 * with their file, line and column. `ok` is false exactly when the exit
 * status is 1 or 2.
 */
import type { JsonDiagnostic } from '../diag/render.js';
import type { Io } from './io.js';
import type { Results } from './results.js';
import { VERSION } from './version.js';

export type JsonCommand = keyof Results;

export interface Envelope<C extends JsonCommand = JsonCommand> {
  /** False exactly when the command exits 1 or 2. */
  ok: boolean;
  command: C;
  /** egress's version. */
  version: string;
  /** The command's result (its type per command: schema/json/COMMAND.schema.json), or null when there is none. */
  result: Results[C] | null;
  /** Errors and warnings: a policy's with FILE, line and column; the command's own (usage, failed, internal) without. */
  diagnostics: JsonDiagnostic[];
}

export interface Outcome<C extends JsonCommand> {
  ok: boolean;
  result: Results[C] | null;
  diagnostics?: JsonDiagnostic[];
  /** Fields beside the envelope's (explain's SPEC §3 answer for one flow). */
  extra?: Record<string, unknown>;
}

/** A diagnostic that is the command's own, not a policy's: `usage`, `failed`, `internal`, …. */
export function commandDiagnostic(code: string, message: string, hint?: string): JsonDiagnostic {
  return { severity: 'error', code, message, ...(hint ? { hint } : {}) };
}

function text(v: unknown, indent: number | undefined): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), indent);
}

/**
 * Print one envelope on standard output: indented, or on one line with
 * `line` (the streams of `stats --follow` and `refresh --watch`, one
 * envelope per line).
 */
export function writeResult<C extends JsonCommand>(io: Io, command: C, o: Outcome<C>, line = false): void {
  io.onResult?.(o.ok);
  io.stdout(envelopeText(command, o, line));
}

/** The envelope's text, for a command that writes it elsewhere too (`stats --output FILE`). */
export function envelopeText<C extends JsonCommand>(command: C, o: Outcome<C>, line = false): string {
  const env: Envelope<C> = { ok: o.ok, command, version: VERSION, result: o.result, diagnostics: o.diagnostics ?? [] };
  return text({ ...env, ...o.extra }, line ? undefined : 2) + '\n';
}
