import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Test files that create network namespaces, load rulesets or probe with
 * real sockets. They run one file at a time (the "kernel" project), after the
 * unit project: together they compete for CPU, and the probes' timeouts and
 * the life-cycle watchdogs are where a loaded machine shows first.
 * (vitest 3, kept for Node 18: `groupOrder` runs the kernel project after the
 * unit project; `singleFork` runs its files one after another in one child
 * process, with a fresh module graph per file.)
 * test/netns.test.ts checks that every test file using the namespace helpers
 * is listed here.
 */
export const KERNEL_TEST_FILES = ['test/kernel/**/*.test.ts', 'test/campaign/*.kernel.test.ts', 'test/package/*.kernel.test.ts', 'src/backends/nft/emit.test.ts', 'src/backends/nft/dns.test.ts', 'src/backends/iptables/emit.test.ts', 'test/property/escaping.test.ts'];

/**
 * Left out of scripts/test.sh's second run, on Node 18 (EGRESS_TEST_RUN=node18),
 * because CI has 15 minutes in all; they run on the machine's Node: the
 * hostile-input campaign, the 2M-line memory test (the reader's memory, on
 * the Node that ships most), and the browser test of the report page (it
 * tests the page in Chromium, not the Node that wrote it).
 */
export const NOT_ON_SECOND_NODE = ['test/campaign/**', 'test/observe/memory.test.ts', 'test/report/report.browser.test.ts'];
const secondRun = process.env.EGRESS_TEST_RUN === 'node18';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    setupFiles: ['test/loop-turn.setup.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...KERNEL_TEST_FILES, ...(secondRun ? NOT_ON_SECOND_NODE : [])],
        },
      },
      {
        extends: true,
        test: {
          name: 'kernel',
          include: KERNEL_TEST_FILES,
          sequence: { groupOrder: 1 },
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
        },
      },
    ],
  },
});
