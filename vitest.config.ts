import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        test: {
          name: 'priv',
          include: ['test/e2e/**/*.priv.test.ts', 'test/bpf/**/*.priv.test.ts'],
          // Scenarios build namespaces and run a daemon each: keep them serial
          // on a 2-core machine, and give real traffic time to time out.
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
