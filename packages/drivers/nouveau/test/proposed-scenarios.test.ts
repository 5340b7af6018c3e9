/**
 * The kit scenarios first written here for the variants the library could not reach (now in
 * packages/conformance's library): each run with the kit's default portfolio and budget.
 */
import { findScenario, runScenario, type Scenario } from '@hmmkit/conformance';
import { describe, expect, it } from 'vitest';
import { nouveauDriver } from '../src/driver.js';
import type { NouveauVariantName } from '../src/variants.js';

function run(id: string, variant: NouveauVariantName | null) {
  return runScenario(nouveauDriver, variant, findScenario(id) as Scenario);
}

describe('kit scenarios written for nouveau', () => {
  it('atomic/after-cpu-read: upstream nouveau gives up (F4); atomic-retry-keeps-folio deadlocks', () => {
    expect(run('atomic/after-cpu-read', null).failure?.kind).toBe('livelock'); // F4's deadline
    expect(run('atomic/after-cpu-read', 'atomic-retry-keeps-folio').failure?.kind).toBe('deadlock');
  });

  it('vm-bind/remap: passes; catches run-job-allocates-pt and remap-unlink-before-link', () => {
    expect(run('vm-bind/remap', null).status).toBe('pass');
    expect(run('vm-bind/remap', 'run-job-allocates-pt').failure?.kind).toBe('alloc-in-forbidden-context');
    expect(['use-after-free', 'refcount']).toContain(
      run('vm-bind/remap', 'remap-unlink-before-link').failure?.kind,
    );
  });

  it('vm-bind/concurrent: passes; catches sync-bind-bypasses-queue', () => {
    expect(run('vm-bind/concurrent', null).status).toBe('pass');
    expect(run('vm-bind/concurrent', 'sync-bind-bypasses-queue').failure?.kind).toBe('vm-bind-order');
  });

  it('migrate/read-repeat: passes; catches mm-notifier-first', () => {
    expect(run('migrate/read-repeat', null).status).toBe('pass');
    expect(nouveauDriver.variants.find((v) => v.name === 'mm-notifier-first')!.expect).toContain(
      run('migrate/read-repeat', 'mm-notifier-first').failure?.kind,
    );
  });
});
