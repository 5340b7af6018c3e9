/**
 * The conformance kit inside this package's suite, on the scenarios that exercise each part of the
 * model once (the whole library and every variant: `hmmkit conform --driver nouveau --variant
 * all`, see the README). Expected failures come from ../expectations.json.
 */
import { describeConformance } from '@hmmkit/conformance/vitest';
import { nouveauDriver } from '../src/index.js';

describeConformance(nouveauDriver, {
  expectations: new URL('../expectations.json', import.meta.url),
  driverRef: 'packages/drivers/nouveau/src/index.ts#nouveauDriver',
  scenarios: [
    'touch/write',
    'munmap/read',
    'fork/cow',
    'exit/read',
    'device-migrate/cpu-read',
    'atomic/cpu-write',
  ],
  variants: ['no-own-exclusive-filter', 'migrate-to-ram-no-clear'],
});
