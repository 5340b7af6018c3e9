/**
 * mmu_interval_notifier: the state machine of core-mm.md §2.4-2.5, one test per transition, and
 * the subscriber API (insert/insert_locked/remove/read_begin/read_retry/check_retry/set_seq).
 */
import { Completion, EINVAL, ENOMEM, type Program, runOnce, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  EOVERFLOW,
  intervalNotifierInTree,
  MMU_NOTIFIER_RANGE_BLOCKABLE,
  MmuIntervalNotifier,
  MmuIntervalNotifierFinish,
  MmuNotifierRange,
  MmuNotifyEvent,
  mmuIntervalCheckRetry,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierInsertLocked,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierInvalidateRangeStartNonblock,
  mmuNotifierRelease,
  notifierDebug,
  notifierInvariants,
  ULONG_MAX,
} from '../../src/notifier/index.js';
import {
  done,
  expectClean,
  expectViolation,
  type IntervalCall,
  makeMm,
  PAGE,
  recordingInterval,
  runProgram,
} from './helpers.js';

const range = (mm: ReturnType<typeof makeMm>, start: number, end: number, event = MmuNotifyEvent.UNMAP) =>
  new MmuNotifierRange({ mm, start, end, event });

describe('interval notifier: insert', () => {
  it('sets the mm up for interval subscribers on first insert, with invalidate_seq 2', () => {
    let result = 0;
    let seq = 0;
    const r = runProgram('insert', (sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = recordingInterval(sim, 'A', []);
      sim.spawn('drv', function* () {
        result = yield* mmuIntervalNotifierInsert(sub, mm, 0x1000, 0x2000, ops);
        seq = sub.invalidateSeq.value;
        expect(mm.notifierSubscriptions!.hasItree).toBe(true);
        expect(mm.notifierSubscriptions!.invalidateSeq).toBe(2);
        expect(intervalNotifierInTree(sub)).toBe(true);
        expect([sub.start, sub.last]).toEqual([0x1000, 0x2fff]);
        expect(mm.mmCount).toBe(2); // mmgrab, paired with remove's mmdrop
      });
    });
    expectClean(r);
    expect(result).toBe(0);
    expect(seq).toBe(1); // IDLE insert: seq - 1, odd and different from the current
  });

  it('rejects an empty or wrapping interval with -EOVERFLOW, changing nothing', () => {
    const results: number[] = [];
    const r = runProgram('eoverflow', (sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = recordingInterval(sim, 'A', []);
      sim.spawn('drv', function* () {
        results.push(yield* mmuIntervalNotifierInsert(sub, mm, 0x1000, 0, ops));
        results.push(yield* mmuIntervalNotifierInsert(sub, mm, ULONG_MAX, 2, ops));
        expect(sub.state).toBe('idle');
        expect(mm.notifierSubscriptions!.itree.size).toBe(0);
        expect(mm.mmCount).toBe(1);
        // The largest interval that fits is accepted.
        results.push(yield* mmuIntervalNotifierInsert(sub, mm, 0, ULONG_MAX + 1, ops));
      });
    });
    expectClean(r);
    expect(results).toEqual([-EOVERFLOW, -EOVERFLOW, 0]);
  });

  it('returns -EINVAL (with a WARN) when mm_users <= 0, changing nothing', () => {
    let result = 0;
    let sim!: Sim;
    const r = runProgram('einval', (s) => {
      sim = s;
      const mm = makeMm(s);
      const { sub, ops } = recordingInterval(s, 'A', []);
      s.spawn('drv', function* () {
        // Set up while the mm is alive, then insert after the last user left.
        const { sub: first, ops: o1 } = recordingInterval(s, 'first', []);
        expect(yield* mmuIntervalNotifierInsert(first, mm, 0, PAGE, o1)).toBe(0);
        mm.mmUsers = 0;
        result = yield* mmuIntervalNotifierInsert(sub, mm, 0x1000, PAGE, ops);
        expect(sub.state).toBe('idle');
        expect(mm.notifierSubscriptions!.itree.size).toBe(1);
      });
    });
    expectClean(r);
    expect(result).toBe(-EINVAL);
    expect(notifierDebug(sim).warnings).toHaveLength(1);
  });

  it('propagates -ENOMEM from the first registration, leaving the mm without notifiers', () => {
    let result = 0;
    const r = runOnceWithAllocFailure((sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = recordingInterval(sim, 'A', []);
      sim.spawn('drv', function* () {
        result = yield* mmuIntervalNotifierInsert(sub, mm, 0x1000, PAGE, ops);
        expect(mm.notifierSubscriptions).toBeNull();
        expect(sub.state).toBe('idle');
      });
    });
    expectClean(r);
    expect(result).toBe(-ENOMEM);
  });

  it('propagates the mm_take_all_locks() error (-EINTR), freeing the fresh allocation', () => {
    let result = 0;
    const r = runProgram('eintr', (sim) => {
      notifierDebug(sim).takeAllLocksFailures = 1;
      const mm = makeMm(sim);
      const { sub, ops } = recordingInterval(sim, 'A', []);
      sim.spawn('drv', function* () {
        result = yield* mmuIntervalNotifierInsert(sub, mm, 0x1000, PAGE, ops);
        expect(mm.notifierSubscriptions).toBeNull();
      });
    });
    expectClean(r);
    expect(result).toBe(-4);
  });

  it('insert_locked asserts mmap_lock is write-held', () => {
    const r = runProgram('insert_locked unlocked', (sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = recordingInterval(sim, 'A', []);
      sim.spawn('drv', function* () {
        yield* mmuIntervalNotifierInsertLocked(sub, mm, 0, PAGE, ops);
      });
    });
    expectViolation(r, 'lockdep-assert');
    const ok = runProgram('insert_locked', (sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = recordingInterval(sim, 'A', []);
      sim.spawn('drv', function* () {
        yield* mm.mmapLock.downWrite();
        expect(yield* mmuIntervalNotifierInsertLocked(sub, mm, 0, PAGE, ops)).toBe(0);
        yield* mm.mmapLock.upWrite();
        expect(intervalNotifierInTree(sub)).toBe(true);
      });
    });
    expectClean(ok);
  });

  it('insert (not _locked) with mmap_lock held is reported by lockdep (might_lock)', () => {
    const r = runProgram('insert under mmap_lock', (sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = recordingInterval(sim, 'A', []);
      sim.spawn('drv', function* () {
        yield* mm.mmapLock.downRead();
        yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
        yield* mm.mmapLock.upRead();
      });
    });
    expectViolation(r, 'recursive-lock');
  });

  it('inserting twice is reported as api-misuse before anything changes', () => {
    const r = runProgram('double insert', (sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = recordingInterval(sim, 'A', []);
      sim.spawn('drv', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
        yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
      });
    });
    expectViolation(r, 'api-misuse');
  });
});

