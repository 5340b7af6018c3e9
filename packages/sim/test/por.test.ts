import { afterAll, describe, expect, it } from 'vitest';
import { dfs, explore, type Program, type RunResult, Var } from '../src/index.js';
import {
  lockedIncrements,
  lostUpdate,
  porCatalogue,
  readersWriters,
  spinCount,
  woundWait,
} from './catalogue.js';
import { bruteForce, strategyRuns, traceKey } from './oracle.js';
import { randomProgram, tinyPrograms } from './random-programs.js';

interface Row {
  program: string;
  traces: number;
  runs: number;
  completed: number;
  pruned: number;
}
const table: Row[] = [];

afterAll(() => {
  if (table.length === 0) return;
  const head = ['program', 'traces', 'completed', 'pruned', 'runs/traces'];
  const rows = table.map((r) => [
    r.program,
    String(r.traces),
    String(r.completed),
    String(r.pruned),
    (r.runs / r.traces).toFixed(2),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  console.log(
    ['DPOR (dfs) against hand-counted Mazurkiewicz traces:', line(head), ...rows.map(line)].join('\n'),
  );
});

/** The distinct traces among complete runs, and how many complete runs there were. */
function completeTraces(runs: RunResult[]): { keys: Set<string>; complete: number } {
  const done = runs.filter((r) => r.status === 'done');
  return { keys: new Set(done.map(traceKey)), complete: done.length };
}

describe('partial-order reduction', () => {
  for (const entry of porCatalogue()) {
    it(`${entry.program.name}: ${entry.traces} traces, each explored exactly once`, () => {
      const r = explore(entry.program, { strategy: dfs(), budgets: { maxRuns: 100_000 } });
      table.push({
        program: entry.program.name,
        traces: entry.traces,
        runs: r.runs,
        completed: r.completedRuns,
        pruned: r.prunedRuns,
      });
      expect(r.failures).toEqual([]);
      expect(r.exhausted).toBe(true);
      // Sleep sets: no two complete runs are the same trace; DPOR: no trace is missed.
      expect(r.completedRuns).toBe(entry.traces);
      expect(r.runs / entry.traces).toBeLessThanOrEqual(2);
    });
  }

  it('the hand counts agree with brute force, and dfs explores exactly the traces brute force finds', () => {
    let checked = 0;
    for (const entry of porCatalogue()) {
      const all = new Set<string>();
      const n = bruteForce(
        entry.program,
        (r) => {
          expect(r.status).toBe('done');
          all.add(traceKey(r));
        },
        2_000,
      );
      if (n === null) continue; // disjoint-5: 168 million interleavings of a single trace
      checked++;
      expect(all.size, entry.program.name).toBe(entry.traces);
      const { keys, complete } = completeTraces(strategyRuns(entry.program));
      expect(complete, entry.program.name).toBe(keys.size);
      expect([...keys].sort(), entry.program.name).toEqual([...all].sort());
    }
    expect(checked).toBe(porCatalogue().length - 1);
  });

  it('agrees with brute force on random programs over every primitive (traces, violations, ratio)', () => {
    let compared = 0;
    let withViolations = 0;
    for (let seed = 0; seed < 300; seed++) {
      const program = randomProgram(seed);
      const all = new Set<string>();
      const outcomes = new Set<string>();
      const n = bruteForce(
        program,
        (r) => {
          if (r.status === 'done') all.add(traceKey(r));
          else outcomes.add(`${r.violation!.kind}: ${r.violation!.message}`);
        },
        300,
      );
      if (n === null) continue; // too big for the oracle
      compared++;
      const runs = strategyRuns(program);
      const { keys, complete } = completeTraces(runs);
      const found = new Set(
        runs.filter((r) => r.violation).map((r) => `${r.violation!.kind}: ${r.violation!.message}`),
      );
      expect(complete, program.name).toBe(keys.size);
      expect([...keys].sort(), program.name).toEqual([...all].sort());
      expect([...found].sort(), program.name).toEqual([...outcomes].sort());
      if (outcomes.size > 0) withViolations++;
      else expect(runs.length / all.size, program.name).toBeLessThanOrEqual(2);
    }
    // The sample is not degenerate: most programs fit the oracle, and some of them fail.
    expect(compared).toBeGreaterThan(200);
    expect(withViolations).toBeGreaterThan(50);
  });

  it('explores each trace of all 320 programs of 3-4 one-step threads exactly once', () => {
    // Two writers and two readers of one variable is the smallest program where Flanagan-Godefroid
    // DPOR with sleep sets (the first version) missed traces.
    let worst = 0;
    for (const program of tinyPrograms()) {
      const all = new Set<string>();
      bruteForce(program, (r) => all.add(traceKey(r)));
      const runs = strategyRuns(program);
      const { keys, complete } = completeTraces(runs);
      expect(complete, program.name).toBe(all.size);
      expect([...keys].sort(), program.name).toEqual([...all].sort());
      worst = Math.max(worst, runs.length / all.size);
    }
    expect(worst).toBeLessThanOrEqual(2);
  });

  it('explores every spin count of a cpu_relax() loop', () => {
    const all: number[] = [];
    bruteForce(spinCount(all), () => {});
    const found: number[] = [];
    strategyRuns(spinCount(found));
    expect(new Set(all)).toEqual(new Set([1, 2, 3, 4, 5]));
    expect(new Set(found)).toEqual(new Set(all));
  });

  it('explores every trace of wound-wait locking (acquire contexts are shared state)', () => {
    const all = new Set<string>();
    const outcomes = new Set<string>();
    bruteForce(woundWait(), (r) => {
      all.add(traceKey(r));
      outcomes.add(r.status);
    });
    expect(outcomes).toEqual(new Set(['done']));
    const { keys, complete } = completeTraces(strategyRuns(woundWait()));
    expect(complete).toBe(keys.size);
    expect([...keys].sort()).toEqual([...all].sort());
  });

  it('explores every value of a data choice, once per trace', () => {
    const program: Program = {
      name: 'choices',
      setup(sim) {
        const x = new Var(sim, 'x', 0);
        sim.spawn('W0', function* () {
          yield* x.write(1);
        });
        sim.spawn('W1', function* () {
          yield* x.write(2);
        });
        sim.spawn('chooser', function* () {
          yield sim.choose(3, 'which');
        });
      },
    };
    const { keys, complete } = completeTraces(strategyRuns(program));
    // The choice commutes with the writes: 2 orders of the writes x 3 values.
    expect(complete).toBe(6);
    expect(keys.size).toBe(6);
  });
});

describe('dfs with locks', () => {
  for (const n of [2, 3, 4]) {
    it(`${n} threads doing lock; x++; unlock: exactly ${n}! complete runs, no failure`, () => {
      const entry = lockedIncrements(n);
      const r = explore(entry.program, { strategy: dfs(), budgets: { maxRuns: 10_000 } });
      expect(r.failures).toEqual([]);
      expect(r.exhausted).toBe(true);
      expect(r.completedRuns).toBe(entry.traces);
      expect(entry.traces).toBe([1, 1, 2, 6, 24][n]);
    });
  }

  it('a preemption bound explores fewer runs, and bound 1 is enough for the lost update', () => {
    const locked = lockedIncrements(4).program;
    const full = explore(locked, { strategy: dfs() });
    const runs = [0, 1, 2].map((b) => explore(locked, { strategy: dfs({ preemptionBound: b }) }));
    for (const r of runs) {
      expect(r.failures).toEqual([]);
      expect(r.endedBy).toBe('exhausted');
    }
    expect(runs[0]!.runs).toBeLessThan(runs[1]!.runs);
    expect(runs[1]!.runs).toBeLessThan(full.runs);
    expect(runs[2]!.runs).toBeLessThanOrEqual(full.runs);
    // Bounded searches do not claim to have covered the whole space.
    expect(runs[0]!.exhausted).toBe(false);
    expect(full.exhausted).toBe(true);

    const b0 = explore(lostUpdate.buggy, { strategy: dfs({ preemptionBound: 0 }) });
    expect(b0.failures).toEqual([]);
    expect(b0.exhausted).toBe(false);
    const b1 = explore(lostUpdate.buggy, { strategy: dfs({ preemptionBound: 1 }) });
    expect(b1.failures[0]?.violation.kind).toBe('assertion');
    const b2 = explore(lostUpdate.buggy, { strategy: dfs({ preemptionBound: 2 }) });
    expect(b2.failures[0]?.violation.kind).toBe('assertion');
  });

  it('a bound that never cuts a choice still proves the space', () => {
    // Readers and writers of one variable with one step each: the bound is never reached.
    const r = explore(readersWriters(1, 1).program, { strategy: dfs({ preemptionBound: 5 }) });
    expect(r.exhausted).toBe(true);
    expect(r.completedRuns).toBe(2);
  });
});
