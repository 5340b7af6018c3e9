/**
 * A catalogue of small concurrent programs with known bugs, each next to its fixed version, and of
 * programs whose number of Mazurkiewicz traces is known. The sim tests check that the explorer
 * finds and classifies every bug and proves every fix; benchmarks can reuse the same programs.
 */
import {
  Access,
  type Budgets,
  Completion,
  DmaFence,
  DmaResv,
  dmaFenceBeginSignalling,
  dmaFenceEndSignalling,
  EDEADLK,
  KBuf,
  kfree,
  kmalloc,
  Mutex,
  Op,
  type Program,
  type Routine,
  Spinlock,
  Var,
  type ViolationKind,
  WaitQueue,
  WwAcquireCtx,
} from '../src/index.js';

/** A bug and its fix. */
export interface CatalogueEntry {
  name: string;
  /** What goes wrong, in one sentence. */
  bug: string;
  /** The violation kind the buggy version must be reported with. */
  kind: ViolationKind;
  buggy: Program;
  fixed: Program;
  /** Budgets the entry needs (the livelock one needs a small step budget). */
  budgets?: Budgets;
  /** Randomised strategies that find the bug within `randomRuns` runs (the tests check it). */
  foundBy: ('pct' | 'random')[];
  randomRuns?: number;
}