function runOnceWithAllocFailure(setup: (sim: Sim) => void) {
  // One allocation failure, taken at the first allocation (the choice value 1 = fail).
  return runOnceChoices(setup, [1], { allocFailures: 1 });
}

function runOnceChoices(setup: (sim: Sim) => void, choices: number[], opts: { allocFailures?: number } = {}) {
  const program: Program = { name: 't', setup, options: { allocFailures: opts.allocFailures ?? 0 } };
  return runOnce(program, choices, { trace: true });
}

/**
 * A scripted scenario: an invalidator thread that starts a range, then waits for `gate` before
 * ending it, and a thread that acts while the window is open.
 */
function windowScenario(
  name: string,
  body: (ctx: {
    sim: Sim;
    mm: ReturnType<typeof makeMm>;
    log: IntervalCall[];
    open: Completion;
    close: Completion;
    ready: Completion;
  }) => void,
  rangeOf: (mm: ReturnType<typeof makeMm>) => MmuNotifierRange,
  opts: { waitReady?: boolean } = {},
) {
  return runProgram(name, (sim) => {
    const mm = makeMm(sim);
    const log: IntervalCall[] = [];
    const open = new Completion(sim, 'window open');
    const close = new Completion(sim, 'may close');
    const ready = new Completion(sim, 'others ready');
    const { sub: anchor, ops } = recordingInterval(sim, 'anchor', log);
    sim.spawn('cpu', function* () {
      expect(yield* mmuIntervalNotifierInsert(anchor, mm, 0x10000, PAGE, ops)).toBe(0);
      if (opts.waitReady) yield* ready.wait();
      const r = rangeOf(mm);
      yield* mmuNotifierInvalidateRangeStart(r);
      yield* open.complete();
      yield* close.wait();
      yield* mmuNotifierInvalidateRangeEnd(r);
    });
    body({ sim, mm, log, open, close, ready });
    return { invariant: notifierInvariants(mm) };
  });
}

