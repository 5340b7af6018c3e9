import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/interval-tree/index.ts', 'src/demo.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
