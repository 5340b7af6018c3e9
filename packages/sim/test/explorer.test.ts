import { describe, expect, it } from 'vitest';
import {
  type Budgets,
  type Clock,
  decodeSchedule,
  dfs,
  ExploreOptionError,
  explore,
  formatStrategy,
  type Program,
  parseStrategy,
  pct,
  random,
  replay,
  replayRun,
  runOnce,
  ScheduleFormatError,
  StaleScheduleError,
  type StrategySpec,
  Var,
  validateStrategy,
} from '../src/index.js';
import { lockedIncrements, lostUpdate, writers } from './catalogue.js';

/** One thread that never stops writing. */
const runaway: Program = {
  name: 'runaway',
  setup(sim) {
    const x = new Var(sim, 'x', 0);
    sim.spawn('looper', function* () {
      for (let i = 0; ; i++) yield* x.write(i);
    });
    sim.spawn('other', function* () {
      yield* x.read();
    });
  },
};

/** Two threads spinning on a flag nobody sets. */
const spinners: Program = {
  name: 'spinners',
  setup(sim) {
    const flag = new Var(sim, 'flag', 0);
    for (const name of ['A', 'B']) {
      sim.spawn(name, function* () {
        while ((yield* flag.read()) === 0) yield sim.relax('wait for flag');
      });
    }
  },
};

/** A clock that advances `tick` ms every time it is read. */
function fakeClock(tick: number): Clock & { reads: number } {
  const clock = Object.assign(() => clock.reads++ * tick, { reads: 0 });
  return clock;
}

describe('budgets', () => {
  it('a runaway run ends as a livelock at the step budget, with its schedule', () => {
    for (const strategy of [dfs(), random(3), pct({ seed: 3 })]) {
      const r = explore(runaway, { strategy, budgets: { maxSteps: 300 } });
      expect(r.endedBy).toBe('failure');
      const f = r.failures[0]!;
      expect(f.violation.kind).toBe('livelock');
      // 'other' may or may not have had its turn, depending on the strategy.
      expect(f.violation.message).toMatch(
        /^possible livelock: the run exceeded its budget of 300 steps with looper(, other)? unfinished$/,
      );
      expect(f.violation.details![0]).toMatch(/^looper at WRITE_ONCE\(x, \d+\)$/);
      expect(f.steps).toBe(300);
      expect(f.schedule).toMatch(/^s1:/);
      expect(f.deterministic).toBe(true);
      const again = replayRun(runaway, f.schedule, { maxSteps: 300 });
      expect(again.violation).toEqual(f.violation);
    }
  });

  it('threads that all spin in cpu_relax() with nothing left to change are a livelock', () => {
    const r = explore(spinners, { strategy: dfs() });
    const f = r.failures[0]!;
    expect(f.violation.kind).toBe('livelock');
    expect(f.violation.message).toBe(
      'livelock: A, B spin in cpu_relax() and no other thread is left to change what they wait for',
    );
    // Not at the step budget: each spins once, then waits for a change that never comes.
    expect(f.steps).toBeLessThan(20);
  });

  it('maxRuns ends the exploration with endedBy "runs"', () => {
    const r = explore(writers(5).program, { strategy: dfs(), budgets: { maxRuns: 7 } });
    expect(r.endedBy).toBe('runs');
    expect(r.runs).toBe(7);
    expect(r.exhausted).toBe(false);
    const p = explore(lostUpdate.fixed, { strategy: pct({ seed: 1 }), budgets: { maxRuns: 12 } });
    expect(p.endedBy).toBe('runs');
    expect(p.runs).toBe(12);
  });

  it('maxTimeMs ends it with endedBy "time", measured on the injected clock', () => {
    const clock = fakeClock(10);
    const r = explore(lostUpdate.fixed, { strategy: random(1), budgets: { maxTimeMs: 35 }, clock });
    // Clock reads: start (0), then before runs 2, 3, 4, 5 (10, 20, 30, 40 >= 35), then the end (50).
    expect(r.endedBy).toBe('time');
    expect(r.runs).toBe(4);
    expect(r.elapsedMs).toBe(50);
    expect(r.exhausted).toBe(false);
  });

  it('at least one run is made whatever the clock says', () => {
    const r = explore(lostUpdate.fixed, {
      strategy: random(1),
      budgets: { maxTimeMs: 1 },
      clock: fakeClock(1000),
    });
    expect(r.runs).toBe(1);
    expect(r.endedBy).toBe('time');
  });

  it('maxTotalSteps ends it with endedBy "steps"', () => {
    // Every run of the unlocked counter takes 6 steps (2 starts, 2 reads, 2 writes).
    const r = explore(lostUpdate.fixed, { strategy: random(1), budgets: { maxTotalSteps: 20 } });
    expect(r.endedBy).toBe('steps');
    expect(r.runs).toBe(2);
    expect(r.steps).toBeGreaterThanOrEqual(20);
  });

  it('an exhaustive strategy that covers its space ends with endedBy "exhausted"', () => {
    const r = explore(lockedIncrements(3).program, { strategy: dfs() });
    expect(r.endedBy).toBe('exhausted');
    expect(r.exhausted).toBe(true);
    expect(r.failures).toEqual([]);
    expect(r.runs).toBe(6);
    expect(r.steps).toBe(6 * 15);
    expect(r.strategy).toBe('dfs');
    expect(r.program).toBe('locked-increment-3');
  });

  it('is exhausted even when the last run the budget allows completes the space', () => {
    const r = explore(writers(3).program, { strategy: dfs(), budgets: { maxRuns: 6 } });
    expect(r.runs).toBe(6);
    expect(r.endedBy).toBe('exhausted');
    expect(r.exhausted).toBe(true);
  });

  it('random and pct never claim exhaustion; replay of a clean run does', () => {
    expect(explore(lostUpdate.fixed, { strategy: random(0), budgets: { maxRuns: 5 } }).exhausted).toBe(false);
    const r = explore(lostUpdate.fixed, { strategy: replay('s1:1') });
    expect(r.runs).toBe(1);
    expect(r.endedBy).toBe('exhausted');
    expect(r.exhausted).toBe(true);
  });

  it('stopOnFailure: false collects failures up to maxFailures', () => {
    const r = explore(lostUpdate.buggy, {
      strategy: random(0),
      budgets: { maxRuns: 500 },
      stopOnFailure: false,
      maxFailures: 3,
    });
    expect(r.failures).toHaveLength(3);
    expect(r.endedBy).toBe('failure');
    expect(new Set(r.failures.map((f) => f.run)).size).toBe(3);
  });
});