describe('interval notifier: state machine (core-mm.md §2.5)', () => {
  it('IDLE + start with no hit -> PARTIAL; last end -> IDLE, seq unchanged', () => {
    const states: string[] = [];
    const r = windowScenario(
      'partial',
      ({ sim, mm, open, close }) => {
        sim.spawn('observer', function* () {
          yield* open.wait();
          const s = mm.notifierSubscriptions!;
          states.push(`${s.activeInvalidateRanges}/${s.invalidateSeq}`);
          yield* close.complete();
        });
      },
      (mm) => range(mm, 0, PAGE),
    );
    expectClean(r);
    expect(states).toEqual(['1/2']);
  });

  it('IDLE + start with a hit -> EXCLUSIVE: seq E+1 passed to the callback; last end -> seq E+2', () => {
    const seen: number[] = [];
    let log!: IntervalCall[];
    let mmRef!: ReturnType<typeof makeMm>;
    const r = windowScenario(
      'exclusive',
      ({ sim, mm, open, close, log: l }) => {
        log = l;
        mmRef = mm;
        sim.spawn('observer', function* () {
          yield* open.wait();
          seen.push(mm.notifierSubscriptions!.invalidateSeq);
          yield* close.complete();
        });
      },
      (mm) => range(mm, 0x10000, 0x11000),
    );
    expectClean(r);
    expect(seen).toEqual([3]);
    expect(log.map((c) => c.curSeq)).toEqual([3]);
    expect(mmRef.notifierSubscriptions!.invalidateSeq).toBe(4);
    expect(mmRef.notifierSubscriptions!.activeInvalidateRanges).toBe(0);
  });

  it('PARTIAL + start with a hit -> EXCLUSIVE', () => {
    const r = runProgram('partial-then-hit', (sim) => {
      const mm = makeMm(sim);
      const log: IntervalCall[] = [];
      const { sub, ops } = recordingInterval(sim, 'A', log);
      sim.spawn('cpu', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0x10000, PAGE, ops);
        const miss = range(mm, 0, PAGE);
        const hit = range(mm, 0x10000, 0x11000);
        yield* mmuNotifierInvalidateRangeStart(miss);
        expect(mm.notifierSubscriptions!.invalidateSeq).toBe(2);
        yield* mmuNotifierInvalidateRangeStart(hit); // nested, as the core mm does
        expect(mm.notifierSubscriptions!.invalidateSeq).toBe(3);
        expect(mm.notifierSubscriptions!.activeInvalidateRanges).toBe(2);
        yield* mmuNotifierInvalidateRangeEnd(hit); // non-last end: window stays open
        expect(mm.notifierSubscriptions!.invalidateSeq).toBe(3);
        yield* mmuNotifierInvalidateRangeEnd(miss); // last end closes it
        expect(mm.notifierSubscriptions!.invalidateSeq).toBe(4);
      });
      return { invariant: notifierInvariants(mm) };
    });
    expectClean(r);
  });

  it('PARTIAL + insert -> EXCLUSIVE (seq |= 1), node in the tree now, sub.seq = seq', () => {
    const r = runProgram('partial-insert', (sim) => {
      const mm = makeMm(sim);
      const { sub: a, ops } = recordingInterval(sim, 'A', []);
      const { sub: b } = recordingInterval(sim, 'B', []);
      sim.spawn('cpu', function* () {
        yield* mmuIntervalNotifierInsert(a, mm, 0x10000, PAGE, ops);
        const miss = range(mm, 0, PAGE);
        yield* mmuNotifierInvalidateRangeStart(miss);
        expect(yield* mmuIntervalNotifierInsert(b, mm, 0x20000, PAGE, ops)).toBe(0);
        const s = mm.notifierSubscriptions!;
        expect(s.invalidateSeq).toBe(3);
        expect(intervalNotifierInTree(b)).toBe(true);
        expect(b.invalidateSeq.value).toBe(3);
        yield* mmuNotifierInvalidateRangeEnd(miss);
        expect(s.invalidateSeq).toBe(4);
      });
      return { invariant: notifierInvariants(mm) };
    });
    expectClean(r);
  });

  it('PARTIAL + remove -> removed at once, no wait', () => {
    const r = runProgram('partial-remove', (sim) => {
      const mm = makeMm(sim);
      const { sub: a, ops } = recordingInterval(sim, 'A', []);
      sim.spawn('cpu', function* () {
        yield* mmuIntervalNotifierInsert(a, mm, 0x10000, PAGE, ops);
        const miss = range(mm, 0, PAGE);
        yield* mmuNotifierInvalidateRangeStart(miss);
        yield* mmuIntervalNotifierRemove(a); // would hang here if it waited
        expect(intervalNotifierInTree(a)).toBe(false);
        yield* mmuNotifierInvalidateRangeEnd(miss);
      });
      return { invariant: notifierInvariants(mm) };
    });
    expectClean(r);
  });

  it('EXCLUSIVE + insert -> deferred (not in the tree), sub.seq = open seq; first read_begin waits for the window', () => {
    const order: string[] = [];
    const r = windowScenario(
      'exclusive-insert',
      ({ sim, mm, open, close }) => {
        const { sub: b, ops } = recordingInterval(sim, 'B', []);
        sim.spawn('drv', function* () {
          yield* open.wait();
          expect(yield* mmuIntervalNotifierInsert(b, mm, 0x20000, PAGE, ops)).toBe(0);
          const s = mm.notifierSubscriptions!;
          expect(intervalNotifierInTree(b)).toBe(false);
          expect(s.deferredList).toContain(b);
          expect(b.invalidateSeq.value).toBe(s.invalidateSeq);
          yield* close.complete();
          order.push('read_begin');
          const seq = yield* mmuIntervalReadBegin(b);
          order.push(`got ${seq}`);
          expect(s.invalidateSeq).toBe(4); // the window closed first
          expect(intervalNotifierInTree(b)).toBe(true); // and the deferred insert landed
        });
      },
      (mm) => range(mm, 0x10000, 0x11000),
    );
    expectClean(r);
    expect(order).toEqual(['read_begin', 'got 3']);
  });

  it('EXCLUSIVE + remove of a node in the tree -> deferred removal; the remover sleeps until the window closes', () => {
    let removedAtSeq = 0;
    const r = windowScenario(
      'exclusive-remove',
      ({ sim, mm, open, close, ready }) => {
        const { sub: b, ops } = recordingInterval(sim, 'B', []);
        sim.spawn('drv', function* () {
          expect(yield* mmuIntervalNotifierInsert(b, mm, 0x20000, PAGE, ops)).toBe(0);
          expect(intervalNotifierInTree(b)).toBe(true);
          yield* ready.complete();
          yield* open.wait();
          yield* close.complete();
          yield* mmuIntervalNotifierRemove(b);
          removedAtSeq = mm.notifierSubscriptions!.invalidateSeq;
          expect(intervalNotifierInTree(b)).toBe(false);
        });
      },
      (mm) => range(mm, 0x10000, 0x11000),
      { waitReady: true },
    );
    expectClean(r);
    expect(removedAtSeq).toBe(4);
  });

  it('EXCLUSIVE + remove while its insert is still deferred -> insert cancelled, no wait', () => {
    const r = windowScenario(
      'cancel-insert',
      ({ sim, mm, open, close }) => {
        const { sub: b, ops } = recordingInterval(sim, 'B', []);
        sim.spawn('drv', function* () {
          yield* open.wait();
          yield* mmuIntervalNotifierInsert(b, mm, 0x20000, PAGE, ops);
          yield* mmuIntervalNotifierRemove(b); // would deadlock if it waited: close not yet completed
          expect(mm.notifierSubscriptions!.deferredList).toHaveLength(0);
          expect(mm.notifierSubscriptions!.invalidateSeq).toBe(3);
          yield* close.complete();
        });
      },
      (mm) => range(mm, 0x10000, 0x11000),
    );
    expectClean(r);
  });

  it('EXCLUSIVE + start of any range -> active++, cur_seq = the open odd seq', () => {
    const r = runProgram('exclusive-join', (sim) => {
      const mm = makeMm(sim);
      const log: IntervalCall[] = [];
      const { sub: a, ops } = recordingInterval(sim, 'A', log);
      const { sub: b } = recordingInterval(sim, 'B', log);
      sim.spawn('cpu', function* () {
        yield* mmuIntervalNotifierInsert(a, mm, 0x10000, PAGE, ops);
        yield* mmuIntervalNotifierInsert(b, mm, 0x20000, PAGE, ops);
        const r1 = range(mm, 0x10000, 0x11000);
        const r2 = range(mm, 0x20000, 0x21000);
        yield* mmuNotifierInvalidateRangeStart(r1);
        yield* mmuNotifierInvalidateRangeStart(r2);
        yield* mmuNotifierInvalidateRangeEnd(r2);
        yield* mmuNotifierInvalidateRangeEnd(r1);
        const r3 = range(mm, 0x20000, 0x21000);
        yield* mmuNotifierInvalidateRangeStart(r3);
        yield* mmuNotifierInvalidateRangeEnd(r3);
      });
      return { invariant: notifierInvariants(mm) };
    });
    expectClean(r);
  });

  it('any + read_begin with sub.seq == seq -> sleeps until seq changes; without a collision it does not sleep', () => {
    const order: string[] = [];
    const r = windowScenario(
      'read_begin-waits',
      ({ sim, mm, open, close }) => {
        sim.spawn('drv', function* () {
          yield* open.wait();
          const anchor = mm.notifierSubscriptions!.intervalSubscribers()[0]!;
          // The anchor was invalidated by the open window: read_begin must wait for it.
          yield* close.complete();
          order.push('begin');
          const s = yield* mmuIntervalReadBegin(anchor);
          order.push(`seq ${s} global ${mm.notifierSubscriptions!.invalidateSeq}`);
        });
      },
      (mm) => range(mm, 0x10000, 0x11000),
    );
    expectClean(r);
    expect(order).toEqual(['begin', 'seq 3 global 4']);
  });
});

