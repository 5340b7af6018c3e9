/**
 * `pnpm demo`: explores a tiny device-mirror protocol, finds the classic bug (the sequence check
 * done before taking the driver lock), prints its race diagram and replay string, then proves the
 * fixed version correct by exhaustive exploration.
 */
import { dfs, explore, Mutex, type Program, pct, renderRaceDiagram, Var, WaitQueue } from './index.js';

/**
 * A CPU unmaps a page while a device faults it in, following the mmu_interval_notifier protocol in
 * miniature: the CPU opens an invalidation window (the mm sequence goes odd), the driver's
 * invalidate callback records the window in the subscription under the driver lock and clears the
 * device PTE, the CPU zaps its PTE and closes the window. The device samples the subscription
 * sequence (waiting while a window on it is open), reads the CPU PTE, and programs its own PTE
 * unless the sequence moved.
 */
export function mirrorProgram(checkUnderLock: boolean): Program {
  return {
    name: checkUnderLock
      ? 'mirror-fault (retry checked under the lock)'
      : 'mirror-fault (retry checked before the lock)',
    setup(sim) {
      const cpuPte = new Var<string | null>(sim, 'cpu_pte', 'frame#1');
      const devPte = new Var<string | null>(sim, 'dev_pte', null);
      const mmSeq = new Var(sim, 'subscriptions->invalidate_seq', 2);
      const subSeq = new Var(sim, 'mni->invalidate_seq', 1);
      const wq = new WaitQueue(sim, 'subscriptions->wq');
      const update = new Mutex(sim, 'driver->update');
      sim.spawn('CPU0 (munmap)', function* () {
        const cur = 1 + (yield* mmSeq.update((s) => s + 1, 'invalidate_range_start(): window opens'));
        yield* update.lock('invalidate()');
        yield* subSeq.write(cur, 'mmu_interval_set_seq()');
        yield* devPte.write(null, 'clear device PTE');
        yield* update.unlock();
        yield* cpuPte.write(null, 'zap CPU PTE, free frame#1');
        yield* mmSeq.update((s) => s + 1, 'invalidate_range_end(): window closes');
        yield* wq.wakeUpAll();
      });
      sim.spawn('CPU1 (device fault)', function* () {
        for (;;) {
          const start = yield* subSeq.read('mmu_interval_read_begin()');
          if (start === (yield* mmSeq.read()))
            yield* wq.waitEvent(() => mmSeq.value !== start, 'window open: wait');
          const frame = yield* cpuPte.read('hmm_range_fault()');
          if (!checkUnderLock && (yield* subSeq.read('mmu_interval_read_retry()')) !== start) continue;
          yield* update.lock();
          if (checkUnderLock && (yield* subSeq.read('mmu_interval_read_retry()')) !== start) {
            yield* update.unlock();
            continue;
          }
          yield* devPte.write(frame, 'program device PTE');
          yield* update.unlock();
          return;
        }
      });
      return {
        properties: {
          'device maps only what the CPU maps': () =>
            devPte.value === null ||
            devPte.value === cpuPte.value ||
            `device still maps ${devPte.value} after munmap`,
        },
      };
    },
  };
}

function main(): void {
  const buggy = explore(mirrorProgram(false), {
    strategy: pct({ depth: 3, seed: 1 }),
    budgets: { maxRuns: 10_000 },
  });
  const failure = buggy.failures[0];
  console.log(`# ${buggy.program}`);
  console.log(
    `strategy ${buggy.strategy}: ${buggy.runs} runs, ${buggy.steps} steps, ended by ${buggy.endedBy}`,
  );
  if (failure) {
    console.log(renderRaceDiagram(failure.trace));
    console.log(`\nreplay: ${failure.schedule}  (deterministic: ${failure.deterministic})`);
  }
  const fixed = explore(mirrorProgram(true), { strategy: dfs(), budgets: { maxRuns: 100_000 } });
  console.log(`\n# ${fixed.program}`);
  console.log(
    `strategy ${fixed.strategy}: ${fixed.completedRuns} interleavings (+${fixed.prunedRuns} pruned), ended by ${fixed.endedBy}, ` +
      `${fixed.failures.length === 0 && fixed.exhausted ? 'no violation in the whole space' : 'FAILED'}`,
  );
  process.exitCode = failure && fixed.failures.length === 0 && fixed.exhausted ? 0 : 1;
}

main();
