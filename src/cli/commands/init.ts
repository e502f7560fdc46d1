import { existsSync, writeFileSync } from 'node:fs';
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
  if (existsSync(path) && !flags.force) throw new CommandError(`${target} already exists; not overwriting it (use --force)`);
  try {
    writeFileSync(path, STARTER_POLICY, { mode: 0o644 });
  } catch (e) {
    throw new CommandError(`cannot write ${target}: ${(e as Error).message}`);
  }
  if (flags.json) writeJson(io, { file: target, written: true });
  else io.stdout(`wrote ${target}: edit the resolver and mirror entries, then run "egress check ${target}" and "egress lab ${target}"\n`);
  return 0;
}