describe('interval notifier: read side', () => {
  it('read_retry is false without a collision and true after one; check_retry agrees', () => {
    const out: boolean[] = [];
    const r = runProgram('retry', (sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = recordingInterval(sim, 'A', []);
      sim.spawn('drv', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0x10000, PAGE, ops);
        const s = yield* mmuIntervalReadBegin(sub);
        out.push(yield* mmuIntervalReadRetry(sub, s));
        out.push(yield* mmuIntervalCheckRetry(sub, s));
        const rg = range(mm, 0x10000, 0x11000);
        yield* mmuNotifierInvalidateRangeStart(rg);
        yield* mmuNotifierInvalidateRangeEnd(rg);
        out.push(yield* mmuIntervalCheckRetry(sub, s));
        out.push(yield* mmuIntervalReadRetry(sub, s));
        const s2 = yield* mmuIntervalReadBegin(sub);
        out.push(yield* mmuIntervalReadRetry(sub, s2));
        expect(s2).toBe(3);
      });
    });
    expectClean(r);
    expect(out).toEqual([false, false, true, true, false]);
  });

  it('an invalidation that does not overlap the subscription leaves its sequence alone', () => {
    const out: boolean[] = [];
    const r = runProgram('no-overlap', (sim) => {
      const mm = makeMm(sim);
      const log: IntervalCall[] = [];
      const { sub, ops } = recordingInterval(sim, 'A', log);
      sim.spawn('drv', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0x10000, PAGE, ops);
        const s = yield* mmuIntervalReadBegin(sub);
        // [start, end) is half-open: ending exactly at the subscription's start is no overlap.
        const rg = range(mm, 0xf000, 0x10000);
        yield* mmuNotifierInvalidateRangeStart(rg);
        yield* mmuNotifierInvalidateRangeEnd(rg);
        out.push(yield* mmuIntervalReadRetry(sub, s));
        expect(log).toHaveLength(0);
      });
    });
    expectClean(r);
    expect(out).toEqual([false]);
  });

  it('set_seq of an even value is a WARN', () => {
    let sim!: Sim;
    const r = runProgram('even set_seq', (s) => {
      sim = s;
      const mm = makeMm(s);
      const { sub, ops } = recordingInterval(s, 'A', []);
      s.spawn('drv', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
        yield* mmuIntervalSetSeq(sub, 4);
      });
    });
    expectClean(r);
    expect(notifierDebug(sim).warnings[0]).toMatch(/even sequence/);
  });

  it('read_begin or remove of a subscriber that was never inserted is api-misuse', () => {
    for (const op of ['read_begin', 'remove'] as const) {
      const r = runProgram(op, (sim) => {
        const sub = new MmuIntervalNotifier(sim, 'A');
        sim.spawn('drv', function* () {
          if (op === 'read_begin') yield* mmuIntervalReadBegin(sub);
          else yield* mmuIntervalNotifierRemove(sub);
        });
      });
      expectViolation(r, 'api-misuse');
    }
  });
});

