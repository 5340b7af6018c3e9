import { describe, expect, it } from 'vitest';
import {
  Completion,
  Ctx,
  DmaFence,
  DmaResv,
  dfs,
  dmaFenceBeginSignalling,
  dmaFenceEndSignalling,
  EALREADY,
  EINVAL,
  type ExploreResult,
  explore,
  KBuf,
  kfree,
  kmalloc,
  LockMaps,
  lockMap,
  Mutex,
  type Program,
  type ProgramHooks,
  primeDmaResvLockdep,
  Refcount,
  type Routine,
  type RunResult,
  RwSemaphore,
  runOnce,
  SeqCount,
  type Sim,
  Spinlock,
  Var,
  type Violation,
  WaitQueue,
  WwAcquireCtx,
} from '../src/index.js';
import { woundWait } from './catalogue.js';

type Setup = (sim: Sim) => ProgramHooks | undefined | void;

const program = (setup: Setup, options: Program['options'] = {}): Program => ({
  name: 'test',
  setup,
  options,
});

/** One run with the default schedule (or `choices`), traced. */
function once(setup: Setup, choices: number[] = []): RunResult {
  return runOnce(program(setup), choices, { trace: true });
}

/** Every interleaving, keeping every failure. */
function everyRun(setup: Setup, options: Program['options'] = {}): ExploreResult {
  const r = explore(program(setup, options), {
    strategy: dfs(),
    stopOnFailure: false,
    maxFailures: 100_000,
    budgets: { maxRuns: 100_000 },
  });
  expect(r.exhausted).toBe(true);
  return r;
}

const kinds = (r: ExploreResult) => [...new Set(r.failures.map((f) => f.violation.kind))].sort();

function violation(r: RunResult): Violation {
  expect(r.status).toBe('violation');
  return r.violation!;
}

describe('Mutex', () => {
  it('excludes: never two threads inside, in any interleaving', () => {
    const r = everyRun((sim) => {
      const m = new Mutex(sim, 'm');
      let inside = 0;
      const flag = new Var(sim, 'inside', 0);
      for (const name of ['A', 'B', 'C']) {
        sim.spawn(name, function* () {
          yield* m.lock();
          yield* flag.update((v) => v + 1);
          inside = flag.value;
          yield* flag.update((v) => v - 1);
          yield* m.unlock();
        });
      }
      return { invariant: { 'one inside': () => inside <= 1 && flag.value <= 1 } };
    });
    expect(r.failures).toEqual([]);
    expect(r.completedRuns).toBe(6);
  });

  it('trylock: true and taken when free, false when held, without sleeping', () => {
    const runs: boolean[][] = [];
    const r = everyRun((sim) => {
      const seen: boolean[] = [];
      runs.push(seen);
      const m = new Mutex(sim, 'm');
      const held = new Completion(sim, 'held');
      const tried = new Completion(sim, 'tried');
      sim.spawn('owner', function* () {
        seen.push(yield* m.trylock());
        yield* held.complete();
        yield* tried.wait();
        yield* m.unlock();
      });
      sim.spawn('other', function* () {
        yield* held.wait();
        seen.push(yield* m.trylock());
        yield* tried.complete();
      });
    });
    expect(r.failures).toEqual([]);
    const complete = runs.filter((seen) => seen.length === 2);
    expect(complete.length).toBe(r.completedRuns);
    for (const seen of complete) expect(seen).toEqual([true, false]);
  });

  it('trylock inside a non-blockable section is allowed; lock is not', () => {
    const ok = once((sim) => {
      const m = new Mutex(sim, 'm');
      sim.spawn('notifier', function* () {
        sim.enterCtx(Ctx.NonBlock);
        if (yield* m.trylock()) yield* m.unlock();
        sim.exitCtx(Ctx.NonBlock);
        yield* m.lock();
        yield* m.unlock();
      });
    });
    expect(ok.status).toBe('done');
    const bad = once((sim) => {
      const m = new Mutex(sim, 'svmm->mutex');
      sim.spawn('notifier', function* () {
        sim.enterCtx(Ctx.NonBlock);
        yield* m.lock();
      });
    });
    const v = violation(bad);
    expect(v.kind).toBe('block-in-nonblockable');
    expect(v.message).toBe('notifier: mutex_lock(svmm->mutex) may block inside a non-blockable section');
    expect(v.objects).toEqual(['svmm->mutex']);
  });

  it('recursive locking is reported, not hung', () => {
    const v = violation(
      once((sim) => {
        const m = new Mutex(sim, 'm');
        sim.spawn('T', function* () {
          yield* m.lock();
          yield* m.lock();
        });
      }),
    );
    expect(v.kind).toBe('recursive-lock');
    expect(v.message).toBe('T: mutex_lock(m) while already holding it (self-deadlock)');
  });

  it('two locks of one lockdep class need a nesting annotation', () => {
    const nested = (annotate: boolean) =>
      once((sim) => {
        const a = new Mutex(sim, 'a->lock', { lockClass: 'obj->lock' });
        const b = new Mutex(sim, 'b->lock', { lockClass: 'obj->lock' });
        sim.spawn('T', function* () {
          yield* a.lock();
          if (annotate) yield* b.lockNested(1);
          else yield* b.lock();
          yield* b.unlock();
          yield* a.unlock();
        });
      });
    const v = violation(nested(false));
    expect(v.kind).toBe('recursive-lock');
    expect(v.message).toBe(
      'possible recursive locking: T acquires b->lock (class obj->lock) while holding a->lock',
    );
    expect(nested(true).status).toBe('done');
  });

  it('unlock by a thread that does not hold it is a bad unlock', () => {
    const r = everyRun((sim) => {
      const m = new Mutex(sim, 'm');
      const locked = new Completion(sim, 'locked');
      const stolen = new Completion(sim, 'stolen');
      sim.spawn('owner', function* () {
        yield* m.lock();
        yield* locked.complete();
        yield* stolen.wait();
        yield* m.unlock();
      });
      sim.spawn('thief', function* () {
        yield* locked.wait();
        yield* m.unlock();
        yield* stolen.complete();
      });
    });
    expect(kinds(r)).toEqual(['bad-unlock']);
    const bad = r.failures[0]!.violation;
    expect(bad.message).toBe('thief: mutex_unlock(m) but it is held by owner');
    expect(bad.threads).toEqual(['thief']);
    const nobody = violation(
      once((sim) => {
        const m = new Mutex(sim, 'm');
        sim.spawn('T', function* () {
          yield* m.unlock();
        });
      }),
    );
    expect(nobody.message).toBe('T: mutex_unlock(m) but it is held by nobody');
  });

  it('a thread that finishes holding a lock is reported', () => {
    const v = violation(
      once((sim) => {
        const m = new Mutex(sim, 'm');
        const s = new Spinlock(sim, 's');
        sim.spawn('T', function* () {
          yield* m.lock();
          yield* s.lock();
        });
      }),
    );
    expect(v.kind).toBe('lock-held-at-exit');
    expect(v.message).toBe('T finished holding m, s');
    expect(v.objects).toEqual(['m', 's']);
  });

  it('isLocked() and lockdep_assert_held', () => {
    const r = once((sim) => {
      const m = new Mutex(sim, 'm');
      const states: boolean[] = [];
      sim.spawn('T', function* () {
        states.push(m.isLocked(), sim.isHeld(m));
        yield* m.lock();
        states.push(m.isLocked(), sim.isHeld(m));
        sim.assertHeld(m);
        yield* m.unlock();
        states.push(m.isLocked());
        return states;
      });
    });
    expect(r.status).toBe('done');
    const v = violation(
      once((sim) => {
        const m = new Mutex(sim, 'svmm->mutex');
        sim.spawn('fault', function* () {
          yield sim.note('forgot the lock');
          sim.assertHeld(m);
        });
      }),
    );
    expect(v.kind).toBe('lockdep-assert');
    expect(v.message).toBe('lockdep_assert_held(svmm->mutex) failed in fault');
  });
});

