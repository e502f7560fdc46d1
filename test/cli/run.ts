/** Run the CLI in-process with captured output and the fixed resolver. */
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import type { Resolver } from '../../src/resolve/resolver.js';
import { fixedResolver, NOW, tempDir } from '../helpers.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `uid`: who runs it (default: this process); `defaultPolicy`: instead of
 * /etc/egress/policy.yaml, default a path in a fresh empty directory, so no
 * test reads or writes the real one.
 */
export async function run(argv: string[], opts: { cwd: string; stdin?: string; resolver?: Resolver; env?: Record<string, string>; uid?: number; defaultPolicy?: string }): Promise<Run> {
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
    defaultPolicy: opts.defaultPolicy ?? join(tempDir('egress-default-'), 'etc', 'egress', 'policy.yaml'),
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
  });
  return { code, stdout, stderr };
}