describe('interval notifier: blockable and non-blockable callbacks', () => {
  it('a callback returning false on a blockable range is a WARN and the walk goes on', () => {
    let sim!: Sim;
    const log: IntervalCall[] = [];
    const r = runProgram('blockable-false', (s) => {
      sim = s;
      const mm = makeMm(s);
      const a = recordingInterval(s, 'A', log, { result: () => false });
      const b = recordingInterval(s, 'B', log);
      s.spawn('cpu', function* () {
        yield* mmuIntervalNotifierInsert(a.sub, mm, 0x10000, PAGE, a.ops);
        yield* mmuIntervalNotifierInsert(b.sub, mm, 0x11000, PAGE, b.ops);
        const rg = range(mm, 0x10000, 0x12000);
        yield* mmuNotifierInvalidateRangeStart(rg);
        yield* mmuNotifierInvalidateRangeEnd(rg);
      });
    });
    expectClean(r);
    expect(log.map((c) => c.sub)).toEqual(['A', 'B']);
    expect(notifierDebug(sim).warnings).toHaveLength(1);
  });

  it('a callback returning false on a non-blockable range stops the walk, closes the window and returns -EAGAIN', () => {
    const log: IntervalCall[] = [];
    let ret = 0;
    const r = runProgram('nonblock-false', (sim) => {
      const mm = makeMm(sim);
      const a = recordingInterval(sim, 'A', log, {
        result: (rg) => (rg.flags & MMU_NOTIFIER_RANGE_BLOCKABLE) !== 0,
      });
      const b = recordingInterval(sim, 'B', log);
      sim.spawn('oom_reaper', function* () {
        yield* mmuIntervalNotifierInsert(a.sub, mm, 0x10000, PAGE, a.ops);
        yield* mmuIntervalNotifierInsert(b.sub, mm, 0x11000, PAGE, b.ops);
        const rg = range(mm, 0x10000, 0x12000);
        ret = yield* mmuNotifierInvalidateRangeStartNonblock(rg);
        const s = mm.notifierSubscriptions!;
        expect(s.activeInvalidateRanges).toBe(0);
        expect(s.invalidateSeq).toBe(4);
      });
      return { invariant: notifierInvariants(mm) };
    });
    expectClean(r);
    expect(ret).toBe(-11);
    expect(log.map((c) => `${c.sub}:${c.blockable}`)).toEqual(['A:false']);
  });

  it('calling end after a start that returned -EAGAIN is api-misuse', () => {
    const r = runProgram('end-after-eagain', (sim) => {
      const mm = makeMm(sim);
      const a = recordingInterval(sim, 'A', [], { result: () => false });
      sim.spawn('oom_reaper', function* () {
        yield* mmuIntervalNotifierInsert(a.sub, mm, 0x10000, PAGE, a.ops);
        const rg = range(mm, 0x10000, 0x11000);
        expect(yield* mmuNotifierInvalidateRangeStartNonblock(rg)).toBe(-11);
        yield* mmuNotifierInvalidateRangeEnd(rg);
      });
    });
    expectViolation(r, 'api-misuse');
  });
});