describe('bad input', () => {
  it.each([
    ['', "malformed schedule '': it must start with 's1:'"],
    ['0.1.2', "malformed schedule '0.1.2': it must start with 's1:'"],
    ['s2:0.1', "malformed schedule 's2:0.1': it must start with 's1:'"],
    ['s1:0.x.1', "token 2 'x' is not a choice"],
    ['s1:0..1', "token 2 '' is not a choice"],
    ['s1:0.1.', "token 3 '' is not a choice"],
    ['s1:-1', "token 1 '-1' is not a choice"],
    ['s1:0x', "token 1 '0x' is not a choice"],
    ['s1:1x0', "token 1 '1x0' repeats zero times"],
    ['s1:1234567', "token 1 '1234567' is not a choice"],
    ['s1:0 1', "token 1 '0 1' is not a choice"],
  ])('schedule %j is a ScheduleFormatError naming what is wrong', (text, message) => {
    expect(() => decodeSchedule(text)).toThrow(ScheduleFormatError);
    expect(() => decodeSchedule(text)).toThrow(message);
    expect(() => replayRun(lostUpdate.buggy, text)).toThrow(ScheduleFormatError);
    expect(() => explore(lostUpdate.buggy, { strategy: replay(text) })).toThrow(ScheduleFormatError);
  });

  it('rejects schedules that expand to absurd lengths, and non-strings', () => {
    expect(() => decodeSchedule('s1:0x9999999.0x9999999')).toThrow('too many choices');
    expect(() => decodeSchedule(42 as unknown as string)).toThrow('schedule must be a string');
  });

  it('a schedule naming a thread that cannot run is a StaleScheduleError', () => {
    expect(() => replayRun(lostUpdate.buggy, 's1:5')).toThrow(StaleScheduleError);
    expect(() => replayRun(lostUpdate.buggy, 's1:5')).toThrow(
      'stale schedule: choice 1 names thread 5 (#5), which cannot run at step 0; runnable: 0 (CPU0), 1 (CPU1)',
    );
    // T1 takes the lock, T0 starts and blocks on it: naming T0 at the next choice is stale.
    const locked = lockedIncrements(3).program;
    expect(runOnce(locked, [1, 1, 0]).status).toBe('done');
    expect(() => runOnce(locked, [1, 1, 0, 0])).toThrow(
      'stale schedule: choice 4 names thread 0 (T0), which cannot run at step 3; runnable: 1 (T1), 2 (T2)',
    );
    expect(() => explore(lostUpdate.buggy, { strategy: replay('s1:9') })).toThrow(StaleScheduleError);
  });

  it('a schedule with more choices than the run makes is a StaleScheduleError', () => {
    expect(() => replayRun(lostUpdate.fixed, 's1:0x40')).toThrow(StaleScheduleError);
    expect(() => replayRun(lostUpdate.fixed, 's1:0x40')).toThrow(/choices of the schedule unused/);
    expect(() => explore(lostUpdate.fixed, { strategy: replay('s1:0x40') })).toThrow(/unused/);
  });

  it('a data choice out of range is a StaleScheduleError', () => {
    const chooser: Program = {
      name: 'chooser',
      setup(sim) {
        sim.spawn('T', function* () {
          yield sim.choose(3, 'which page');
        });
      },
    };
    expect(runOnce(chooser, [2]).status).toBe('done');
    expect(() => runOnce(chooser, [3])).toThrow("the choice 'which page' only has 3 options");
  });

  it('parseStrategy parses the command-line forms and formatStrategy prints them back', () => {
    const cases: [string, StrategySpec][] = [
      ['random', random(0)],
      ['random:7', random(7)],
      ['pct', pct()],
      ['pct:5', pct({ depth: 5 })],
      ['pct:5:9', pct({ depth: 5, seed: 9 })],
      ['dfs', dfs()],
      ['dfs:2', dfs({ preemptionBound: 2 })],
      ['replay:s1:0x3.1', replay('s1:0x3.1')],
    ];
    for (const [text, spec] of cases) {
      expect(parseStrategy(text)).toEqual(spec);
      expect(parseStrategy(formatStrategy(spec))).toEqual(spec);
    }
  });

  it.each([
    ['bfs', "unknown strategy 'bfs' (expected random, pct, dfs or replay)"],
    ['', "unknown strategy '' (expected random, pct, dfs or replay)"],
    ['DFS', "unknown strategy 'DFS'"],
    ['random:x', "strategy 'random:x': seed 'x' is not a non-negative integer"],
    ['random:1:2', 'random takes one argument (seed)'],
    ['pct:0', 'pct: depth must be an integer >= 1, got 0'],
    ['pct:3:-1', "seed '-1' is not a non-negative integer"],
    ['pct:1:2:3', 'pct takes depth and seed'],
    ['dfs:1.5', "preemption bound '1.5' is not a non-negative integer"],
    ['dfs:1:2', 'dfs takes one argument (preemption bound)'],
  ])('parseStrategy(%j) is an ExploreOptionError: %s', (text, message) => {
    expect(() => parseStrategy(text)).toThrow(ExploreOptionError);
    expect(() => parseStrategy(text)).toThrow(message);
  });

  it('validateStrategy rejects bad specs built in code', () => {
    const bad: [unknown, string][] = [
      [{ kind: 'bfs' }, "unknown strategy 'bfs'"],
      [{ kind: 'random', seed: -1 }, 'random: seed must be a non-negative integer, got -1'],
      [{ kind: 'random', seed: 0.5 }, 'random: seed must be a non-negative integer, got 0.5'],
      [{ kind: 'pct', depth: 0, seed: 0 }, 'pct: depth must be an integer >= 1, got 0'],
      [{ kind: 'pct', depth: Number.NaN, seed: 0 }, 'pct: depth must be an integer >= 1, got NaN'],
      [{ kind: 'dfs', preemptionBound: -2 }, 'dfs: preemptionBound must be a non-negative integer, got -2'],
      [null, 'strategy must be an object'],
    ];
    for (const [spec, message] of bad) {
      expect(() => validateStrategy(spec as StrategySpec)).toThrow(ExploreOptionError);
      expect(() => validateStrategy(spec as StrategySpec)).toThrow(message);
      // (explore() takes a missing strategy, null included, as the default one.)
      if (spec) expect(() => explore(lostUpdate.fixed, { strategy: spec as StrategySpec })).toThrow(message);
    }
  });

  it.each([
    [{ maxRuns: 0 }, 'budget maxRuns must be a positive integer, got 0'],
    [{ maxRuns: -5 }, 'budget maxRuns must be a positive integer, got -5'],
    [{ maxRuns: Number.NaN }, 'budget maxRuns must be a positive integer, got NaN'],
    [{ maxRuns: 2.5 }, 'budget maxRuns must be a positive integer, got 2.5'],
    [{ maxRuns: Number.POSITIVE_INFINITY }, 'budget maxRuns must be a positive integer, got Infinity'],
    [{ maxSteps: 0 }, 'budget maxSteps must be a positive integer, got 0'],
    [{ maxSteps: 10.5 }, 'budget maxSteps must be a positive integer, got 10.5'],
    [{ maxTimeMs: 0 }, 'budget maxTimeMs must be a positive number, got 0'],
    [{ maxTimeMs: -1 }, 'budget maxTimeMs must be a positive number, got -1'],
    [{ maxTimeMs: Number.NaN }, 'budget maxTimeMs must be a positive number, got NaN'],
    [{ maxTotalSteps: -1 }, 'budget maxTotalSteps must be a positive integer, got -1'],
    [{ maxRuns: '10' }, 'budget maxRuns must be a positive integer, got "10"'],
    [{ maxRun: 10 }, "unknown budget 'maxRun'"],
  ])('budgets %j are an ExploreOptionError naming the budget', (budgets, message) => {
    const run = () => explore(lostUpdate.fixed, { strategy: dfs(), budgets: budgets as Budgets });
    expect(run).toThrow(ExploreOptionError);
    expect(run).toThrow(message);
  });

  it('accepts a fractional or infinite time budget', () => {
    expect(
      explore(lostUpdate.fixed, { strategy: dfs(), budgets: { maxTimeMs: 0.5 }, clock: fakeClock(0) })
        .endedBy,
    ).toBe('exhausted');
    expect(
      explore(lostUpdate.fixed, { strategy: dfs(), budgets: { maxTimeMs: Number.POSITIVE_INFINITY } })
        .endedBy,
    ).toBe('exhausted');
  });
});