describe('Spinlock and atomic context', () => {
  it('sleeping with a spinlock held is sleep-in-atomic, spinning is fine', () => {
    const v = violation(
      once((sim) => {
        const s = new Spinlock(sim, 'ptl');
        const m = new Mutex(sim, 'm');
        sim.spawn('T', function* () {
          yield* s.lock();
          yield* m.lock();
        });
      }),
    );
    expect(v.kind).toBe('sleep-in-atomic');
    expect(v.message).toBe('T: sleeping function mutex_lock(m) called in atomic context');
    const ok = once((sim) => {
      const s = new Spinlock(sim, 'ptl');
      const t = new Spinlock(sim, 'other');
      const x = new Var(sim, 'x', 0);
      sim.spawn('T', function* () {
        yield* s.lock();
        if (yield* t.trylock()) yield* t.unlock();
        yield* x.write(1);
        yield* s.unlock();
        // Out of atomic context again.
        yield* kmalloc(sim, 8, 'GFP_KERNEL');
      });
    });
    expect(ok.status).toBe('done');
  });

  it('GFP_KERNEL under a spinlock is sleep-in-atomic; GFP_ATOMIC and GFP_NOWAIT are fine', () => {
    const alloc = (gfp: 'GFP_KERNEL' | 'GFP_ATOMIC' | 'GFP_NOWAIT') =>
      once((sim) => {
        const s = new Spinlock(sim, 'lock');
        sim.spawn('T', function* () {
          yield* s.lock();
          yield* kmalloc(sim, 16, gfp, 'node');
          yield* s.unlock();
        });
      });
    const v = violation(alloc('GFP_KERNEL'));
    expect(v.kind).toBe('sleep-in-atomic');
    expect(v.message).toBe('T: GFP_KERNEL allocation kmalloc(16, GFP_KERNEL)  // node in atomic context');
    expect(alloc('GFP_ATOMIC').status).toBe('done');
    expect(alloc('GFP_NOWAIT').status).toBe('done');
  });

  it('a contended spinlock is not runnable until released', () => {
    const r = everyRun((sim) => {
      const s = new Spinlock(sim, 's');
      const x = new Var(sim, 'x', 0);
      for (const name of ['A', 'B']) {
        sim.spawn(name, function* () {
          yield* s.lock();
          yield* x.write((yield* x.read()) + 1);
          yield* s.unlock();
        });
      }
      return { properties: { 'both increments': () => x.value === 2 } };
    });
    expect(r.failures).toEqual([]);
    expect(r.completedRuns).toBe(2);
  });
});