describe('interval notifier: two-pass callbacks (invalidate_start / invalidate_finish)', () => {
  it('finish passes run after every first pass, in collection order, before start returns', () => {
    const events: string[] = [];
    const r = runProgram('two-pass', (sim) => {
      const mm = makeMm(sim);
      const mk = (name: string, twoPass: boolean) => {
        const sub = new MmuIntervalNotifier(sim, name);
        const ops = twoPass
          ? {
              *invalidateStart(s: MmuIntervalNotifier, _r: MmuNotifierRange, curSeq: number) {
                events.push(`start ${s.name}`);
                yield* mmuIntervalSetSeq(s, curSeq);
                return new MmuIntervalNotifierFinish(s.name);
              },
              invalidateFinish(f: MmuIntervalNotifierFinish) {
                events.push(`finish ${String(f.data)} (${f.notifier!.name})`);
                return done(undefined);
              },
            }
          : {
              *invalidate(s: MmuIntervalNotifier, _r: MmuNotifierRange, curSeq: number) {
                events.push(`invalidate ${s.name}`);
                yield* mmuIntervalSetSeq(s, curSeq);
                return true;
              },
            };
        return { sub, ops };
      };
      const a = mk('A', true);
      const b = mk('B', false);
      const c = mk('C', true);
      sim.spawn('cpu', function* () {
        yield* mmuIntervalNotifierInsert(a.sub, mm, 0x10000, PAGE, a.ops);
        yield* mmuIntervalNotifierInsert(b.sub, mm, 0x11000, PAGE, b.ops);
        yield* mmuIntervalNotifierInsert(c.sub, mm, 0x12000, PAGE, c.ops);
        const rg = range(mm, 0x10000, 0x13000);
        yield* mmuNotifierInvalidateRangeStart(rg);
        events.push('start returned');
        yield* mmuNotifierInvalidateRangeEnd(rg);
      });
    });
    expectClean(r);
    expect(events).toEqual([
      'start A',
      'invalidate B',
      'start C',
      'finish A (A)',
      'finish C (C)',
      'start returned',
    ]);
  });

  it('on a non-blockable failure the queued finish passes still run, before the window closes', () => {
    const events: string[] = [];
    let ret = 0;
    const r = runProgram('two-pass-eagain', (sim) => {
      const mm = makeMm(sim);
      const a = new MmuIntervalNotifier(sim, 'A');
      const aOps = {
        *invalidateStart(s: MmuIntervalNotifier, _r: MmuNotifierRange, curSeq: number) {
          yield* mmuIntervalSetSeq(s, curSeq);
          return new MmuIntervalNotifierFinish();
        },
        invalidateFinish() {
          events.push(`finish A, seq ${mm.notifierSubscriptions!.invalidateSeq}`);
          return done(undefined);
        },
      };
      const b = recordingInterval(sim, 'B', [], { result: () => false });
      sim.spawn('oom_reaper', function* () {
        yield* mmuIntervalNotifierInsert(a, mm, 0x10000, PAGE, aOps);
        yield* mmuIntervalNotifierInsert(b.sub, mm, 0x11000, PAGE, b.ops);
        ret = yield* mmuNotifierInvalidateRangeStartNonblock(range(mm, 0x10000, 0x12000));
        events.push(`returned, seq ${mm.notifierSubscriptions!.invalidateSeq}`);
      });
    });
    expectClean(r);
    expect(ret).toBe(-11);
    expect(events).toEqual(['finish A, seq 3', 'returned, seq 4']);
  });

  it('invalidate_start without invalidate_finish is a WARN at insert', () => {
    let sim!: Sim;
    const r = runProgram('two-pass-warn', (s) => {
      sim = s;
      const mm = makeMm(s);
      const a = new MmuIntervalNotifier(s, 'A');
      s.spawn('drv', function* () {
        yield* mmuIntervalNotifierInsert(a, mm, 0, PAGE, {
          invalidateStart: () => done(true),
        });
      });
    });
    expectClean(r);
    expect(notifierDebug(sim).warnings[0]).toMatch(/invalidate_start without invalidate_finish/);
  });
});

