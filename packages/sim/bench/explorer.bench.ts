/**
 * Explorer throughput: steps/s and runs/s on the standard program (4 threads x 50 operations),
 * without and with tracing, for each strategy.
 */
import { runSuite } from '@hmmkit/bench-utils';
import { dfs, explore, type Program, pct, RandomChooser, random, Sim, Var } from '../src/index.js';

const THREADS = 4;
const OPS = 50;

/** Each thread alternates between its own variable and one shared variable. */
export const standardProgram: Program = {
  name: 'standard-4x50',
  setup(sim) {
    const shared = new Var(sim, 'shared', 0);
    for (let t = 0; t < THREADS; t++) {
      const own = new Var(sim, `own${t}`, 0);
      sim.spawn(`T${t}`, function* () {
        for (let i = 0; i < OPS; i++) {
          if (i % 5 === 0) yield* shared.update((v) => v + 1);
          else if (i % 2 === 0) yield* own.write(i);
          else yield* own.read();
        }
      });
    }
  },
};

/** Steps of one run: one start step plus OPS operations per thread. */
const STEPS_PER_RUN = THREADS * (OPS + 1);
const RUNS = 20;

function simRuns(trace: boolean): void {
  for (let i = 0; i < RUNS; i++) new Sim({ trace }).run(standardProgram, new RandomChooser(i));
}

export async function benchExplorer(): Promise<void> {
  const rows = await runSuite('sim-explorer', [
    {
      group: 'scheduler',
      name: 'no trace',
      unit: 'steps',
      ops: RUNS * STEPS_PER_RUN,
      fn: () => simRuns(false),
    },
    {
      group: 'scheduler',
      name: 'trace on',
      unit: 'steps',
      ops: RUNS * STEPS_PER_RUN,
      baseline: 'no trace',
      fn: () => simRuns(true),
    },
    {
      group: 'explore',
      name: 'random',
      unit: 'steps',
      ops: RUNS * STEPS_PER_RUN,
      fn: () => {
        explore(standardProgram, { strategy: random(1), budgets: { maxRuns: RUNS } });
      },
    },
    {
      group: 'explore',
      name: 'pct d=3',
      unit: 'steps',
      ops: RUNS * STEPS_PER_RUN,
      baseline: 'random',
      fn: () => {
        explore(standardProgram, { strategy: pct({ depth: 3, seed: 1 }), budgets: { maxRuns: RUNS } });
      },
    },
    {
      group: 'explore',
      name: 'dfs (DPOR)',
      unit: 'steps',
      ops: RUNS * STEPS_PER_RUN,
      baseline: 'random',
      fn: () => {
        const r = explore(standardProgram, { strategy: dfs(), budgets: { maxRuns: RUNS } });
        if (r.steps !== RUNS * STEPS_PER_RUN)
          throw new Error(`dfs made ${r.steps} steps, expected ${RUNS * STEPS_PER_RUN}`);
      },
    },
  ]);
  const noTrace = rows.find((r) => r.name === 'no trace');
  if (noTrace) {
    const runsPerSecond = noTrace.opsPerSecond / STEPS_PER_RUN;
    console.log(
      `scheduler without tracing: ${(noTrace.opsPerSecond / 1e6).toFixed(2)}M steps/s, ${Math.round(runsPerSecond)} runs/s (target >= 2M steps/s)`,
    );
  }
}
