import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeSchedule,
  dfs,
  type ExploreResult,
  encodeSchedule,
  explore,
  Mutex,
  type Program,
  pct,
  random,
  replay,
  replayRun,
  runOnce,
  SCHEDULE_PREFIX,
  type StrategySpec,
  traceToJson,
  Var,
} from '../src/index.js';
import { catalogue, lockedIncrements } from './catalogue.js';
import { strategyRuns } from './oracle.js';
import { randomProgram } from './random-programs.js';

/** A larger program: four threads over shared and private variables, with locks and choices. */
const busy: Program = {
  name: 'busy',
  setup(sim) {
    const shared = new Var(sim, 'shared', 0);
    const lock = new Mutex(sim, 'lock');
    for (let t = 0; t < 4; t++) {
      const own = new Var(sim, `own${t}`, 0);
      sim.spawn(`T${t}`, function* () {
        for (let i = 0; i < 12; i++) {
          if (i % 4 === 0 && t % 2 === 0) {
            yield* lock.lock();
            yield* shared.write((yield* shared.read()) + 1);
            yield* lock.unlock();
          } else if (i % 4 === 0) {
            yield* shared.write((yield* shared.read()) + 1);
          } else if (i % 3 === 0) yield* own.write((yield sim.choose(3, 'value')) as number);
          else yield* own.read();
        }
      });
    }
    return { properties: { 'all increments': () => shared.value === 12 || 'lost' } };
  },
};

const programs: Program[] = [busy, ...catalogue.map((e) => e.buggy), ...[3, 11, 26, 40].map(randomProgram)];

describe('schedule strings', () => {
  it('decode(encode(choices)) is the identity', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 300 }), { maxLength: 200 }), (choices) => {
        const s = encodeSchedule(choices);
        expect(s.startsWith(SCHEDULE_PREFIX)).toBe(true);
        expect(decodeSchedule(s)).toEqual(choices);
      }),
    );
  });

  it('run-length encodes repeats', () => {
    expect(encodeSchedule([0, 0, 0, 0, 1, 1, 2])).toBe('s1:0x4.1.1.2');
    expect(decodeSchedule('s1:0x4.1.1.2')).toEqual([0, 0, 0, 0, 1, 1, 2]);
    expect(encodeSchedule([])).toBe('s1:');
    expect(decodeSchedule(' s1: ')).toEqual([]);
  });
});

describe('replay round trip', () => {
  for (const [name, strategy] of [
    ['random', (seed: number) => random(seed)],
    ['pct', (seed: number) => pct({ depth: 3, seed })],
  ] as const) {
    it(`every ${name} run replays from its schedule to the same hash, steps and violation`, () => {
      let replayed = 0;
      let failing = 0;
      for (const program of programs) {
        for (let seed = 0; seed < 4; seed++) {
          for (const run of strategyRuns(program, strategy(seed), 10)) {
            // The full list of choices, and the string with only the significant ones.
            const full = encodeSchedule(run.choices);
            const short = encodeSchedule(run.choices.slice(0, run.significant));
            expect(short.length).toBeLessThanOrEqual(full.length);
            for (const schedule of [full, short]) {
              const again = replayRun(program, schedule);
              expect(again.hash, `${program.name} ${schedule}`).toBe(run.hash);
              expect(again.steps).toBe(run.steps);
              expect(again.status).toBe(run.status);
              expect(again.violation).toEqual(run.violation);
              expect(again.choices).toEqual(run.choices);
            }
            replayed++;
            if (run.violation) failing++;
          }
        }
      }
      expect(replayed).toBe(programs.length * 40);
      expect(failing).toBeGreaterThan(20);
    });
  }

  it('every dfs run replays too (DPOR records the same choices a replay makes)', () => {
    for (const program of [lockedIncrements(3).program, ...[3, 11, 26].map(randomProgram)]) {
      for (const run of strategyRuns(program, dfs())) {
        if (run.status === 'pruned') continue;
        const again = runOnce(program, run.choices.slice(0, run.significant));
        expect(again.hash).toBe(run.hash);
        expect(again.violation).toEqual(run.violation);
      }
    }
  });

  it('replay(schedule) as a strategy reproduces the failure it came from', () => {
    for (const entry of catalogue) {
      const r = explore(entry.buggy, { strategy: dfs(), budgets: { maxRuns: 20_000, ...entry.budgets } });
      const f = r.failures[0]!;
      const again = explore(entry.buggy, { strategy: replay(f.schedule), budgets: entry.budgets });
      expect(again.runs).toBe(1);
      expect(again.endedBy).toBe('failure');
      expect(again.failures[0]!.violation).toEqual(f.violation);
      expect(traceToJson(again.failures[0]!.trace)).toEqual(traceToJson(f.trace));
    }
  });
});