describe('RwSemaphore', () => {
  it('readers share, a writer excludes everyone', () => {
    // Two readers inside at once (reader steps commute, so DPOR runs them one after the other:
    // the shared state is reached with an explicit schedule).
    const both = once(
      (sim) => {
        const sem = new RwSemaphore(sim, 'mmap_lock');
        for (const name of ['R0', 'R1']) {
          sim.spawn(name, function* () {
            yield* sem.downRead();
            expect(sem.readers.map((t) => t.name)).toContain(name);
            yield* sem.upRead();
          });
        }
        return { invariant: { 'not both inside': () => sem.readers.length < 2 } };
      },
      [0, 0, 1],
    );
    expect(violation(both).message).toBe("invariant 'not both inside' does not hold");
    let maxReaders = 0;
    const r = everyRun((sim) => {
      const sem = new RwSemaphore(sim, 'mmap_lock');
      const x = new Var(sim, 'x', 0);
      for (const name of ['R0', 'R1']) {
        sim.spawn(name, function* () {
          yield* sem.downRead();
          yield* x.read();
          yield* sem.upRead();
        });
      }
      sim.spawn('W', function* () {
        yield* sem.downWrite();
        yield* x.write(1);
        yield* sem.upWrite();
      });
      return {
        invariant: {
          exclusive: () => {
            maxReaders = Math.max(maxReaders, sem.readers.length);
            return sem.writer === null || sem.readers.length === 0;
          },
        },
      };
    });
    expect(r.failures).toEqual([]);
    expect(maxReaders).toBe(1);
  });

  it('downgrade_write: the writer becomes a reader; readers may join, writers may not', () => {
    const seen: string[] = [];
    const r = everyRun((sim) => {
      const sem = new RwSemaphore(sim, 'sem');
      const x = new Var(sim, 'x', 0);
      const downgraded = new Completion(sim, 'downgraded');
      sim.spawn('W', function* () {
        yield* sem.downWrite();
        yield* x.write(1);
        yield* sem.downgradeWrite();
        yield* downgraded.completeAll();
        yield* x.read();
        yield* sem.upRead();
      });
      sim.spawn('R', function* () {
        yield* downgraded.wait();
        yield* sem.downRead();
        seen.push(`reader sees ${yield* x.read()}`);
        yield* sem.upRead();
      });
      sim.spawn('W2', function* () {
        yield* downgraded.wait();
        yield* sem.downWrite();
        yield* x.write(2);
        yield* sem.upWrite();
      });
      return { invariant: () => sem.writer === null || sem.readers.length === 0 };
    });
    expect(r.failures).toEqual([]);
    expect(new Set(seen)).toEqual(new Set(['reader sees 1', 'reader sees 2']));
  });

  it('trylocks fail against the other mode; wrong releases are bad unlocks', () => {
    const r = once((sim) => {
      const sem = new RwSemaphore(sim, 'sem');
      const out: boolean[] = [];
      sim.spawn('T', function* () {
        yield* sem.downRead();
        out.push(sem.heldBy(sim.current!), sem.isLocked());
        yield* sem.upRead();
        out.push(yield* sem.downWriteTrylock());
        out.push(yield* sem.downWriteTrylock());
        yield* sem.upWrite();
        return out;
      });
    });
    expect(r.status).toBe('done');
    const write = violation(
      once((sim) => {
        const sem = new RwSemaphore(sim, 'sem');
        sim.spawn('T', function* () {
          yield* sem.downRead();
          yield* sem.upWrite();
        });
      }),
    );
    expect(write.kind).toBe('bad-unlock');
    expect(write.message).toBe('T: up_write(sem) without holding it for write');
    const read = violation(
      once((sim) => {
        const sem = new RwSemaphore(sim, 'sem');
        sim.spawn('T', function* () {
          yield* sem.upRead();
        });
      }),
    );
    expect(read.message).toBe('T: up_read(sem) without holding it for read');
    const again = violation(
      once((sim) => {
        const sem = new RwSemaphore(sim, 'mmap_lock');
        sim.spawn('T', function* () {
          yield* sem.downRead();
          yield* sem.downRead();
        });
      }),
    );
    expect(again.kind).toBe('recursive-lock');
  });

  it('down_read_trylock fails while a writer holds it', () => {
    const results: boolean[] = [];
    everyRun((sim) => {
      const sem = new RwSemaphore(sim, 'sem');
      const held = new Completion(sim, 'held');
      const done = new Completion(sim, 'done');
      sim.spawn('W', function* () {
        yield* sem.downWrite();
        yield* held.complete();
        yield* done.wait();
        yield* sem.upWrite();
      });
      sim.spawn('R', function* () {
        yield* held.wait();
        results.push(yield* sem.downReadTrylock());
        yield* done.complete();
      });
    });
    expect(results.length).toBeGreaterThan(0);
    expect(results.every((x) => x === false)).toBe(true);
  });
});

