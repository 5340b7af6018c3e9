import { describe, expect, it } from 'vitest';
import { type Program, Var, dfs, explore, pct, random, renderRaceDiagram } from '../src/index.js';

const lostUpdate: Program = {
  name: 'lost-update',
  setup(sim) {
    const x = new Var(sim, 'counter', 0);
    for (const name of ['CPU0', 'CPU1']) {
      sim.spawn(name, function* () {
        const v = yield* x.read();
        yield* x.write(v + 1);
      });
    }
    return { properties: { 'counter == 2': () => x.value === 2 } };
  },
};

function writers(n: number): Program {
  return {
    name: `writers-${n}`,
    setup(sim) {
      const x = new Var(sim, 'x', 0);
      for (let i = 0; i < n; i++) sim.spawn(`T${i}`, function* () { yield* x.write(i); });
    },
  };
}

describe('smoke', () => {
  it('dfs finds lost update', () => {
    const r = explore(lostUpdate, { strategy: dfs() });
    expect(r.failures.length).toBe(1);
    console.log(renderRaceDiagram(r.failures[0]!.trace), r.failures[0]!.schedule, r.runs);
  });
  it('pct and random find lost update', () => {
    expect(explore(lostUpdate, { strategy: pct({ seed: 1 }) }).failures.length).toBe(1);
    expect(explore(lostUpdate, { strategy: random(1) }).failures.length).toBe(1);
  });
  it('counts', () => {
    for (const n of [1, 2, 3, 4]) {
      const r = explore(writers(n), { strategy: dfs() });
      console.log(n, r.runs, r.completedRuns, r.prunedRuns, r.endedBy);
    }
  });
});
