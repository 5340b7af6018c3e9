/**
 * `struct dma_resv` with its `ww_mutex` (drivers/dma-buf/dma-resv.c, kernel/locking/ww_mutex.h).
 *
 * The reservation class is wound-wait (`DEFINE_WW_CLASS`): every acquire context gets a stamp;
 * an older context that finds a lock held by a younger one wounds the younger and waits; a wounded
 * context that already holds locks gets -EDEADLK when it next has to wait, drops everything and
 * retries with `dma_resv_lock_slow()`. Locks of the one class may be nested under a context.
 */
import { EALREADY, EDEADLK, ENOMEM } from '../core/errno.js';
import { Access, Op, OpFlag, type Routine } from '../core/op.js';
import type { Sim } from '../core/sim.js';
import type { Thread } from '../core/thread.js';
import { kmalloc } from './alloc.js';
import type { DmaFence } from './dma-fence.js';
import { ExclusiveLock } from './lock-base.js';
import { LockMaps } from './lockmap.js';

/** `struct ww_acquire_ctx`. */
export class WwAcquireCtx {
  /** Lower is older; older contexts win. */
  readonly stamp: number;
  acquired = 0;
  wounded = false;
  done = false;

  /** `ww_acquire_init()`. */
  constructor(
    sim: Sim,
    readonly name = 'ww_ctx',
  ) {
    const counter = sim.singleton('ww-stamp', () => ({ next: 1 }));
    this.stamp = counter.next++;
  }
}

/** How fences in a reservation are used (`enum dma_resv_usage`), weakest last. */
export type DmaResvUsage = 'KERNEL' | 'WRITE' | 'READ' | 'BOOKKEEP';
const usageRank: Record<DmaResvUsage, number> = { KERNEL: 0, WRITE: 1, READ: 2, BOOKKEEP: 3 };

export class DmaResv extends ExclusiveLock {
  ownerCtx: WwAcquireCtx | null = null;
  readonly fences: { fence: DmaFence; usage: DmaResvUsage }[] = [];
  /** Slots reserved with `dma_resv_reserve_fences()` and not yet used. */
  reserved = 0;

  constructor(sim: Sim, name: string) {
    super(sim, name, { lockClass: LockMaps.reservation }, true);
  }

  /**
   * `dma_resv_lock(obj, ctx)`: 0, -EALREADY if `ctx` holds it already, or -EDEADLK if `ctx` was
   * wounded and must back off. Without a context it simply sleeps until free.
   */
  *lock(ctx: WwAcquireCtx | null, label?: string): Routine<number> {
    // With a context, a lock attempt reads and writes acquire-context state shared with the other
    // contexts (wounding), which no single object's footprint covers: it is ordered with everything.
    let r = (yield new Op(
      'dma_resv_lock',
      this,
      ctx ? Access.Global : Access.Write,
      OpFlag.MightSleep | OpFlag.ResvLock,
      ctx,
      label,
    )) as number | 'wait';
    while (r === 'wait') {
      // Sleeps until the lock is free, then has taken it (0), or, wounded while holding locks, -EDEADLK.
      r = (yield new Op('ww_mutex_wait', this, ctx ? Access.Global : Access.Acquire, 0, ctx, label)) as
        | number
        | 'wait';
    }
    return r;
  }

  /** `dma_resv_lock_slow(obj, ctx)`: after backing off, waits for the contended lock unconditionally. */
  *lockSlow(ctx: WwAcquireCtx, label?: string): Routine {
    if (ctx.acquired !== 0)
      this.sim.fail('assertion', `dma_resv_lock_slow(${this.name}) with locks still held`);
    yield new Op('dma_resv_lock_slow', this, Access.Global, OpFlag.MightSleep | OpFlag.ResvLock, ctx, label);
  }

  /** `dma_resv_trylock(obj)`. */
  *trylock(label?: string): Routine<boolean> {
    return (yield new Op('dma_resv_trylock', this, Access.Write, 0, null, label)) as boolean;
  }

  /** `dma_resv_unlock(obj)`. */
  *unlock(label?: string): Routine {
    yield new Op('dma_resv_unlock', this, Access.Release, 0, undefined, label);
  }

  /** `dma_resv_reserve_fences(obj, n)`: allocates slots (GFP_KERNEL); 0 or -ENOMEM. Lock held. */
  *reserveFences(n: number, label?: string): Routine<number> {
    this.assertLocked();
    // Slots reserved earlier and not used yet count: only the shortfall is allocated.
    const need = n - this.reserved;
    if (need <= 0) return 0;
    const buf = yield* kmalloc(this.sim, 8 * need, 'GFP_KERNEL', label ?? `${this.name} fence slots`);
    if (!buf) return -ENOMEM;
    yield new Op('dma_resv_reserve', this, Access.Write, 0, need, label);
    return 0;
  }

