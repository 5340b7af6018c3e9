import { describe, expect, it } from 'vitest';
import {
  Ctx,
  DmaResv,
  dfs,
  explore,
  Mutex,
  type Program,
  Refcount,
  RwSemaphore,
  Spinlock,
  Var,
  WwAcquireCtx,
} from '../src/index.js';

describe('runNow: setup routines', () => {
  it('runs a routine to completion before the threads start, with its result', () => {
    const p: Program = {
      name: 'setup routine',
      setup(sim) {
        const x = new Var(sim, 'x', 1);
        const m = new Mutex(sim, 'm');
        const got = sim.runNow(function* () {
          yield* m.lock();
          const v = yield* x.read();
          yield* x.write(v + 41);
          yield* m.unlock();
          return v;
        });
        sim.spawn('T', function* () {
          yield* x.write((yield* x.read()) * 2);
        });
        return { properties: { 'setup ran first and returned 1': () => got === 1 && x.value === 84 } };
      },
    };
    const r = explore(p, { strategy: dfs() });
    expect(r.failures).toEqual([]);
    expect(r.completedRuns).toBe(1);
  });

  it('a setup routine that would block is an error naming the operation', () => {
    const p: Program = {
      name: 'blocking setup',
      setup(sim) {
        const m = new Mutex(sim, 'busy');
        sim.runNow(function* () {
          yield* m.lock();
        }, 'first');
        sim.runNow(function* () {
          yield* m.lock();
        }, 'second');
      },
    };
    const r = explore(p, { strategy: dfs() });
    expect(r.failures[0]?.violation.kind).toBe('lock-held-at-exit');
  });
});

describe('nested lock classes', () => {
  it('down_write_nested / spin_lock_nested take two instances of one class without a recursive-lock report', () => {
    const p: Program = {
      name: 'nested',
      setup(sim) {
        const a = new RwSemaphore(sim, 'a', { lockClass: 'anon_vma' });
        const b = new RwSemaphore(sim, 'b', { lockClass: 'anon_vma' });
        const s1 = new Spinlock(sim, 'ptl1', { lockClass: 'ptl' });
        const s2 = new Spinlock(sim, 'ptl2', { lockClass: 'ptl' });
        sim.spawn('T', function* () {
          yield* a.downWrite();
          yield* b.downWriteNested(1);
          yield* s1.lock();
          yield* s2.lockNested(1);
          yield* s2.unlock();
          yield* s1.unlock();
          yield* b.upWrite();
          yield* a.upWrite();
        });
      },
    };
    expect(explore(p, { strategy: dfs() }).failures).toEqual([]);
  });

  it('without the subclass the same code is reported as recursive locking', () => {
    const p: Program = {
      name: 'not nested',
      setup(sim) {
        const a = new RwSemaphore(sim, 'a', { lockClass: 'anon_vma' });
        const b = new RwSemaphore(sim, 'b', { lockClass: 'anon_vma' });
        sim.spawn('T', function* () {
          yield* a.downWrite();
          yield* b.downWrite();
          yield* b.upWrite();
          yield* a.upWrite();
        });
      },
    };
    expect(explore(p, { strategy: dfs() }).failures[0]?.violation.kind).toBe('recursive-lock');
  });
});

describe('mightSleep and assertNotHeld', () => {
  it('mightSleep() reports at once in a non-blockable section', () => {
    const p: Program = {
      name: 'might_sleep',
      setup(sim) {
        sim.spawn('T', function* () {
          yield sim.note('enter');
          sim.enterCtx(Ctx.NonBlock);
          sim.mightSleep('mutex_lock()');
        });
      },
    };
    expect(explore(p, { strategy: dfs() }).failures[0]?.violation.kind).toBe('block-in-nonblockable');
  });

  it('assertNotHeld() fails while the lock is held', () => {
    const p: Program = {
      name: 'assert_not_held',
      setup(sim) {
        const m = new Mutex(sim, 'm');
        sim.spawn('T', function* () {
          yield* m.lock();
          sim.assertNotHeld(m);
          yield* m.unlock();
        });
      },
    };
    expect(explore(p, { strategy: dfs() }).failures[0]?.violation.kind).toBe('lockdep-assert');
  });
});

