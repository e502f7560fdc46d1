/**
 * Every test that reads a command's `--json` reads it through here: the
 * output must be exactly one envelope (src/cli/envelope.ts) that validates
 * against the command's published schema (schema/json/COMMAND.schema.json,
 * written by the build from src/cli/results.ts), with `ok` false exactly
 * when the exit status is 1 or 2. So each of those tests also checks the
 * schema against real output.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Envelope, JsonCommand } from '../src/cli/envelope.js';
import type { Results } from '../src/cli/results.js';
import { ROOT } from './paths.js';

const ajv = new Ajv({ allErrors: true, strict: false });
const validators = new Map<string, ValidateFunction>();

export function schemaOf(command: JsonCommand): ValidateFunction {
  const known = validators.get(command);
  if (known) return known;
  const v = ajv.compile(JSON.parse(readFileSync(join(ROOT, 'schema', 'json', `${command}.schema.json`), 'utf8')) as object);
  validators.set(command, v);
  return v;
}

/** Why `v` is not a valid envelope of `command` (undefined: it is). */
export function envelopeProblem(v: unknown, command: JsonCommand): string | undefined {
  const validate = schemaOf(command);
  if (validate(v)) return undefined;
  return ajv.errorsText(validate.errors, { separator: '\n' });
}

function check(v: unknown, command: JsonCommand, code: number | undefined): Envelope<typeof command> {
  const problem = envelopeProblem(v, command);
  if (problem) throw new Error(`egress ${command} --json: the output does not match schema/json/${command}.schema.json:\n${problem}\n${JSON.stringify(v, null, 2).slice(0, 4000)}`);
  const env = v as Envelope;
  if (env.command !== command) throw new Error(`expected the envelope of ${command}, got ${env.command}`);
  if (code !== undefined && env.ok !== (code !== 1 && code !== 2)) throw new Error(`egress ${command} --json: ok is ${env.ok} but the exit status is ${code}`);
  return env;
}

/** Standard output of `egress COMMAND … --json`: its one envelope, validated (and `ok` against the exit status `code`, when given). */
export function envelope<C extends JsonCommand>(stdout: string, command: C, code?: number): Envelope<C> {
  let v: unknown;
  try {
    v = JSON.parse(stdout);
  } catch (e) {
    throw new Error(`egress ${command} --json: standard output is not one JSON document (${(e as Error).message}):\n${stdout.slice(0, 2000)}`);
  }
  return check(v, command, code) as Envelope<C>;
}

/** The envelope's result, which must be there (not null). */
export function resultOf<C extends JsonCommand>(stdout: string, command: C, code?: number): Results[C] {
  const env = envelope(stdout, command, code);
  if (env.result === null) throw new Error(`egress ${command} --json: result is null; diagnostics: ${JSON.stringify(env.diagnostics)}`);
  return env.result;
}

/** A stream of envelopes, one per line (`stats --follow --json`, `refresh --watch --json`). */
export function envelopeLines<C extends JsonCommand>(stdout: string, command: C): Envelope<C>[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => check(JSON.parse(l), command, undefined) as Envelope<C>);
}

/**
 * The result, validated like `resultOf`, typed loosely for tests that pick
 * at it the way they picked at `JSON.parse` output (the schema has checked
 * its shape already).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function jsonResult(stdout: string, command: JsonCommand, code?: number): any {
  return resultOf(stdout, command, code);
}