  /** `dma_resv_add_fence(obj, fence, usage)`: needs the lock and a reserved slot. */
  *addFence(fence: DmaFence, usage: DmaResvUsage, label?: string): Routine {
    yield new Op('dma_resv_add_fence', this, Access.Write, 0, { fence, usage }, label);
  }

  /** `dma_resv_test_signaled(obj, usage)`: all fences at `usage` or stronger are signaled. */
  testSignaled(usage: DmaResvUsage): boolean {
    return this.fences.every((f) => usageRank[f.usage] > usageRank[usage] || f.fence.signaled);
  }

  /** `dma_resv_wait_timeout(obj, usage, ...)` without a timeout: waits for the fences at `usage`. */
  *wait(usage: DmaResvUsage, label?: string): Routine {
    // Runnable once fences (other objects) are signaled: its footprint is ordered with everything.
    yield new Op('dma_resv_wait', this, Access.Global, OpFlag.MightSleep | OpFlag.FenceWait, usage, label);
  }

  /** `dma_resv_held(obj)` for the running thread. */
  held(): boolean {
    return this.sim.isHeld(this);
  }

  /** `dma_resv_assert_held(obj)`. */
  assertLocked(): void {
    this.sim.assertHeld(this);
  }

  override enabled(op: Op, t: Thread): boolean {
    switch (op.kind) {
      case 'ww_mutex_wait': {
        const ctx = op.arg as WwAcquireCtx | null;
        return this.owner === null || (ctx?.wounded === true && ctx.acquired > 0);
      }
      case 'dma_resv_lock_slow':
        return this.owner === null || this.owner === t;
      case 'dma_resv_wait':
        return this.testSignaled(op.arg as DmaResvUsage);
      default:
        return true;
    }
  }

  override exec(op: Op, t: Thread): unknown {
    const ctx = op.arg as WwAcquireCtx | null;
    switch (op.kind) {
      case 'dma_resv_lock':
      case 'ww_mutex_wait':
        if (this.owner === null) {
          this.grab(t, ctx);
          return 0;
        }
        if (ctx && this.ownerCtx === ctx) return -EALREADY;
        if (this.owner === t) this.checkSelf(t, 'dma_resv_lock');
        if (ctx?.wounded && ctx.acquired > 0) return -EDEADLK;
        // Wound-wait: an older context wounds a younger holder, then waits like everyone else.
        if (ctx && this.ownerCtx && ctx.stamp < this.ownerCtx.stamp) this.ownerCtx.wounded = true;
        return 'wait';
      case 'dma_resv_lock_slow':
        this.checkSelf(t, 'dma_resv_lock_slow');
        this.grab(t, ctx);
        return undefined;
      case 'dma_resv_trylock':
        if (this.owner !== null) return false;
        this.grab(t, null, true);
        return true;
      case 'dma_resv_unlock':
        this.drop(t, 'dma_resv_unlock');
        if (this.ownerCtx) this.ownerCtx.acquired--;
        this.ownerCtx = null;
        return undefined;
      case 'dma_resv_reserve':
        this.reserved += op.arg as number;
        return undefined;
      case 'dma_resv_add_fence': {
        if (this.owner !== t)
          this.sim.fail('lockdep-assert', `dma_resv_add_fence(${this.name}) without holding the lock`);
        if (this.reserved <= 0)
          this.sim.fail('assertion', `dma_resv_add_fence(${this.name}) without a reserved slot`);
        this.reserved--;
        this.fences.push(op.arg as { fence: DmaFence; usage: DmaResvUsage });
        return undefined;
      }
      default:
        return undefined;
    }
  }

  private grab(t: Thread, ctx: WwAcquireCtx | null, trylock = false): void {
    this.take(t, 0, trylock);
    this.ownerCtx = ctx;
    if (ctx) {
      ctx.acquired++;
      ctx.wounded = ctx.wounded && ctx.acquired > 1;
      // Wound-wait on acquisition: a younger context that takes a lock an older one is already
      // waiting for is wounded at once (the kernel's __ww_mutex_check_waiters()).
      if (this.olderWaiter(t, ctx)) ctx.wounded = true;
    }
  }

  private olderWaiter(self: Thread, ctx: WwAcquireCtx): boolean {
    for (const w of this.sim.threads) {
      if (w === self || w.done || w.pending.obj !== this) continue;
      const k = w.pending.kind;
      if (k !== 'ww_mutex_wait' && k !== 'dma_resv_lock_slow') continue;
      const other = w.pending.arg as WwAcquireCtx | null;
      if (other && other.stamp < ctx.stamp) return true;
    }
    return false;
  }

  override describe(op: Op): string {
    const ctx = op.arg as WwAcquireCtx | null;
    if (op.kind === 'dma_resv_lock' || op.kind === 'ww_mutex_wait') {
      return `${op.kind}(${this.name}, ${ctx ? `${ctx.name}#${ctx.stamp}` : 'NULL'})`;
    }
    return super.describe(op);
  }
}
