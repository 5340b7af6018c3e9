/**
 * Contexts and lockdep around callbacks (core-mm.md §1.5, §8 items 8-10): what the kernel's
 * lockdep annotations and `non_block_start()` catch, the model reports.
 */
import { kmalloc, Mutex, type Sim } from '@hmmkit/sim';
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
} from '../../src/notifier/index.js';
import { expectClean, expectViolation, makeMm, PAGE, runProgram } from './helpers.js';

/** A driver whose callback takes `lock` (blocking, or trylock when non-blockable). */
function lockingDriver(sim: Sim, lock: Mutex, opts: { alwaysBlock?: boolean } = {}) {
  const sub = new MmuIntervalNotifier(sim, 'drv');
  const ops: MmuIntervalNotifierOps = {
    *invalidate(s, range, curSeq) {
      if (opts.alwaysBlock || range.flags & 1) yield* lock.lock();
      else if (!(yield* lock.trylock())) return false;
      yield* mmuIntervalSetSeq(s, curSeq);
      yield* lock.unlock();
      return true;
    },
  };
  return { sub, ops };
}

function* invalidate(mm: Mm, start = 0, end = PAGE, event: string = MmuNotifyEvent.UNMAP) {
  const r = new MmuNotifierRange({ mm, start, end, event: event as MmuNotifyEvent });
  yield* mmuNotifierInvalidateRangeStart(r);
  yield* mmuNotifierInvalidateRangeEnd(r);
}

describe('lockdep: waiting for invalidations while holding a lock the callbacks take (§8.9)', () => {
  for (const fn of ['read_begin', 'remove'] as const) {
    for (const order of ['callback first', 'waiter first'] as const) {
      it(`${fn} under the driver lock is a lock-order violation (${order})`, () => {
        const r = runProgram(`${fn}-${order}`, (sim) => {
          const mm = makeMm(sim);
          const lock = new Mutex(sim, 'drv->mutex');
          const { sub, ops } = lockingDriver(sim, lock);
          sim.spawn('drv', function* () {
            yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
            if (order === 'callback first') yield* invalidate(mm); // teaches lockdep: start map -> drv->mutex
            yield* lock.lock();
            if (fn === 'read_begin') yield* mmuIntervalReadBegin(sub);
            else yield* mmuIntervalNotifierRemove(sub);
            yield* lock.unlock();
            if (order === 'waiter first' && fn === 'read_begin') yield* invalidate(mm);
          });
          if (order === 'waiter first' && fn === 'remove') {
            // The subscriber is gone after remove; a second one with the same lock class shows it.
            sim.spawn('drv2', function* () {
              const other = lockingDriver(sim, new Mutex(sim, 'drv2->mutex', { lockClass: 'drv->mutex' }));
              yield* mmuIntervalNotifierInsert(other.sub, mm, 0, PAGE, other.ops);
              yield* invalidate(mm);
            });
          }
        });
        const msg = expectViolation(r, 'lock-order');
        expect(msg).toMatch(/__mmu_notifier_invalidate_range_start_map|drv->mutex/);
      });
    }
  }

  it('read_begin without the driver lock is fine', () => {
    const r = runProgram('ok', (sim) => {
      const mm = makeMm(sim);
      const lock = new Mutex(sim, 'drv->mutex');
      const { sub, ops } = lockingDriver(sim, lock);
      sim.spawn('drv', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
        yield* invalidate(mm);
        const seq = yield* mmuIntervalReadBegin(sub);
        yield* lock.lock();
        expect(seq).toBe(3);
        yield* lock.unlock();
        yield* mmuIntervalNotifierRemove(sub);
      });
    });
    expectClean(r);
  });
});