describe('refcount_dec_not_one', () => {
  it('keeps the last reference and drops the others', () => {
    const p: Program = {
      name: 'dec_not_one',
      setup(sim) {
        const r = new Refcount(sim, 'ref', 2);
        const results: boolean[] = [];
        sim.spawn('T', function* () {
          results.push(yield* r.decNotOne());
          results.push(yield* r.decNotOne());
        });
        return {
          properties: { 'true then false, count 1': () => results.join() === 'true,false' && r.count === 1 },
        };
      },
    };
    expect(explore(p, { strategy: dfs() }).failures).toEqual([]);
  });
});

describe('wound-wait: a younger context that takes a lock an older one waits for is wounded', () => {
  it('an older waiter is not starved by a younger thief (no deadlock in any interleaving)', () => {
    // O waits for L1 held by Y; Y drops it and Z (younger than O) grabs it first. Z must be wounded
    // then, or Z waits for L2 held by O while O waits for L1 held by Z: a deadlock.
    const p: Program = {
      name: 'ww-thief',
      setup(sim) {
        const l1 = new DmaResv(sim, 'L1');
        const l2 = new DmaResv(sim, 'L2');
        const o = new WwAcquireCtx(sim, 'O');
        const y = new WwAcquireCtx(sim, 'Y');
        const z = new WwAcquireCtx(sim, 'Z');
        const txn = (ctx: WwAcquireCtx, order: DmaResv[]) =>
          function* () {
            for (;;) {
              const held: DmaResv[] = [];
              let contended: DmaResv | null = null;
              for (const l of order) {
                if ((yield* l.lock(ctx)) === -35) {
                  contended = l;
                  break;
                }
                held.push(l);
              }
              if (!contended) {
                for (const l of held) yield* l.unlock();
                return;
              }
              for (const l of held) yield* l.unlock();
              yield* contended.lockSlow(ctx);
              yield* contended.unlock();
            }
          };
        sim.spawn('O', txn(o, [l2, l1]));
        sim.spawn('Y', txn(y, [l1]));
        sim.spawn('Z', txn(z, [l1, l2]));
      },
    };
    const r = explore(p, { strategy: dfs(), budgets: { maxRuns: 50_000, maxTimeMs: 60_000 } });
    expect(r.failures.map((f) => f.violation.kind)).toEqual([]);
    expect(r.exhausted).toBe(true);
  });

  it('three contexts over three locks always finish (no deadlock), in every interleaving', () => {
    const p: Program = {
      name: 'ww-3',
      setup(sim) {
        const locks = [new DmaResv(sim, 'A'), new DmaResv(sim, 'B'), new DmaResv(sim, 'C')];
        const orders = [
          [0, 1],
          [1, 2],
          [2, 0],
        ];
        orders.forEach((order, i) => {
          sim.spawn(`T${i}`, function* () {
            const ctx = new WwAcquireCtx(sim, `ctx${i}`);
            let held: DmaResv[] = [];
            let slow: DmaResv | null = null;
            for (;;) {
              let contended: DmaResv | null = null;
              for (const k of order) {
                const l = locks[k]!;
                if (l === slow) continue;
                const r = yield* l.lock(ctx);
                if (r === -35) {
                  contended = l;
                  break;
                }
                held.push(l);
              }
              if (!contended) break;
              for (const l of held) yield* l.unlock();
              held = [];
              yield* contended.lockSlow(ctx);
              held.push(contended);
              slow = contended;
            }
            for (const l of held) yield* l.unlock();
          });
        });
      },
    };
    const r = explore(p, { strategy: dfs(), budgets: { maxRuns: 50_000, maxTimeMs: 60_000 } });
    expect(r.failures.map((f) => f.violation.message)).toEqual([]);
    expect(r.exhausted).toBe(true);
  });
});