describe('interval notifier: release', () => {
  it('every subscriber gets one blockable RELEASE of [0, ULONG_MAX) and stays in the tree', () => {
    const log: IntervalCall[] = [];
    const r = runProgram('release', (sim) => {
      const mm = makeMm(sim);
      const a = recordingInterval(sim, 'A', log);
      const b = recordingInterval(sim, 'B', log);
      sim.spawn('exit', function* () {
        yield* mmuIntervalNotifierInsert(a.sub, mm, 0x10000, PAGE, a.ops);
        yield* mmuIntervalNotifierInsert(b.sub, mm, 0x7fff0000, PAGE, b.ops);
        yield* mmuNotifierRelease(mm);
        expect(intervalNotifierInTree(a.sub) && intervalNotifierInTree(b.sub)).toBe(true);
        expect(mm.notifierSubscriptions!.invalidateSeq).toBe(4);
        yield* mmuIntervalNotifierRemove(a.sub);
        yield* mmuIntervalNotifierRemove(b.sub);
        expect(mm.mmCount).toBe(1);
      });
    });
    expectClean(r);
    expect(log.map((c) => `${c.sub} ${c.event} ${c.start}-${c.end} ${c.blockable}`)).toEqual([
      `A MMU_NOTIFY_RELEASE 0-${ULONG_MAX} true`,
      `B MMU_NOTIFY_RELEASE 0-${ULONG_MAX} true`,
    ]);
  });
});
