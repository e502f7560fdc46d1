/**
 * Where the policy is when the command line names none (issue 15): the file
 * $EGRESS_POLICY names, else /etc/egress/policy.yaml — the place `init`
 * writes as root and the Debian package ships as a conffile.
 */
import { lstatSync } from 'node:fs';
import { resolve } from 'node:path';
import { CommandError, type Io } from './io.js';

export const DEFAULT_POLICY = '/etc/egress/policy.yaml';

export interface DefaultPolicy {
  path: string;
  /** How it was chosen: the environment variable, or the built-in location. */
  from: 'EGRESS_POLICY' | 'default';
}

export function defaultPolicyOf(io: Io): DefaultPolicy {
  const env = io.env.EGRESS_POLICY;
  if (env) return { path: resolve(io.cwd, env), from: 'EGRESS_POLICY' };
  return { path: io.defaultPolicy ?? DEFAULT_POLICY, from: 'default' };
}

/** Whether anything is at PATH (a dangling link counts: the loader then says what is wrong with it). */
export function present(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
}

/** The policy a command reads: the argument if given, else the default one, which must then exist (a plain error, exit 1). */
export function policyArg(io: Io, given: string | undefined): string {
  if (given !== undefined) return given;
  const d = defaultPolicyOf(io);
  if (!present(d.path)) throw new CommandError(missingDefault(d));
  return d.path;
}

/** The error when the default policy is needed and not there. */
export function missingDefault(d: DefaultPolicy): string {
  return d.from === 'EGRESS_POLICY'
    ? `no policy given, and ${d.path} (from EGRESS_POLICY) does not exist; name the policy file as the argument, or set EGRESS_POLICY to one that exists`
    : `no policy given, and the default ${d.path} does not exist; name the policy file as the argument, set EGRESS_POLICY, or write a starter policy there with "sudo egress init"`;
}
