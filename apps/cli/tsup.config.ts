import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/bin.ts', 'src/cli.ts'],
  format: ['esm'],
  dts: { entry: 'src/cli.ts' },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
