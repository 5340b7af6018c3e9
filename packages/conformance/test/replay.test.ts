import { ScheduleFormatError, StaleScheduleError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { KitUsageError, replayScenario, runScenario, scenarios } from '../src/index.js';
import { fixtureDriver } from './fixtures/mirror-driver.js';
import { normalizeNames, quick } from './helpers.js';

describe('replay', () => {
  const scenario = scenarios.find((s) => s.id === 'mprotect/write')!;
  const found = runScenario(fixtureDriver, 'program-before-retry', scenario, { budget: quick });

  it('round-trips: the reported schedule replays to the same violation and race diagram', () => {
    const f = found.failure!;
    const out = replayScenario(fixtureDriver, {
      variant: 'program-before-retry',
      scenario: 'mprotect/write',
      schedule: f.schedule,
    });
    expect(out.run.violation).toEqual(
      expect.objectContaining({ kind: f.kind, message: f.message, step: f.step }),
    );
    expect(normalizeNames(out.diagram)).toBe(normalizeNames(f.diagram));
    expect(out.trace.schema).toBe('hmmkit.trace/1');
    expect(out.trace.schedule).toBe(f.schedule);
    expect(out.trace.violation?.kind).toBe(f.kind);
  });

  it('the same schedule on the correct driver runs clean or reports a stale schedule', () => {
    try {
      const out = replayScenario(fixtureDriver, {
        scenario: 'mprotect/write',
        schedule: found.failure!.schedule,
      });
      expect(out.run.violation).toBeUndefined();
    } catch (e) {
      expect(e).toBeInstanceOf(StaleScheduleError);
    }
  });

  it('rejects malformed and stale schedules, unknown scenarios and variants', () => {
    expect(() => replayScenario(fixtureDriver, { scenario: 'mprotect/write', schedule: 'nope' })).toThrow(
      ScheduleFormatError,
    );
    expect(() => replayScenario(fixtureDriver, { scenario: 'mprotect/write', schedule: 's1:7.7.7' })).toThrow(
      StaleScheduleError,
    );
    expect(() => replayScenario(fixtureDriver, { scenario: 'no/such', schedule: 's1:' })).toThrow(
      /no scenario 'no\/such'/,
    );
    expect(() =>
      replayScenario(fixtureDriver, { variant: 'nope', scenario: 'mprotect/write', schedule: 's1:' }),
    ).toThrow(KitUsageError);
    expect(() => replayScenario(fixtureDriver, { scenario: 'atomic/cpu-write', schedule: 's1:' })).toThrow(
      /does not apply.*requires atomics/,
    );
  });
});