describe('SeqCount', () => {
  const snapshot = (retry: boolean) => (sim: Sim) => {
    const seq = new SeqCount(sim, 'seq');
    const lo = new Var(sim, 'lo', 0);
    const hi = new Var(sim, 'hi', 0);
    const got: number[][] = [];
    sim.spawn('writer', function* () {
      yield* seq.writeBegin();
      yield* lo.write(1);
      yield* hi.write(1);
      yield* seq.writeEnd();
    });
    sim.spawn('reader', function* () {
      for (let tries = 1; ; tries++) {
        const start = yield* seq.readBegin();
        expect(start % 2).toBe(0);
        const a = yield* lo.read();
        const b = yield* hi.read();
        if (!retry || !(yield* seq.readRetry(start))) {
          got.push([a, b, tries]);
          return;
        }
      }
    });
    return { properties: { 'consistent snapshot': () => got[0]![0] === got[0]![1] || `read ${got[0]}` } };
  };

  it('a reader that checks read_seqcount_retry always sees a consistent snapshot, retrying if needed', () => {
    const r = everyRun(snapshot(true));
    expect(r.failures).toEqual([]);
    // Some interleaving made the reader retry (a write overlapped its read section).
    const retried = explore(program(snapshot(true)), { strategy: dfs() });
    expect(retried.completedRuns).toBeGreaterThan(3);
  });

  it('without the retry check the reader can see a torn pair', () => {
    const r = explore(program(snapshot(false)), { strategy: dfs() });
    expect(r.failures[0]!.violation.kind).toBe('assertion');
    // The writer sets lo then hi; the reader reads lo then hi: a torn read is old lo, new hi.
    expect(r.failures[0]!.violation.message).toBe('consistent snapshot: read 0,1,1');
  });

  it('read_seqcount_begin waits for an even count; raw_read_seqcount does not', () => {
    const raw: number[] = [];
    everyRun((sim) => {
      const seq = new SeqCount(sim, 'seq');
      sim.spawn('writer', function* () {
        yield* seq.writeBegin();
        yield* seq.writeEnd();
      });
      sim.spawn('reader', function* () {
        raw.push(yield* seq.rawRead());
        raw.push(yield* seq.readBegin());
      });
    });
    expect(new Set(raw.filter((_, i) => i % 2 === 0))).toEqual(new Set([0, 1, 2]));
    expect(new Set(raw.filter((_, i) => i % 2 === 1))).toEqual(new Set([0, 2]));
  });

  it('unbalanced write sections are reported', () => {
    const v = violation(
      once((sim) => {
        const seq = new SeqCount(sim, 'seq');
        sim.spawn('T', function* () {
          yield* seq.writeBegin();
          yield* seq.writeBegin();
        });
      }),
    );
    expect(v.message).toBe('write_seqcount_begin(seq) with a write already open');
  });
});

describe('WaitQueue', () => {
  it('wait_event re-tests after queueing: no lost wake-up in any interleaving', () => {
    const r = everyRun((sim) => {
      const done = new Var(sim, 'done', false);
      const wq = new WaitQueue(sim, 'wq');
      sim.spawn('waiter', function* () {
        yield* wq.waitEvent(() => done.value);
        expect(done.value).toBe(true);
      });
      sim.spawn('waker', function* () {
        yield* done.write(true);
        yield* wq.wakeUpAll();
      });
    });
    expect(r.failures).toEqual([]);
  });

  it('wait_event goes back to sleep after a wake-up whose condition is still false', () => {
    let maxChecks = 0;
    const r = everyRun((sim) => {
      const stage = new Var(sim, 'stage', 0);
      const wq = new WaitQueue(sim, 'wq');
      sim.spawn('waiter', function* () {
        let checks = 0;
        yield* wq.waitEvent(() => {
          checks++;
          return stage.value === 2;
        });
        maxChecks = Math.max(maxChecks, checks);
      });
      sim.spawn('waker', function* () {
        yield* stage.write(1);
        yield* wq.wakeUpAll('too early');
        yield* stage.write(2);
        yield* wq.wakeUpAll();
      });
    });
    expect(r.failures).toEqual([]);
    expect(maxChecks).toBe(3);
  });

  it('a sleeper nobody wakes is a deadlock; one whose condition became true is a missed wake-up', () => {
    const nobody = violation(
      once((sim) => {
        const wq = new WaitQueue(sim, 'wq');
        sim.spawn('sleeper', function* () {
          yield* wq.sleep(() => false);
        });
      }),
    );
    expect(nobody.kind).toBe('deadlock');
    expect(nobody.details).toEqual(['sleeper waits: schedule(wq) on wq, not woken']);
    const forgot = violation(
      once((sim) => {
        const flag = new Var(sim, 'flag', false);
        const wq = new WaitQueue(sim, 'wq');
        sim.spawn('sleeper', function* () {
          yield* wq.waitEvent(() => flag.value);
        });
        sim.spawn('setter', function* () {
          yield* flag.write(true); // and no wake_up()
        });
      }),
    );
    expect(forgot.kind).toBe('missed-wakeup');
    expect(forgot.message).toBe(
      'missed wake-up: sleeper sleeps on wq although its condition is true, and no thread is left to wake it',
    );
  });
});

