/**
 * The kit against its own fixture driver: the correct build passes every applicable scenario,
 * every planted bug is caught with one of its declared kinds, and the printed replay command
 * reproduces the failure.
 */
import { describe, expect, it } from 'vitest';
import { replayScenario, runConformance, runScenario, scenarios } from '../src/index.js';
import { fixtureDriver } from './fixtures/mirror-driver.js';
import { normalizeNames, quick, replayArgs } from './helpers.js';

describe('the correct fixture driver', () => {
  const report = runConformance(fixtureDriver, { budget: quick, driverRef: 'fixture' });

  it('passes every applicable scenario', () => {
    const bad = report.results.filter((r) => r.status !== 'pass' && r.status !== 'skip');
    expect(bad.map((r) => `${r.scenario}: ${r.status} ${r.failure?.message ?? ''}`)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.results.filter((r) => r.status === 'pass').length).toBeGreaterThanOrEqual(14);
  });

  it('skips scenarios whose requirements it lacks, with the reason', () => {
    const skipped = report.results.filter((r) => r.status === 'skip');
    expect(skipped.map((r) => r.scenario).sort()).toEqual(
      [
        'atomic/cpu-write',
        'atomic/after-cpu-read',
        'device-migrate/cpu-read',
        'device-migrate/exit',
        'register/munmap',
        'vm-bind/remap',
        'vm-bind/concurrent',
      ].sort(),
    );
    expect(skipped.find((r) => r.scenario === 'register/munmap')!.reason).toBe(
      "requires userptr or odp (not in the driver's `supports`)",
    );
    expect(skipped.find((r) => r.scenario === 'atomic/cpu-write')!.reason).toMatch(/^requires atomics/);
    expect(skipped.find((r) => r.scenario === 'vm-bind/remap')!.reason).toMatch(/^requires vmBind/);
  });

  it('ends the portfolio of small scenarios with a bounded dfs that covers its space', () => {
    const e = report.results.find((r) => r.scenario === 'munmap/read')!.explorations;
    expect(e.map((x) => x.strategy)).toEqual(['pct:3:0', 'random:0', 'dfs:2']);
    expect(e[2]!.endedBy).toBe('exhausted');
  });
});

describe('every fixture variant is caught', () => {
  const report = runConformance(fixtureDriver, {
    budget: quick,
    variants: fixtureDriver.variants.map((v) => v.name),
    stopWhenCaught: true,
    driverRef: 'fixture',
  });

  for (const v of fixtureDriver.variants) {
    it(`${v.name}: caught with one of ${v.expect.join(', ')}, and its replay command reproduces it`, () => {
      const verdict = report.variants.find((x) => x.variant === v.name)!;
      expect(verdict.caught, `variant ${v.name} not caught`).toBe(true);
      const r = report.results.find((x) => x.variant === v.name && x.scenario === verdict.caughtBy[0])!;
      expect(r.status).toBe('xfail');
      const f = r.failure!;
      expect(v.expect).toContain(f.kind);
      expect(f.replayCommand).toBe(
        `pnpm hmmkit replay --driver fixture --variant ${v.name} --scenario ${r.scenario} --schedule ${f.schedule}`,
      );
      const args = replayArgs(f.replayCommand);
      const again = replayScenario(fixtureDriver, {
        variant: args.variant!,
        scenario: args.scenario!,
        schedule: args.schedule!,
      });
      expect(again.run.violation?.kind).toBe(f.kind);
      expect(again.run.violation?.message).toBe(f.message);
      expect(normalizeNames(again.diagram)).toBe(normalizeNames(f.diagram));
    });
  }

  it('no scenario fails a variant with a kind it does not declare', () => {
    expect(
      report.results.filter((r) => r.status === 'fail').map((r) => `${r.variant} ${r.scenario} ${r.reason}`),
    ).toEqual([]);
  });
});

describe('determinism', () => {
  it('the same seed gives the same result; another seed explores other schedules', () => {
    const s = scenarios.find((x) => x.id === 'fork/cow')!;
    const a = runScenario(fixtureDriver, 'retry-before-lock', s, { budget: quick, seed: 7 });
    const b = runScenario(fixtureDriver, 'retry-before-lock', s, { budget: quick, seed: 7 });
    expect(a.failure?.schedule).toBe(b.failure?.schedule);
    expect(a.failure?.foundSchedule).toBe(b.failure?.foundSchedule);
    expect(a.runs).toBe(b.runs);
    expect(a.steps).toBe(b.steps);
  });
});
