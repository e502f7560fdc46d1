/** Run the CLI in-process with captured output and the fixed resolver. */
import { main } from '../../src/cli/main.js';
import type { Resolver } from '../../src/resolve/resolver.js';
import { fixedResolver, NOW } from '../helpers.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(argv: string[], opts: { cwd: string; stdin?: string; resolver?: Resolver; env?: Record<string, string> }): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    env: opts.env ?? {},
    cwd: opts.cwd,
    resolver: opts.resolver ?? fixedResolver(),
    now: NOW,
    stdin: async () => opts.stdin ?? '',
  });
  return { code, stdout, stderr };
}