describe('Completion', () => {
  const waiters = (all: boolean) => (sim: Sim) => {
    const c = new Completion(sim, 'c');
    for (const name of ['W0', 'W1']) sim.spawn(name, () => c.wait());
    sim.spawn('signaller', function* () {
      if (all) yield* c.completeAll();
      else yield* c.complete();
    });
  };

  it('complete() releases exactly one waiter', () => {
    const r = everyRun(waiters(false));
    expect(kinds(r)).toEqual(['deadlock']);
    expect(r.failures.every((f) => f.violation.threads.length === 1)).toBe(true);
    expect(new Set(r.failures.map((f) => f.violation.threads[0]))).toEqual(new Set(['W0', 'W1']));
  });

  it('complete_all() releases every waiter, present and future', () => {
    expect(everyRun(waiters(true)).failures).toEqual([]);
    const r = once((sim) => {
      const c = new Completion(sim, 'c');
      sim.spawn('T', function* () {
        const before = yield* c.isDone();
        yield* c.completeAll();
        yield* c.wait();
        yield* c.wait();
        return [before, yield* c.isDone()];
      });
    });
    expect(r.status).toBe('done');
  });

  it('completions are counted: two complete() for two waits', () => {
    const r = everyRun((sim) => {
      const c = new Completion(sim, 'c');
      sim.spawn('waiter', function* () {
        yield* c.wait();
        yield* c.wait();
      });
      sim.spawn('a', () => c.complete());
      sim.spawn('b', () => c.complete());
    });
    expect(r.failures).toEqual([]);
  });
});

describe('Refcount', () => {
  it('raising a count from zero and dropping it below zero are refcount violations', () => {
    const inc = violation(
      once((sim) => {
        const ref = new Refcount(sim, 'obj->ref', 0);
        sim.spawn('T', () => ref.inc());
      }),
    );
    expect(inc.kind).toBe('refcount');
    expect(inc.message).toBe('refcount_t obj->ref: addition on 0; use-after-free');
    const under = violation(
      once((sim) => {
        const ref = new Refcount(sim, 'obj->ref', 1);
        sim.spawn('T', function* () {
          expect(yield* ref.decAndTest()).toBe(true);
          yield* ref.decAndTest();
        });
      }),
    );
    expect(under.kind).toBe('refcount');
    expect(under.message).toBe('refcount_t obj->ref: underflow; use-after-free');
  });

  it('get after the last put: refcount_inc races, refcount_inc_not_zero does not', () => {
    const lookup = (safe: boolean) => (sim: Sim) => {
      const ref = new Refcount(sim, 'obj->ref');
      sim.spawn('owner', function* () {
        yield* ref.decAndTest();
      });
      sim.spawn('lookup', function* () {
        if (safe) {
          if (yield* ref.incNotZero()) yield* ref.decAndTest();
        } else {
          yield* ref.inc();
          yield* ref.decAndTest();
        }
        return yield* ref.read();
      });
    };
    expect(kinds(everyRun(lookup(false)))).toEqual(['refcount']);
    expect(everyRun(lookup(true)).failures).toEqual([]);
  });
});

