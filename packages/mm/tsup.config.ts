import { defineConfig } from 'tsup';

export default defineConfig({
  entry: [
    'src/index.ts',
    'src/notifier/index.ts',
    'src/hmm/index.ts',
    'src/device-exclusive/index.ts',
    'src/migrate-device/index.ts',
  ],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
