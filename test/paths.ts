/**
 * The repository root, for tests that read fixtures, goldens and sources by
 * path. Tests use `join(ROOT, …)` rather than `import.meta.dirname`, which
 * Node has only from 20.11: the suite also runs on Node 18 (scripts/test.sh).
 */
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