describe('DmaFence', () => {
  it('a wait blocks until the fence is signalled', () => {
    const order: string[] = [];
    const r = everyRun((sim) => {
      const f = new DmaFence(sim, 'fence');
      sim.spawn('waiter', function* () {
        yield* f.wait();
        order.push(`woke, signaled=${f.signaled}`);
      });
      sim.spawn('gpu', function* () {
        yield sim.note('job runs');
        yield* f.signal();
      });
    });
    expect(r.failures).toEqual([]);
    expect(new Set(order)).toEqual(new Set(['woke, signaled=true']));
    const never = violation(
      once((sim) => {
        const f = new DmaFence(sim, 'fence');
        sim.spawn('waiter', () => f.wait());
      }),
    );
    expect(never.kind).toBe('deadlock');
    expect(never.details).toEqual(['waiter waits: dma_fence_wait(fence), never signaled']);
  });

  it('a second signal returns -EINVAL and changes nothing', () => {
    const r = once((sim) => {
      const f = new DmaFence(sim, 'fence');
      sim.spawn('T', function* () {
        const before = yield* f.isSignaled();
        const first = yield* f.signal();
        const second = yield* f.signal();
        return [before, first, second, yield* f.isSignaled()];
      });
    });
    expect(r.status).toBe('done');
    expect(r.events!.filter((e) => e.op.kind === 'dma_fence_signal').map((e) => e.result)).toEqual([
      0,
      -EINVAL,
    ]);
  });

  it('waiting for a fence or locking a dma_resv inside a signalling section is reported', () => {
    const wait = violation(
      once((sim) => {
        const f = new DmaFence(sim, 'other');
        sim.spawn('T', function* () {
          yield* dmaFenceBeginSignalling(sim);
          yield* f.wait();
        });
      }),
    );
    expect(wait.kind).toBe('fence-signalling');
    expect(wait.message).toBe('T: dma_fence_wait(other) waits for a fence inside a fence-signalling section');
    const resv = violation(
      once((sim) => {
        const obj = new DmaResv(sim, 'bo->resv');
        sim.spawn('T', function* () {
          yield* dmaFenceBeginSignalling(sim);
          yield* obj.lock(null);
        });
      }),
    );
    expect(resv.kind).toBe('fence-signalling');
    const unbalanced = violation(
      once((sim) => {
        sim.spawn('T', () => dmaFenceEndSignalling(sim));
      }),
    );
    expect(unbalanced.kind).toBe('model-error');
  });

  it('GFP_KERNEL inside a signalling section is alloc-in-forbidden-context', () => {
    const v = violation(
      once((sim) => {
        sim.spawn('T', function* () {
          yield* dmaFenceBeginSignalling(sim);
          yield* kmalloc(sim, 32, 'GFP_KERNEL');
          yield* dmaFenceEndSignalling(sim);
        });
      }),
    );
    expect(v.kind).toBe('alloc-in-forbidden-context');
    expect(v.message).toBe('T: GFP_KERNEL allocation kmalloc(32, GFP_KERNEL) in fence-signalling context');
  });
});

describe('DmaResv (wound-wait)', () => {
  it('an older context wounds a younger holder, which backs off; both finish in every interleaving', () => {
    const log: string[] = [];
    const r = everyRun(woundWait(log).setup);
    expect(r.failures).toEqual([]);
    // The younger context was told to back off in some interleaving; the older one never was.
    expect(log.length).toBeGreaterThan(0);
    expect(new Set(log)).toEqual(new Set(['younger -EDEADLK on bo0->resv']));
  });

  it('locking twice with one context is -EALREADY', () => {
    const r = once((sim) => {
      const a = new DmaResv(sim, 'bo->resv');
      const ctx = new WwAcquireCtx(sim);
      sim.spawn('T', function* () {
        const first = yield* a.lock(ctx);
        const second = yield* a.lock(ctx);
        yield* a.unlock();
        return [first, second];
      });
    });
    expect(r.status).toBe('done');
    expect(r.events!.filter((e) => e.op.kind === 'dma_resv_lock').map((e) => e.result)).toEqual([
      0,
      -EALREADY,
    ]);
  });

  it('a contended lock, with or without a context, returns 0 once it is taken', () => {
    for (const withCtx of [false, true]) {
      const results: number[] = [];
      const r = everyRun((sim) => {
        const a = new DmaResv(sim, 'bo->resv');
        for (const name of ['A', 'B']) {
          const ctx = withCtx ? new WwAcquireCtx(sim, name) : null;
          sim.spawn(name, function* () {
            results.push(yield* a.lock(ctx));
            expect(a.held()).toBe(true);
            yield* a.unlock();
          });
        }
      });
      expect(r.failures).toEqual([]);
      expect(new Set(results)).toEqual(new Set([0]));
    }
  });

  it('dma_resv_lock_slow with locks still held is reported', () => {
    const v = violation(
      once((sim) => {
        const a = new DmaResv(sim, 'a');
        const b = new DmaResv(sim, 'b');
        const ctx = new WwAcquireCtx(sim);
        sim.spawn('T', function* () {
          yield* a.lock(ctx);
          yield* b.lockSlow(ctx);
        });
      }),
    );
    expect(v.message).toBe('dma_resv_lock_slow(b) with locks still held');
  });

  it('fences: reserve, add, and wait for them by usage', () => {
    const r = everyRun((sim) => {
      const resv = new DmaResv(sim, 'bo->resv');
      const write = new DmaFence(sim, 'write');
      const read = new DmaFence(sim, 'read');
      const published = new Completion(sim, 'published');
      sim.spawn('submit', function* () {
        yield* resv.lock(null);
        expect(yield* resv.reserveFences(2)).toBe(0);
        yield* resv.addFence(write, 'WRITE');
        yield* resv.addFence(read, 'READ');
        yield* resv.unlock();
        yield* published.complete();
      });
      sim.spawn('writer-wait', function* () {
        yield* published.wait();
        yield* resv.wait('WRITE');
        expect(write.signaled).toBe(true);
      });
      sim.spawn('gpu', function* () {
        yield* write.signal();
        yield* read.signal();
      });
    });
    expect(r.failures).toEqual([]);
    const noSlot = violation(
      once((sim) => {
        const resv = new DmaResv(sim, 'bo->resv');
        const f = new DmaFence(sim, 'f');
        sim.spawn('T', function* () {
          yield* resv.lock(null);
          yield* resv.addFence(f, 'WRITE');
        });
      }),
    );
    expect(noSlot.message).toBe('dma_resv_add_fence(bo->resv) without a reserved slot');
  });
});

