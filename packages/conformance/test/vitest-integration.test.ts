/**
 * The vitest integration as a driver package uses it, on the fixture driver (a subset of the
 * scenarios and variants, to keep the suite fast).
 */
import { describe, expect, it } from 'vitest';
import { runScenario, scenarios } from '../src/index.js';
import { conformanceFailureMessage, describeConformance } from '../src/vitest.js';
import { fixtureDriver } from './fixtures/mirror-driver.js';
import { quick } from './helpers.js';

describeConformance(fixtureDriver, {
  budget: quick,
  scenarios: ['munmap/read', 'mprotect/write', 'atomic/cpu-write'],
  variants: ['no-clear', 'leak-subscription'],
  expectations: new URL('./fixtures/mirror-driver.expectations.json', import.meta.url),
  driverRef: 'packages/conformance/test/fixtures/mirror-driver.ts',
});

describe('describeConformance failure messages', () => {
  it('carry the violation, the exact replay command and the race diagram', () => {
    const scenario = scenarios.find((s) => s.id === 'munmap/read')!;
    const r = runScenario(fixtureDriver, 'no-clear', scenario, {
      budget: quick,
      driverRef: 'packages/conformance/test/fixtures/mirror-driver.ts',
    });
    const msg = conformanceFailureMessage(r);
    expect(msg).toContain(r.failure!.message);
    expect(msg).toContain(
      `replay: pnpm hmmkit replay --driver packages/conformance/test/fixtures/mirror-driver.ts --variant no-clear --scenario munmap/read --schedule ${r.failure!.schedule}`,
    );
    expect(msg).toContain(r.failure!.diagram.split('\n')[0]!.trim());
    expect(msg).toContain('CPU0');
  });
});
