import { lstatSync, writeFileSync, type Stats } from 'node:fs';
import { errnoText } from '../../diag/errno.js';
import { writeFileAtomic } from '../../kernel/atomic.js';
import { resolve } from 'node:path';
import { STARTER_POLICY } from '../../policy/starter.js';
import { CommandError, type Io } from '../io.js';
import { writeJson } from '../shared.js';

/** Write the starter policy to FILE (never over an existing file unless --force), or print it with "-". */
export async function initCommand(io: Io, file: string | undefined, flags: { force?: boolean; json?: boolean }): Promise<number> {
  const target = file ?? 'egress.yaml';
  if (target === '-') {
    io.stdout(STARTER_POLICY);
    return 0;
  }
  const path = resolve(io.cwd, target);
  // lstat, not exists: a dangling link is something there too, and is never followed (D17).
  const there = lstatOrUndefined(path);
  if (there && !flags.force) throw new CommandError(`${target} already exists; not overwriting it (use --force)`);
  if (there && !there.isFile()) throw new CommandError(`${target} is not a regular file (a link, a directory…); not writing through it`);
  try {
    // --force replaces the file (a new one, in place of the old name), never writes into what a link names.
    if (there) writeFileAtomic(path, STARTER_POLICY, 0o644);
    else writeFileSync(path, STARTER_POLICY, { mode: 0o644, flag: 'wx' });
  } catch (e) {
    throw new CommandError(`cannot write ${target}: ${errnoText(e)}`);
  }
  if (flags.json) writeJson(io, { file: target, written: true });
  else io.stdout(`wrote ${target}: edit the resolver and mirror entries, then run "egress check ${target}" and "egress lab ${target}"\n`);
  return 0;
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}