describe('lockdep', () => {
  it('primed like dma_resv_lockdep(): GFP_KERNEL under a lock the invalidate path takes is a cycle', () => {
    const r = everyRun((sim) => {
      primeDmaResvLockdep(sim);
      expect(sim.lockdep.hasEdge(LockMaps.fsReclaim, LockMaps.mmuNotifierStart)).toBe(true);
      const svmm = new Mutex(sim, 'svmm->mutex');
      const notifierMap = lockMap(sim, LockMaps.mmuNotifierStart);
      sim.spawn('invalidate', function* () {
        yield* notifierMap.acquire('mmu_notifier_invalidate_range_start');
        yield* svmm.lock();
        yield* svmm.unlock();
        yield* notifierMap.release();
      });
      sim.spawn('fault', function* () {
        yield* svmm.lock();
        yield* kmalloc(sim, 64, 'GFP_KERNEL', 'page array');
        yield* svmm.unlock();
      });
    });
    // Whichever path runs first, the second closes the cycle; no run is clean.
    expect(kinds(r)).toEqual(['lock-order']);
    expect(r.completedRuns).toBe(r.failures.length);
    const both = r.failures.map((f) => f.violation);
    const viaAlloc = both.find((v) => v.threads[0] === 'fault')!;
    expect(viaAlloc.message).toBe(
      'possible circular locking dependency: fault acquires fs_reclaim while holding svmm->mutex, but fs_reclaim -> svmm->mutex was seen',
    );
    expect(viaAlloc.details).toContain(
      '  fs_reclaim -> __mmu_notifier_invalidate_range_start_map: dma_resv_lockdep() (chain fs_reclaim -> __mmu_notifier_invalidate_range_start_map)',
    );
    const viaInvalidate = both.find((v) => v.threads[0] === 'invalidate')!;
    expect(viaInvalidate.objects).toEqual(['__mmu_notifier_invalidate_range_start_map', 'svmm->mutex']);
  });

  it('without the allocation under the lock there is no cycle', () => {
    const r = everyRun((sim) => {
      primeDmaResvLockdep(sim);
      const svmm = new Mutex(sim, 'svmm->mutex');
      const notifierMap = lockMap(sim, LockMaps.mmuNotifierStart);
      sim.spawn('invalidate', function* () {
        yield* notifierMap.acquire();
        yield* svmm.lock();
        yield* svmm.unlock();
        yield* notifierMap.release();
      });
      sim.spawn('fault', function* () {
        const buf = yield* kmalloc(sim, 64, 'GFP_KERNEL', 'page array');
        yield* svmm.lock();
        yield* svmm.unlock();
        if (buf) yield* kfree(buf);
      });
    });
    expect(r.failures).toEqual([]);
  });

  it('a trylock adds no dependency (it cannot deadlock), but a lock held by trylock is held', () => {
    const trylockBoth = everyRun((sim) => {
      const a = new Mutex(sim, 'A');
      const b = new Mutex(sim, 'B');
      const take = (first: Mutex, second: Mutex) =>
        function* (): Routine {
          yield* first.lock();
          if (yield* second.trylock()) yield* second.unlock();
          yield* first.unlock();
        };
      sim.spawn('T0', take(a, b));
      sim.spawn('T1', take(b, a));
      expect(sim.lockdep.hasEdge('A', 'B')).toBe(false);
    });
    expect(trylockBoth.failures).toEqual([]);
    const heldByTrylock = violation(
      once((sim) => {
        const a = new Mutex(sim, 'A');
        const b = new Mutex(sim, 'B');
        sim.spawn('T0', function* () {
          if (yield* a.trylock()) {
            yield* b.lock();
            yield* b.unlock();
            yield* a.unlock();
          }
        });
        sim.spawn('T1', function* () {
          yield* b.lock();
          yield* a.lock();
          yield* a.unlock();
          yield* b.unlock();
        });
      }),
    );
    expect(heldByTrylock.kind).toBe('lock-order');
  });
});

