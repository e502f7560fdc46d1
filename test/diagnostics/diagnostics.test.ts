/**
 * Exact rendered diagnostics for a handful of files: `<case>.yaml` is checked
 * with `egress check`; `<case>.stderr` holds the exact text and `<case>.json`
 * the `--json` diagnostics. UPDATE_GOLDEN=1 rewrites both.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { run } from '../cli/run.js';
import { ROOT } from '../paths.js';
import { envelope } from '../json.js';

const DIR = join(ROOT, 'test', 'diagnostics');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

/** The exit code each case must give, stated here, not read from the output under test: 1 with errors, 0 with warnings only. */
const EXIT: Record<string, 0 | 1> = {
  'dns-names': 1,
  'dns-settings': 1,
  'duplicate-name': 1,
  forward: 1,
  'host-bits': 0,
  'long-line': 1,
  'many-errors': 1,
  'set-file-foreign': 1,
  'terminal-escape': 1,
  'unknown-key': 1,
  'yaml-syntax': 1,
};

function expectedExit(base: string): 0 | 1 {
  const code = EXIT[base];
  if (code === undefined) throw new Error(`test/diagnostics/${base}.yaml: add its expected exit code to EXIT in diagnostics.test.ts`);
  return code;
}

function golden(file: string, got: string): void {
  const path = join(DIR, file);
  if (UPDATE) writeFileSync(path, got);
  else {
    expect(existsSync(path), `missing golden ${file} (UPDATE_GOLDEN=1 creates it)`).toBe(true);
    expect(got).toBe(readFileSync(path, 'utf8'));
  }
}

describe.each(readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort())('%s', (file) => {
  const base = file.replace(/\.yaml$/, '');
  test('text', async () => {
    const r = await run(['check', file], { cwd: DIR });
    golden(`${base}.stderr`, r.stderr);
    expect(r.code).toBe(expectedExit(base));
  });
  test('json', async () => {
    const r = await run(['check', '--json', file], { cwd: DIR });
    const out = envelope(r.stdout, 'check', r.code);
    golden(`${base}.json`, JSON.stringify(out.diagnostics, null, 2) + '\n');
    expect(r.code).toBe(expectedExit(base));
    expect(out.ok).toBe(expectedExit(base) === 0);
  });
});