/** Two CPUs increment a counter with a plain read and write; the fix takes a mutex around both. */
function counter(locked: boolean): Program {
  return {
    name: locked ? 'counter (locked)' : 'counter (lost update)',
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

/** CPU0 takes A then B; CPU1 takes B then A (the bug) or A then B too (the fix). */
function abba(fixed: boolean): Program {
  return {
    name: fixed ? 'ab-ab (one lock order)' : 'ab-ba (lock inversion)',
    setup(sim) {
      const a = new Mutex(sim, 'A');
      const b = new Mutex(sim, 'B');
      const shared = new Var(sim, 'shared', 0);
      const both = (first: Mutex, second: Mutex) =>
        function* (): Routine {
          yield* first.lock();
          yield* second.lock();
          yield* shared.update((v) => v + 1);
          yield* second.unlock();
          yield* first.unlock();
        };
      sim.spawn('CPU0', both(a, b));
      sim.spawn('CPU1', fixed ? both(a, b) : both(b, a));
    },
  };
}

/**
 * A waiter tests the condition and then sleeps without re-testing it after queueing itself (the
 * open-coded `if (!cond) schedule()`); the waker sets the condition and wakes the queue in between.
 * The fix is `wait_event()`, which re-tests after queueing.
 */
function wakeup(fixed: boolean): Program {
  return {
    name: fixed ? 'wait_event (re-test after queueing)' : 'open-coded sleep (missed wake-up)',
    setup(sim) {
      const done = new Var(sim, 'work->done', false);
      const wq = new WaitQueue(sim, 'work->wq');
      sim.spawn('waiter', function* () {
        if (fixed) {
          yield* wq.waitEvent(() => done.value, 'wait_event(wq, done)');
        } else if (!(yield* done.read('if (!done)'))) {
          yield* wq.sleep(() => done.value, 'schedule()');
        }
      });
      sim.spawn('waker', function* () {
        yield* done.write(true);
        yield* wq.wakeUpAll();
      });
    },
  };
}

/**
 * Two threads trylock A then B, and B then A; on failure they drop what they hold, `cpu_relax()`
 * and retry. In lockstep they retry forever. The fix uses one order.
 */
function trylockRetry(fixed: boolean): Program {
  return {
    name: fixed ? 'trylock retry (one order)' : 'trylock retry (livelock)',
    setup(sim) {
      const a = new Mutex(sim, 'A');
      const b = new Mutex(sim, 'B');
      const done = new Var(sim, 'done', 0);
      const grab = (first: Mutex, second: Mutex) =>
        function* (): Routine {
          for (;;) {
            if (yield* first.trylock()) {
              if (yield* second.trylock()) {
                yield* done.update((v) => v + 1);
                yield* second.unlock();
                yield* first.unlock();
                return;
              }
              yield* first.unlock('back off');
            }
            yield sim.relax('retry');
          }
        };
      sim.spawn('CPU0', grab(a, b));
      sim.spawn('CPU1', fixed ? grab(a, b) : grab(b, a));
    },
  };
}

/**
 * A consumer takes a spinlock, finds nothing, and waits for the producer's completion while still
 * holding the spinlock (sleeping in atomic context). The fix drops the spinlock before waiting.
 */
function consumer(fixed: boolean): Program {
  return {
    name: fixed ? 'consumer (unlocks before waiting)' : 'consumer (sleeps under spinlock)',
    setup(sim) {
      const lock = new Spinlock(sim, 'queue->lock');
      const item = new Var<number | null>(sim, 'queue->item', null);
      const ready = new Completion(sim, 'queue->ready');
      sim.spawn('producer', function* () {
        yield* lock.lock();
        yield* item.write(42);
        yield* lock.unlock();
        yield* ready.complete();
      });
      sim.spawn('consumer', function* () {
        for (;;) {
          yield* lock.lock();
          const v = yield* item.read();
          if (v !== null) {
            yield* lock.unlock();
            return v;
          }
          if (fixed) yield* lock.unlock();
          yield* ready.wait('wait_for_completion(&queue->ready)');
          if (!fixed) yield* lock.unlock();
        }
      });
    },
  };
}

/**
 * The fence-signalling path allocates with GFP_KERNEL when the preallocated buffer is not there yet
 * (reclaim may wait for the very fence being signalled). The fix preallocates before
 * `dma_fence_begin_signalling()`.
 */
function fenceSignalling(fixed: boolean): Program {
  return {
    name: fixed ? 'signal path (preallocates)' : 'signal path (GFP_KERNEL inside signalling)',
    setup(sim) {
      const fence = new DmaFence(sim, 'job->fence');
      const prealloc = new Var<KBuf | null>(sim, 'job->prealloc', null);
      sim.spawn('submit', function* () {
        const buf = yield* kmalloc(sim, 64, 'GFP_KERNEL', 'job->prealloc');
        yield* prealloc.write(buf);
      });
      sim.spawn('irq worker', function* () {
        let own: KBuf | null = null;
        if (fixed) own = yield* kmalloc(sim, 64, 'GFP_KERNEL', 'worker buffer');
        yield* dmaFenceBeginSignalling(sim);
        const buf = own ?? (yield* prealloc.read());
        if (!buf) yield* kmalloc(sim, 64, 'GFP_KERNEL', 'late buffer');
        yield* fence.signal();
        yield* dmaFenceEndSignalling(sim);
      });
    },
  };
}

/** An access to a kmalloc'ed buffer (its footprint is the buffer). */
function* use(buf: KBuf): Routine {
  yield new Op('memcpy', buf, Access.Read, 0, undefined, 'use the object');
}

/**
 * A reader loads a published pointer and uses the object without holding the lock, while the
 * owner unpublishes and frees it. The fix uses the object under the lock the owner unpublishes
 * under, and frees only after unlocking.
 */
function publish(fixed: boolean): Program {
  return {
    name: fixed ? 'published object (used under the lock)' : 'published object (use after free)',
    setup(sim) {
      const lock = new Mutex(sim, 'dev->lock');
      const obj = new KBuf(sim, 'dev->obj', 64);
      const ptr = new Var<KBuf | null>(sim, 'dev->ptr', obj);
      sim.spawn('reader', function* () {
        if (fixed) yield* lock.lock();
        const p = yield* ptr.read();
        if (p) yield* use(p);
        if (fixed) yield* lock.unlock();
      });
      sim.spawn('owner', function* () {
        yield* lock.lock();
        const p = yield* ptr.read();
        yield* ptr.write(null);
        yield* lock.unlock();
        if (p) yield* kfree(p);
      });
    },
  };
}

export const lostUpdate = { buggy: counter(false), fixed: counter(true) };
export const abbaDeadlock = { buggy: abba(false), fixed: abba(true) };
export const missedWakeup = { buggy: wakeup(false), fixed: wakeup(true) };
export const trylockLivelock = { buggy: trylockRetry(false), fixed: trylockRetry(true) };
export const sleepInAtomic = { buggy: consumer(false), fixed: consumer(true) };
export const allocInSignalling = { buggy: fenceSignalling(false), fixed: fenceSignalling(true) };
export const useAfterFree = { buggy: publish(false), fixed: publish(true) };

/** Every bug of the catalogue. */
export const catalogue: CatalogueEntry[] = [
  {
    name: 'lost-update',
    bug: 'two unlocked read-modify-writes of one counter lose an increment',
    kind: 'assertion',
    ...lostUpdate,
    foundBy: ['pct', 'random'],
  },
  {
    name: 'abba-deadlock',
    bug: 'two threads take two mutexes in opposite orders',
    kind: 'deadlock',
    ...abbaDeadlock,
    foundBy: ['pct', 'random'],
  },
  {
    name: 'missed-wakeup',
    bug: 'the condition is tested before queueing, so a wake-up in between is lost',
    kind: 'missed-wakeup',
    ...missedWakeup,
    foundBy: ['pct', 'random'],
  },
  {
    name: 'trylock-livelock',
    bug: 'trylock A/B against B/A with back-off retries forever in lockstep',
    kind: 'livelock',
    ...trylockLivelock,
    budgets: { maxSteps: 80 },
    foundBy: [],
  },
  {
    name: 'sleep-in-atomic',
    bug: 'wait_for_completion() with a spinlock held',
    kind: 'sleep-in-atomic',
    ...sleepInAtomic,
    foundBy: ['pct', 'random'],
  },
  {
    name: 'alloc-in-fence-signalling',
    bug: 'GFP_KERNEL allocation between dma_fence_begin_signalling() and _end_signalling()',
    kind: 'alloc-in-forbidden-context',
    ...allocInSignalling,
    foundBy: ['pct', 'random'],
  },
  {
    name: 'use-after-free',
    bug: 'an unlocked reader uses an object the owner unpublishes and frees',
    kind: 'use-after-free',
    ...useAfterFree,
    foundBy: ['pct', 'random'],
  },
];

/** A program whose number of Mazurkiewicz traces was counted by hand. */
export interface PorEntry {
  program: Program;
  /** The number of Mazurkiewicz traces (equivalence classes of complete runs). */
  traces: number;
  /** How that number is derived. */
  derivation: string;
}

/** `n` threads, each writing, reading and writing again its own variable. */
export function disjoint(n: number): PorEntry {
  return {
    program: {
      name: `disjoint-${n}`,
      setup(sim) {
        for (let i = 0; i < n; i++) {
          const own = new Var(sim, `x${i}`, 0);
          sim.spawn(`T${i}`, function* () {
            yield* own.write(1);
            const v = yield* own.read();
            yield* own.write(v + 1);
          });
        }
      },
    },
    traces: 1,
    derivation: 'no two steps of different threads are dependent: every interleaving is one trace',
  };
}

const factorial = (n: number): number => (n <= 1 ? 1 : n * factorial(n - 1));

/** `n` threads each writing one shared variable once. */
export function writers(n: number): PorEntry {
  return {
    program: {
      name: `writers-${n}`,
      setup(sim) {
        const x = new Var(sim, 'x', -1);
        for (let i = 0; i < n; i++)
          sim.spawn(`W${i}`, function* () {
            yield* x.write(i);
          });
      },
    },
    traces: factorial(n),
    derivation: `all writes are pairwise dependent: a trace is an order of the ${n} writes, ${n}! = ${factorial(n)}`,
  };
}

/** `w` threads writing and `r` threads reading one variable, one operation each. */
export function readersWriters(w: number, r: number): PorEntry {
  const slots = w + 1;
  return {
    program: {
      name: `writers-${w}-readers-${r}`,
      setup(sim) {
        const x = new Var(sim, 'x', -1);
        for (let i = 0; i < w; i++)
          sim.spawn(`W${i}`, function* () {
            yield* x.write(i);
          });
        for (let i = 0; i < r; i++)
          sim.spawn(`R${i}`, function* () {
            yield* x.read();
          });
      },
    },
    traces: factorial(w) * slots ** r,
    derivation:
      `writes are totally ordered (${w}! orders); adjacent reads commute, so a trace only fixes which of ` +
      `the ${slots} gaps between writes each read falls in: ${w}! * ${slots}^${r} = ${factorial(w) * slots ** r}`,
  };
}

/** `n` threads each doing `v = READ_ONCE(x); WRITE_ONCE(x, v + 1)`. */
export function readModifyWrite(n: number): PorEntry {
  return {
    program: {
      name: `read-then-write-${n}`,
      setup(sim) {
        const x = new Var(sim, 'x', 0);
        for (let i = 0; i < n; i++) {
          sim.spawn(`T${i}`, function* () {
            const v = yield* x.read();
            yield* x.write(v + 1);
          });
        }
      },
    },
    traces: factorial(n) ** 2,
    derivation:
      `the writes are totally ordered (${n}! orders); the thread whose write is k-th (1-based) may have ` +
      `read in any of the k gaps before its write, independently of the other reads: ${n}! * (1*2*...*${n}) = ` +
      `${n}!^2 = ${factorial(n) ** 2}`,
  };
}

/** Store buffering: A writes x then reads y, B writes y then reads x. */
export function storeBuffering(): PorEntry {
  return {
    program: {
      name: 'store-buffering (two variables)',
      setup(sim) {
        const x = new Var(sim, 'x', 0);
        const y = new Var(sim, 'y', 0);
        sim.spawn('A', function* () {
          yield* x.write(1);
          return yield* y.read();
        });
        sim.spawn('B', function* () {
          yield* y.write(1);
          return yield* x.read();
        });
      },
    },
    traces: 3,
    derivation:
      'the dependent pairs are (A:x=1, B:read x) and (B:y=1, A:read y), 2 x 2 orders, minus the one ' +
      'where both reads come first (read x < x=1 < read y < y=1 < read x is a cycle): 3',
  };
}

/** `n` threads each doing `mutex_lock(m); x++; mutex_unlock(m)`. */
export function lockedIncrements(n: number): PorEntry {
  return {
    program: {
      name: `locked-increment-${n}`,
      setup(sim) {
        const m = new Mutex(sim, 'm');
        const x = new Var(sim, 'x', 0);
        for (let i = 0; i < n; i++) {
          sim.spawn(`T${i}`, function* () {
            yield* m.lock();
            const v = yield* x.read();
            yield* x.write(v + 1);
            yield* m.unlock();
          });
        }
        return { properties: { 'no increment lost': () => x.value === n } };
      },
    },
    traces: factorial(n),
    derivation: `the critical sections cannot overlap, and their order decides every dependency: ${n}!`,
  };
}

/** The programs of the partial-order-reduction table. */
export function porCatalogue(): PorEntry[] {
  return [
    disjoint(3),
    disjoint(5),
    writers(3),
    writers(4),
    writers(5),
    readersWriters(2, 2),
    readersWriters(3, 3),
    readModifyWrite(2),
    readModifyWrite(3),
    storeBuffering(),
    lockedIncrements(3),
    lockedIncrements(4),
  ];
}

/**
 * The ww_mutex acquire loop of a dma_resv user: lock every object with `ctx`; on -EDEADLK unlock
 * everything, `dma_resv_lock_slow()` the contended object, and start over. `log` records back-offs.
 */
export function* lockAll(ctx: WwAcquireCtx, objs: DmaResv[], log: string[] = []): Routine {
  let contended: DmaResv | null = null;
  for (;;) {
    const held: DmaResv[] = contended ? [contended] : [];
    let failed: DmaResv | null = null;
    for (const o of objs) {
      if (o === contended) continue;
      const ret = yield* o.lock(ctx);
      if (ret === -EDEADLK) {
        log.push(`${ctx.name} -EDEADLK on ${o.name}`);
        failed = o;
        break;
      }
      if (ret !== 0) o.sim.fail('assertion', `dma_resv_lock(${o.name}) returned ${ret}`);
      held.push(o);
    }
    if (!failed) return;
    for (const h of held) yield* h.unlock();
    contended = failed;
    yield* failed.lockSlow(ctx);
  }
}

/**
 * Two execbuf-like jobs lock two reservation objects in opposite orders with wound-wait acquire
 * contexts (`exec0` is older); both must finish, in every interleaving.
 */
export function woundWait(log: string[] = []): Program {
  return {
    name: 'wound-wait (two contexts, opposite orders)',
    setup(sim) {
      const a = new DmaResv(sim, 'bo0->resv');
      const b = new DmaResv(sim, 'bo1->resv');
      const done = new Var(sim, 'done', 0);
      const older = new WwAcquireCtx(sim, 'older');
      const younger = new WwAcquireCtx(sim, 'younger');
      const job = (ctx: WwAcquireCtx, objs: DmaResv[]) =>
        function* (): Routine {
          yield* lockAll(ctx, objs, log);
          yield* done.update((v) => v + 1);
          for (const o of objs) yield* o.unlock();
        };
      sim.spawn('exec0', job(older, [a, b]));
      sim.spawn('exec1', job(younger, [b, a]));
      return { properties: { 'both jobs ran': () => done.value === 2 } };
    },
  };
}

/**
 * A thread spins (counting its iterations) until a flag is set, while another changes unrelated
 * state before setting it: how many times the spinner goes round depends on the interleaving.
 * `counts` receives the final count of every complete run.
 */
export function spinCount(counts: number[] = []): Program {
  return {
    name: 'cpu_relax spin count',
    setup(sim) {
      const x = new Var(sim, 'x', 0);
      const y = new Var(sim, 'y', 0);
      const flag = new Var(sim, 'flag', 0);
      const spins = new Var(sim, 'spins', 0);
      sim.spawn('setter', function* () {
        yield* x.write(1);
        yield* y.write(1);
        yield* flag.write(1);
      });
      sim.spawn('spinner', function* () {
        for (;;) {
          yield* spins.update((n) => n + 1);
          if ((yield* flag.read()) === 1) return;
          yield sim.relax();
        }
      });
      return { properties: { record: () => void counts.push(spins.value) } };
    },
  };
}
