/**
 * The canonical driver loop of the README ("## Notifiers"), kept runnable: this file holds the
 * same code, and explores it exhaustively.
 */
import { dfs, explore, Mutex, type Program, type Routine, renderRaceDiagram, Var } from '@hmmkit/sim';
import { expect, it } from 'vitest';
import { System } from '../../src/index.js';
import {
  MmuIntervalNotifier,
  MmuNotifierRange,
  MmuNotifyEvent,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierRangeBlockable,
  notifierInvariants,
} from '../../src/notifier/index.js';

// --- README example starts here ---
const PAGE = 0x1000;
const ADDR = 0x10000;

const program: Program = {
  name: 'canonical driver loop',
  setup(sim) {
    const mm = new System(sim).createMm();
    const cpuPte = new Var<number | null>(sim, 'pte', 42); // stands for the CPU page table
    const devicePte = new Var<number | null>(sim, 'device pte', null); // the device's copy
    const lock = new Mutex(sim, 'driver->update');
    const sub = new MmuIntervalNotifier(sim, 'driver->notifier');

    const ops = {
      // invalidate(): under the driver lock, publish the window's sequence and tear down.
      *invalidate(s: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): Routine<boolean> {
        if (mmuNotifierRangeBlockable(range)) yield* lock.lock();
        else if (!(yield* lock.trylock())) return false; // non-blockable: never sleep
        yield* mmuIntervalSetSeq(s, curSeq);
        yield* devicePte.write(null);
        yield* lock.unlock();
        return true;
      },
    };

    sim.spawn('device fault', function* () {
      yield* mmuIntervalNotifierInsert(sub, mm, ADDR, PAGE, ops);
      for (;;) {
        const seq = yield* mmuIntervalReadBegin(sub); // waits out a window that covers us
        const pfn = yield* cpuPte.read(); // hmm_range_fault()
        yield* lock.lock();
        if (yield* mmuIntervalReadRetry(sub, seq)) {
          yield* lock.unlock(); // collided with an invalidation: sample again
          continue;
        }
        yield* devicePte.write(pfn); // still current: program the device
        yield* lock.unlock();
        return;
      }
    });

    sim.spawn('cpu munmap', function* () {
      // mmap_lock (write) also keeps registration out of the start..end bracket.
      yield* mm.mmapLock.downWrite();
      const range = new MmuNotifierRange({ mm, start: ADDR, end: ADDR + PAGE, event: MmuNotifyEvent.UNMAP });
      yield* mmuNotifierInvalidateRangeStart(range);
      yield* cpuPte.write(null); // the PTE changes only inside start/end
      yield* mmuNotifierInvalidateRangeEnd(range);
      yield* mm.mmapLock.upWrite();
    });

    return {
      invariant: {
        ...notifierInvariants(mm),
        // Outside a window the device maps nothing the CPU does not.
        mirror: () => {
          const idle = (mm.notifierSubscriptions?.activeInvalidateRanges ?? 0) === 0;
          if (idle && devicePte.value !== null && devicePte.value !== cpuPte.value) return 'stale device PTE';
        },
      },
    };
  },
};

// explore(program, { strategy: dfs() }) covers every interleaving: no failure.
// --- README example ends here ---

it('the README example explores clean, exhaustively', () => {
  const r = explore(program, { strategy: dfs() });
  if (r.failures[0]) expect.fail(renderRaceDiagram(r.failures[0].trace));
  expect(r.exhausted).toBe(true);
});
