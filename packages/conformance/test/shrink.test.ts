import { decodeSchedule, explore, type Program, pct, runOnce, Var } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { runScenario, scenarioProgram, scenarios, shrinkSchedule } from '../src/index.js';
import { fixtureDriver } from './fixtures/mirror-driver.js';

/** Two threads increment a counter without a lock, with noise steps around. */
const racy: Program = {
  name: 'racy counter with noise',
  setup(sim) {
    const count = new Var(sim, 'count', 0);
    const noise = new Var(sim, 'noise', 0);
    for (const name of ['A', 'B', 'C']) {
      sim.spawn(name, function* () {
        for (let i = 0; i < 3; i++) yield* noise.update((x) => x + 1);
        if (name === 'C') return;
        const v = yield* count.read();
        yield* count.write(v + 1);
      });
    }
    return { properties: { 'both increments land': () => count.value === 2 } };
  },
};

describe('shrinking', () => {
  it('shrinks a PCT schedule of a sim program toward the shortest failing one', () => {
    const r = explore(racy, { strategy: pct({ depth: 3, seed: 4 }), budgets: { maxRuns: 500 } });
    const f = r.failures[0]!;
    const choices = decodeSchedule(f.schedule);
    const s = shrinkSchedule(racy, choices, f.violation.kind, f.steps, { maxSteps: 10_000 });
    expect(s.to).toBeLessThanOrEqual(s.from);
    expect(s.schedule.length).toBeLessThanOrEqual(f.schedule.length);
    const again = runOnce(racy, s.choices);
    expect(again.violation?.kind).toBe('assertion');
    expect(s.replays).toBeLessThanOrEqual(200);
  });

  it('is deterministic and bounded by its replay budget', () => {
    const r = explore(racy, { strategy: pct({ depth: 3, seed: 9 }), budgets: { maxRuns: 500 } });
    const f = r.failures[0]!;
    const choices = decodeSchedule(f.schedule);
    const a = shrinkSchedule(racy, choices, 'assertion', f.steps, { maxSteps: 10_000, maxReplays: 5 });
    const b = shrinkSchedule(racy, choices, 'assertion', f.steps, { maxSteps: 10_000, maxReplays: 5 });
    expect(a).toEqual(b);
    expect(a.replays).toBeLessThanOrEqual(5);
  });

  it('keeps the violation kind: a kit failure shrinks to a schedule that fails the same way, never longer', () => {
    for (const [variant, id] of [
      ['retry-before-lock', 'fork/cow'],
      ['set-seq-outside-lock', 'munmap/read'],
      ['trylock-skip-clear', 'two-devices/munmap'],
    ] as const) {
      const scenario = scenarios.find((s) => s.id === id)!;
      const r = runScenario(fixtureDriver, variant, scenario, { budget: { runs: 400, shrink: 100 } });
      const f = r.failure!;
      expect(f, `${variant} ${id}`).toBeDefined();
      expect(f.shrink.toChoices).toBeLessThanOrEqual(f.shrink.fromChoices);
      expect(decodeSchedule(f.schedule).length).toBeLessThanOrEqual(decodeSchedule(f.foundSchedule).length);
      const again = runOnce(scenarioProgram(fixtureDriver, variant, scenario), decodeSchedule(f.schedule), {
        maxSteps: 5_000,
      });
      expect(again.violation?.kind).toBe(f.kind);
    }
  });

  it('treats a schedule that no longer fits as not reproducing', () => {
    const s = shrinkSchedule(racy, [9, 9, 9], 'assertion', 10, { maxSteps: 1000, maxReplays: 20 });
    // The empty schedule (default policy) does not fail, and [9,...] is stale: nothing shorter found.
    expect(s.choices).toEqual([9, 9, 9]);
  });
});
