/**
 * The classic-failure window leak (core-mm.md §8.8, "observation"), modelled as the kernel has it.
 *
 * `__mmu_notifier_invalidate_range_start()` runs the interval layer first; if that succeeds it has
 * counted the invalidation in (`active_invalidate_ranges++`, and the sequence made odd if a
 * subscriber overlapped). If a classic subscriber then fails its non-blockable start, the function
 * returns -EAGAIN without `mn_itree_inv_end()`, and `mmu_notifier_invalidate_range_start_nonblock()`
 * callers (the OOM reaper) must not call end. Nobody ever counts that invalidation out.
 */
import { EAGAIN, Mutex, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import type { Mm } from '../../src/mm.js';
import {
  MmuIntervalNotifier,
  type MmuIntervalNotifierOps,
  MmuNotifier,
  MmuNotifierRange,
  MmuNotifyEvent,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalSetSeq,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierInvalidateRangeStartNonblock,
  mmuNotifierRegister,
  mmuNotifierRelease,
  notifierInvariants,
} from '../../src/notifier/index.js';
import { mnItreeInvEnd } from '../../src/notifier/interval.js';
import { done, expectClean, expectViolation, makeMm, PAGE, runProgram } from './helpers.js';

/** An interval driver that uses trylock when the range is not blockable (it succeeds here). */
function intervalDriver(sim: Sim) {
  const lock = new Mutex(sim, 'drv->mutex');
  const sub = new MmuIntervalNotifier(sim, 'drv');
  const ops: MmuIntervalNotifierOps = {
    *invalidate(s, range, curSeq) {
      if (range.flags & 1) yield* lock.lock();
      else if (!(yield* lock.trylock())) return false;
      yield* mmuIntervalSetSeq(s, curSeq);
      yield* lock.unlock();
      return true;
    },
  };
  return { sub, ops };
}

/** A classic subscriber that cannot invalidate without sleeping: -EAGAIN when non-blockable. */
function cannotBlockClassic(): MmuNotifier {
  return new MmuNotifier('classic', {
    invalidateRangeStart: (_s, range) => done(range.flags & 1 ? 0 : -EAGAIN),
  });
}

/** The OOM reaper's attempt on one VMA: skip it on -EAGAIN (no PTE change, no end). */
function* oomReapVma(mm: Mm, start: number, end: number) {
  const range = new MmuNotifierRange({ mm, start, end, event: MmuNotifyEvent.UNMAP, flags: 0 });
  const ret = yield* mmuNotifierInvalidateRangeStartNonblock(range);
  if (ret) return ret;
  yield* mmuNotifierInvalidateRangeEnd(range);
  return 0;
}

describe('classic-failure window leak (kernel as it is)', () => {
  it('a non-blocking start where the interval layer succeeded and a classic subscriber failed leaves the window open forever', () => {
    const state: string[] = [];
    const r = runProgram('leak', (sim) => {
      const mm = makeMm(sim);
      const drv = intervalDriver(sim);
      sim.spawn('oom_reaper', function* () {
        yield* mmuIntervalNotifierInsert(drv.sub, mm, 0x10000, PAGE, drv.ops);
        yield* mmuNotifierRegister(cannotBlockClassic(), mm);
        expect(yield* oomReapVma(mm, 0x10000, 0x11000)).toBe(-EAGAIN);
        state.push(mm.notifierSubscriptions!.describe());
        // Later, complete invalidations of other ranges never close the window either.
        const other = new MmuNotifierRange({ mm, start: 0x80000, end: 0x81000, event: MmuNotifyEvent.CLEAR });
        yield* mmuNotifierInvalidateRangeStart(other);
        yield* mmuNotifierInvalidateRangeEnd(other);
        state.push(mm.notifierSubscriptions!.describe());
      });
      return { invariant: notifierInvariants(mm) };
    });
    // The state machine's own invariants still hold (odd with active > 0 is a legal state)...
    expectClean(r);
    // ...but the window never closes: active stays 1 and the sequence stays odd.
    expect(state).toEqual([
      'EXCLUSIVE seq=3 active=1 tree=1 deferred=0 classic=1',
      'EXCLUSIVE seq=3 active=1 tree=1 deferred=0 classic=1',
    ]);
  });

  it('consequence: the driver’s next read_begin sleeps forever (reported as a deadlock)', () => {
    const r = runProgram('leak-read_begin', (sim) => {
      const mm = makeMm(sim);
      const drv = intervalDriver(sim);
      sim.spawn('oom_reaper', function* () {
        yield* mmuIntervalNotifierInsert(drv.sub, mm, 0x10000, PAGE, drv.ops);
        yield* mmuNotifierRegister(cannotBlockClassic(), mm);
        yield* oomReapVma(mm, 0x10000, 0x11000);
      });
      sim.spawn('device fault', function* () {
        yield* mmuIntervalReadBegin(drv.sub);
      });
    });
    const msg = expectViolation(r, 'deadlock');
    expect(msg).toMatch(/device fault/);
  });

  it('consequence: at exit, RELEASE cannot close it, and the driver’s remove() at teardown hangs', () => {
    const r = runProgram('leak-teardown', (sim) => {
      const mm = makeMm(sim);
      const drv = intervalDriver(sim);
      sim.spawn('oom_reaper', function* () {
        yield* mmuIntervalNotifierInsert(drv.sub, mm, 0x10000, PAGE, drv.ops);
        yield* mmuNotifierRegister(cannotBlockClassic(), mm);
        yield* oomReapVma(mm, 0x10000, 0x11000);
        yield* mmuNotifierRelease(mm); // exit_mmap
        expect(mm.notifierSubscriptions!.describe()).toBe(
          'EXCLUSIVE seq=3 active=1 tree=1 deferred=0 classic=0',
        );
        yield* mmuIntervalNotifierRemove(drv.sub); // driver file release
      });
    });
    expectViolation(r, 'deadlock');
  });

  it('even with no interval hit (PARTIAL leak), the next insert turns the sequence odd for good', () => {
    const r = runProgram('leak-partial', (sim) => {
      const mm = makeMm(sim);
      const drv = intervalDriver(sim);
      const late = intervalDriver(sim);
      sim.spawn('oom_reaper', function* () {
        yield* mmuIntervalNotifierInsert(drv.sub, mm, 0x10000, PAGE, drv.ops);
        yield* mmuNotifierRegister(cannotBlockClassic(), mm);
        yield* oomReapVma(mm, 0x50000, 0x51000); // overlaps no interval subscriber
        expect(mm.notifierSubscriptions!.describe()).toBe(
          'PARTIAL seq=2 active=1 tree=1 deferred=0 classic=1',
        );
        yield* mmuIntervalNotifierInsert(late.sub, mm, 0x20000, PAGE, late.ops);
        expect(mm.notifierSubscriptions!.invalidateSeq).toBe(3);
        yield* mmuIntervalReadBegin(late.sub); // sleeps forever
      });
    });
    expectViolation(r, 'deadlock');
  });

  it('the missing mn_itree_inv_end() is exactly what is lost: adding it restores the state machine', () => {
    const r = runProgram('leak-fixed-by-hand', (sim) => {
      const mm = makeMm(sim);
      const drv = intervalDriver(sim);
      sim.spawn('oom_reaper', function* () {
        yield* mmuIntervalNotifierInsert(drv.sub, mm, 0x10000, PAGE, drv.ops);
        yield* mmuNotifierRegister(cannotBlockClassic(), mm);
        yield* oomReapVma(mm, 0x10000, 0x11000);
        // What a fix in __mmu_notifier_invalidate_range_start() would do on the hlist error path.
        yield* mnItreeInvEnd(mm.notifierSubscriptions!);
        expect(mm.notifierSubscriptions!.describe()).toBe('IDLE seq=4 active=0 tree=1 deferred=0 classic=1');
        expect(yield* mmuIntervalReadBegin(drv.sub)).toBe(3);
        yield* mmuIntervalNotifierRemove(drv.sub);
      });
      return { invariant: notifierInvariants(mm) };
    });
    expectClean(r);
  });

  it('no leak when the interval layer itself fails (it undoes its accounting) or when only classic subscribers exist', () => {
    const r = runProgram('no-leak', (sim) => {
      const mm = makeMm(sim);
      const lock = new Mutex(sim, 'drv->mutex');
      const sub = new MmuIntervalNotifier(sim, 'drv');
      const ops: MmuIntervalNotifierOps = {
        *invalidate(s, range, curSeq) {
          if (!(range.flags & 1) && !(yield* lock.trylock())) return false;
          if (range.flags & 1) yield* lock.lock();
          yield* mmuIntervalSetSeq(s, curSeq);
          yield* lock.unlock();
          return true;
        },
      };
      sim.spawn('oom_reaper', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0x10000, PAGE, ops);
        yield* mmuNotifierRegister(cannotBlockClassic(), mm);
        yield* lock.lock(); // the driver is busy: the interval callback fails first
        expect(yield* oomReapVma(mm, 0x10000, 0x11000)).toBe(-EAGAIN);
        yield* lock.unlock();
        expect(mm.notifierSubscriptions!.describe()).toBe('IDLE seq=4 active=0 tree=1 deferred=0 classic=1');
      });
      return { invariant: notifierInvariants(mm) };
    });
    expectClean(r);
  });
});