describe('calling remove or read_begin from a callback (§8.9)', () => {
  for (const fn of ['remove', 'read_begin'] as const) {
    it(`${fn} of its own subscriber from inside invalidate() is reported as a deadlock`, () => {
      const r = runProgram(`${fn}-in-callback`, (sim) => {
        const mm = makeMm(sim);
        const sub = new MmuIntervalNotifier(sim, 'drv');
        const ops: MmuIntervalNotifierOps = {
          *invalidate(s, range, curSeq) {
            yield* mmuIntervalSetSeq(s, curSeq);
            if (range.event === MmuNotifyEvent.UNMAP) {
              if (fn === 'remove') yield* mmuIntervalNotifierRemove(s);
              else yield* mmuIntervalReadBegin(s);
            }
            return true;
          },
        };
        sim.spawn('cpu', function* () {
          yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
          yield* invalidate(mm);
        });
      });
      const msg = expectViolation(r, 'deadlock');
      expect(msg).toMatch(/inside an mmu notifier invalidation/);
    });
  }

  it('remove from a RELEASE callback (no lockdep map held at exit) deadlocks for real', () => {
    const r = runProgram('remove-in-release', (sim) => {
      const mm = makeMm(sim);
      const sub = new MmuIntervalNotifier(sim, 'drv');
      const ops: MmuIntervalNotifierOps = {
        *invalidate(s, range, curSeq) {
          yield* mmuIntervalSetSeq(s, curSeq);
          if (range.event === MmuNotifyEvent.RELEASE) yield* mmuIntervalNotifierRemove(s);
          return true;
        },
      };
      sim.spawn('exit', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
        yield* mmuNotifierRelease(mm);
      });
    });
    expectViolation(r, 'deadlock');
  });
});

describe('callback contexts', () => {
  it('a callback that allocates with GFP_KERNEL is reported even on a blockable range (reclaim recursion)', () => {
    for (const kind of ['interval', 'classic'] as const) {
      const r = runProgram(`gfp-kernel-${kind}`, (sim) => {
        const mm = makeMm(sim);
        sim.spawn('cpu', function* () {
          if (kind === 'interval') {
            const sub = new MmuIntervalNotifier(sim, 'drv');
            yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, {
              *invalidate(s, _r, curSeq) {
                yield* kmalloc(sim, 64, 'GFP_KERNEL', 'drv bookkeeping');
                yield* mmuIntervalSetSeq(s, curSeq);
                return true;
              },
            });
          } else {
            yield* mmuNotifierRegister(
              new MmuNotifier('drv', {
                *invalidateRangeStart() {
                  yield* kmalloc(sim, 64, 'GFP_KERNEL', 'drv bookkeeping');
                  return 0;
                },
              }),
              mm,
            );
          }
          yield* invalidate(mm);
        });
      });
      expectViolation(r, 'alloc-in-forbidden-context');
    }
  });

  it('GFP_NOWAIT in a callback is allowed', () => {
    const r = runProgram('gfp-nowait', (sim) => {
      const mm = makeMm(sim);
      const sub = new MmuIntervalNotifier(sim, 'drv');
      sim.spawn('cpu', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, {
          *invalidate(s, _r, curSeq) {
            yield* kmalloc(sim, 64, 'GFP_NOWAIT', 'finish handle');
            yield* mmuIntervalSetSeq(s, curSeq);
            return true;
          },
        });
        yield* invalidate(mm);
      });
    });
    expectClean(r);
  });

  it('a callback that sleeps on a non-blockable range is reported (interval and classic)', () => {
    for (const kind of ['interval', 'classic'] as const) {
      const r = runProgram(`sleep-nonblock-${kind}`, (sim) => {
        const mm = makeMm(sim);
        const lock = new Mutex(sim, 'drv->mutex');
        sim.spawn('oom_reaper', function* () {
          if (kind === 'interval') {
            const { sub, ops } = lockingDriver(sim, lock, { alwaysBlock: true });
            yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
          } else {
            yield* mmuNotifierRegister(
              new MmuNotifier('drv', {
                *invalidateRangeStart() {
                  yield* lock.lock();
                  yield* lock.unlock();
                  return 0;
                },
              }),
              mm,
            );
          }
          yield* mmuNotifierInvalidateRangeStartNonblock(
            new MmuNotifierRange({ mm, start: 0, end: PAGE, event: MmuNotifyEvent.UNMAP }),
          );
        });
      });
      expectViolation(r, 'block-in-nonblockable');
    }
  });

  it('a trylock-based callback on a non-blockable range is fine', () => {
    const r = runProgram('trylock', (sim) => {
      const mm = makeMm(sim);
      const lock = new Mutex(sim, 'drv->mutex');
      const { sub, ops } = lockingDriver(sim, lock);
      sim.spawn('oom_reaper', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
        const rg = new MmuNotifierRange({ mm, start: 0, end: PAGE, event: MmuNotifyEvent.UNMAP });
        expect(yield* mmuNotifierInvalidateRangeStartNonblock(rg)).toBe(0);
        yield* mmuNotifierInvalidateRangeEnd(rg);
      });
    });
    expectClean(r);
  });
});