/** An exploration's result as a string, without its wall time. */
function fingerprint(r: ExploreResult): string {
  const { elapsedMs: _, failures, ...rest } = r;
  return JSON.stringify({
    ...rest,
    failures: failures.map((f) => ({ ...f, trace: traceToJson(f.trace, f.schedule) })),
  });
}

describe('determinism', () => {
  const strategies: StrategySpec[] = [
    random(5),
    pct({ depth: 3, seed: 5 }),
    pct({ depth: 5, seed: 9 }),
    dfs(),
  ];
  for (const strategy of strategies) {
    it(`the same exploration twice is identical, byte for byte (${strategy.kind})`, () => {
      for (const program of programs) {
        const options = { strategy, budgets: { maxRuns: 200, maxSteps: 500 }, stopOnFailure: false };
        const a = explore(program, options);
        const b = explore(program, options);
        expect(fingerprint(b)).toBe(fingerprint(a));
        for (const f of a.failures) expect(f.deterministic).toBe(true);
      }
    });
  }

  it('different seeds give different explorations', () => {
    const a = explore(busy, { strategy: random(1), budgets: { maxRuns: 20 }, stopOnFailure: false });
    const b = explore(busy, { strategy: random(2), budgets: { maxRuns: 20 }, stopOnFailure: false });
    expect(fingerprint(a)).not.toBe(fingerprint(b));
  });
});

describe('uncontrolled nondeterminism', () => {
  /** A program that behaves differently every other time it is set up (state outside the sim). */
  function flaky(): Program {
    let setups = 0;
    return {
      name: 'flaky',
      setup(sim) {
        const odd = ++setups % 2 === 1;
        const x = new Var(sim, 'x', 0);
        sim.spawn('T0', function* () {
          yield* x.write(1);
          if (odd) yield* x.write(2);
        });
        sim.spawn('T1', function* () {
          yield* x.read();
        });
        return { properties: { 'x is 1': () => x.value === 1 } };
      },
    };
  }

  it('a failure that does not reproduce is reported as nondeterminism (random)', () => {
    const r = explore(flaky(), { strategy: random(0) });
    const f = r.failures[0]!;
    expect(f.deterministic).toBe(false);
    expect(f.violation.kind).toBe('nondeterminism');
    expect(f.violation.message).toContain(
      "replaying the schedule of a 'assertion' failure gave a different run",
    );
    expect(f.violation.details).toEqual(["original: property 'x is 1' does not hold"]);
  });

  it('dfs notices when a re-run of a recorded prefix diverges', () => {
    let setups = 0;
    const program: Program = {
      name: 'diverging',
      setup(sim) {
        const n = ++setups;
        const x = new Var(sim, 'x', 0);
        for (let t = 0; t < (n === 1 ? 2 : 3); t++) {
          sim.spawn(`T${t}`, function* () {
            yield* x.write(t);
          });
        }
      },
    };
    const r = explore(program, { strategy: dfs() });
    expect(r.failures.map((f) => f.violation.kind)).toEqual(['nondeterminism']);
    expect(r.failures[0]!.violation.message).toMatch(/^uncontrolled nondeterminism: /);
  });

  it('a deterministic failure is not flagged', () => {
    const r = explore(catalogue[0]!.buggy, { strategy: random(0) });
    expect(r.failures[0]!.deterministic).toBe(true);
    expect(r.failures[0]!.violation.kind).toBe('assertion');
  });
});
