/**
 * Shared vitest settings: resolve workspace packages to their TypeScript sources (the
 * `@hmmkit/source` export condition), so tests never run against a stale `dist/`.
 */
import { defineConfig } from 'vitest/config';

export const sourceConditions = ['@hmmkit/source', 'import', 'module', 'node', 'default'];

export function hmmkitVitestConfig(include: string[] = ['test/**/*.test.ts']) {
  return defineConfig({
    resolve: { conditions: sourceConditions },
    ssr: { resolve: { conditions: sourceConditions, externalConditions: sourceConditions } },
    test: { include, testTimeout: 120_000 },
  });
}
