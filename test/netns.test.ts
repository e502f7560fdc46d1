import { expect, test } from 'vitest';
import { kernelSkipped } from './netns.js';

// The one skip rule of the kernel tests: only the explicit opt-out, and never in CI.
test.each([
  [{}, false],
  [{ EGRESS_SKIP_KERNEL: '1' }, true],
  [{ EGRESS_SKIP_KERNEL: '1', CI: 'true' }, false],
  [{ EGRESS_SKIP_KERNEL: 'true' }, false],
  [{ EGRESS_SKIP_KERNEL: '0' }, false],
  [{ CI: 'true' }, false],
])('kernelSkipped(%j) = %s', (env, skipped) => {
  expect(kernelSkipped(env)).toBe(skipped);
});
