import { dfs, explore, Mutex, type Program, renderRaceDiagram, Var } from '@hmmkit/sim';

// Two CPUs increment a counter; the second version forgets the lock.
function counter(locked: boolean): Program {
  return {
    name: locked ? 'locked increment' : 'racy increment',
    setup(sim) {
      const lock = new Mutex(sim, 'counter_lock');
      const count = new Var(sim, 'count', 0);
      for (const name of ['CPU0', 'CPU1']) {
        sim.spawn(name, function* () {
          if (locked) yield* lock.lock();
          const v = yield* count.read();
          yield* count.write(v + 1);
          if (locked) yield* lock.unlock();
        });
      }
      return { properties: { 'both increments land': () => count.value === 2 } };
    },
  };
}

const racy = explore(counter(false), { strategy: dfs() });
console.log(renderRaceDiagram(racy.failures[0]!.trace));
console.log('replay with', racy.failures[0]!.schedule);

const fixed = explore(counter(true), { strategy: dfs() });
console.log(fixed.exhausted && fixed.failures.length === 0); // true: every interleaving checked