describe('contexts and allocation', () => {
  it('GFP_KERNEL in reclaim or non-blockable context is reported; leaving the context clears it', () => {
    for (const [ctx, name] of [
      [Ctx.Reclaim, 'reclaim'],
      [Ctx.NonBlock, 'non-blockable'],
    ] as const) {
      const v = violation(
        once((sim) => {
          sim.spawn('T', function* () {
            sim.enterCtx(ctx);
            yield* kmalloc(sim, 8, 'GFP_KERNEL');
          });
        }),
      );
      expect(v.kind).toBe('alloc-in-forbidden-context');
      expect(v.message).toBe(`T: GFP_KERNEL allocation kmalloc(8, GFP_KERNEL) in ${name} context`);
      const ok = once((sim) => {
        sim.spawn('T', function* () {
          sim.enterCtx(ctx);
          yield* kmalloc(sim, 8, 'GFP_NOWAIT');
          sim.exitCtx(ctx);
          yield* kmalloc(sim, 8, 'GFP_KERNEL');
        });
      });
      expect(ok.status).toBe('done');
    }
    const v = violation(
      once((sim) => {
        sim.spawn('T', function* () {
          yield sim.note('x');
          sim.exitCtx(Ctx.Reclaim);
        });
      }),
    );
    expect(v.kind).toBe('model-error');
    expect(v.message).toBe('T leaves reclaim context it is not in');
  });

  it('fault injection explores the -ENOMEM path; GFP_NOFAIL never fails', () => {
    const outcomes: string[] = [];
    const r = everyRun(
      (sim) => {
        sim.spawn('T', function* () {
          const a = yield* kmalloc(sim, 8, 'GFP_KERNEL', 'a');
          const b = yield* kmalloc(sim, 8, 'GFP_NOFAIL', 'b');
          outcomes.push(`${a ? 'a' : '-ENOMEM'} ${b ? 'b' : '-ENOMEM'}`);
        });
      },
      { allocFailures: 1 },
    );
    expect(r.failures).toEqual([]);
    expect(new Set(outcomes)).toEqual(new Set(['a b', '-ENOMEM b']));
  });

  it('kfree twice, or any access after kfree, is a use-after-free', () => {
    const v = violation(
      once((sim) => {
        const buf = new KBuf(sim, 'buf', 8);
        sim.spawn('T', function* () {
          yield* kfree(buf);
          yield* kfree(buf);
        });
      }),
    );
    expect(v.kind).toBe('use-after-free');
    expect(v.message).toBe('T: kfree(buf) on buf after it was freed');
    const onVar = violation(
      once((sim) => {
        const x = new Var(sim, 'node->next', 0);
        sim.spawn('T', function* () {
          yield* x.write(1);
          sim.free(x);
          yield* x.read();
        });
      }),
    );
    expect(onVar.kind).toBe('use-after-free');
    expect(onVar.objects).toEqual(['node->next']);
  });
});

describe('Var, join and model errors', () => {
  it('atomic read-modify-write and cmpxchg', () => {
    const r = once((sim) => {
      const x = new Var(sim, 'x', 5);
      sim.spawn('T', function* () {
        expect(yield* x.update((v) => v * 2)).toBe(5);
        expect(yield* x.cmpxchg(7, 1)).toBe(10);
        expect(x.value).toBe(10);
        expect(yield* x.cmpxchg(10, 1)).toBe(10);
        expect(yield* x.read()).toBe(1);
      });
    });
    expect(r.status).toBe('done');
  });

  it('join waits for the thread and returns its result', () => {
    const r = everyRun((sim) => {
      const x = new Var(sim, 'x', 0);
      const worker = sim.spawn('worker', function* () {
        yield* x.write(1);
        return 'result';
      });
      sim.spawn('parent', function* () {
        expect(yield* sim.join(worker)).toBe('result');
        expect(yield* x.read()).toBe(1);
      });
    });
    expect(r.failures).toEqual([]);
  });

  it('an exception in model code is a model error, not a protocol violation', () => {
    const v = violation(
      once((sim) => {
        sim.spawn('T', function* () {
          yield sim.note('about to throw');
          throw new TypeError('oops');
        });
      }),
    );
    expect(v.kind).toBe('model-error');
    expect(v.message).toBe('model code threw TypeError: oops');
    expect(v.threads).toEqual(['T']);
  });

  it('invariants are checked after every step, properties at the end', () => {
    const inv = violation(
      once((sim) => {
        const x = new Var(sim, 'x', 0);
        sim.spawn('T', function* () {
          yield* x.write(1);
          yield* x.write(2);
          yield* x.write(0);
        });
        return { invariant: { 'x < 2': () => x.value < 2 } };
      }),
    );
    expect(inv.kind).toBe('assertion');
    expect(inv.message).toBe("invariant 'x < 2' does not hold");
    expect(inv.step).toBe(2);
    const prop = violation(
      once((sim) => {
        sim.spawn('T', function* () {
          yield sim.note('n');
        });
        return { properties: { answer: () => 'expected 42' } };
      }),
    );
    expect(prop.message).toBe('answer: expected 42');
    expect(prop.step).toBe(-1);
  });
});
