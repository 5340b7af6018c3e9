/**
 * Small kernel facilities the gpuva model needs on top of `@hmmkit/sim`: `struct kref` as a
 * simulated object, lockdep assertions that are only checked on a simulated thread, an allocation
 * ledger for leak checks, and `might_sleep()`.
 */
import {
  Access,
  Ctx,
  type DmaResv,
  ENOMEM,
  type Gfp,
  type KBuf,
  kfree,
  kmalloc,
  Op,
  OpFlag,
  type Routine,
  type Sim,
  SimObject,
} from '@hmmkit/sim';

/**
 * `struct kref` as a simulated object: every get/put is a scheduling point whose footprint is this
 * kref, so concurrent gets and puts from different threads are ordered by the explorer. Raising a
 * count from zero and dropping it below zero are reported as `refcount` violations, and any
 * operation on a kref whose owner was freed (see {@link Sim.free}) as `use-after-free`.
 */
export class Kref extends SimObject {
  constructor(
    sim: Sim,
    name: string,
    /** The count. Setup code and checks may read it directly; threads go through the operations. */
    public count = 1,
  ) {
    super(sim, name);
  }

  /** `kref_get()`. */
  *get(label?: string): Routine {
    yield new Op('kref_get', this, Access.Write, 0, undefined, label);
  }

  /** `kref_get_unless_zero()`: true if a reference was taken. */
  *getUnlessZero(label?: string): Routine<boolean> {
    return (yield new Op('kref_get_unless_zero', this, Access.Write, 0, undefined, label)) as boolean;
  }

  /**
   * `kref_put()` without the release call: true when this put dropped the last reference. `flags`
   * (e.g. `OpFlag.MightSleep` for a put whose release may sleep) are checked against the thread's
   * context like any operation's.
   */
  *put(label?: string, flags = 0): Routine<boolean> {
    return (yield new Op('kref_put', this, Access.Write, flags, undefined, label)) as boolean;
  }

  /**
   * The fast path of `kref_put_mutex()` (`refcount_dec_not_one()`): drops a reference unless it is
   * the last one; true if it dropped one.
   */
  *decNotOne(label?: string): Routine<boolean> {
    return (yield new Op('refcount_dec_not_one', this, Access.Write, 0, undefined, label)) as boolean;
  }

  /** `kref_read()`. */
  *read(label?: string): Routine<number> {
    return (yield new Op('kref_read', this, Access.Read, 0, undefined, label)) as number;
  }

  override exec(op: Op): unknown {
    switch (op.kind) {
      case 'kref_get':
        if (this.count <= 0)
          this.sim.fail('refcount', `kref ${this.name}: addition on 0; use-after-free`, {
            objects: [this.name],
          });
        this.count++;
        return undefined;
      case 'kref_get_unless_zero':
        if (this.count <= 0) return false;
        this.count++;
        return true;
      case 'kref_put':
        if (this.count <= 0)
          this.sim.fail('refcount', `kref ${this.name}: underflow; use-after-free`, { objects: [this.name] });
        this.count--;
        return this.count === 0;
      case 'refcount_dec_not_one':
        if (this.count <= 0)
          this.sim.fail('refcount', `kref ${this.name}: underflow; use-after-free`, { objects: [this.name] });
        if (this.count === 1) return false;
        this.count--;
        return true;
      default:
        return this.count;
    }
  }
}

/** `lockdep_assert_held(lock)`, checked only when called from a simulated thread. */
export function lockdepAssertHeld(sim: Sim, lock: SimObject): void {
  if (sim.current) sim.assertHeld(lock);
}

/** `lockdep_assert_not_held(lock)`, checked only when called from a simulated thread. */
export function lockdepAssertNotHeld(sim: Sim, lock: SimObject): void {
  if (sim.current) sim.assertNotHeld(lock);
}

/** True when the running simulated thread is inside a `dma_fence_begin/end_signalling()` section. */
export function inFenceSignalling(sim: Sim): boolean {
  return !!sim.current?.inCtx(Ctx.FenceSignalling);
}

/** `might_sleep()`: a pure scheduling point that the simulator checks against the thread's context. */
export function mightSleep(label?: string): Op {
  return new Op('might_sleep', null, Access.None, OpFlag.MightSleep, undefined, label);
}

/**
 * Setup-only helpers (`...Now` functions that bypass the simulator) refuse to run on a simulated
 * thread, where they would hide their footprint from the explorer.
 */
export function assertSetup(sim: Sim, fn: string): void {
  if (sim.current) {
    throw new Error(
      `${fn}() is a setup helper; on a simulated thread (${sim.current.name}) use its Routine form`,
    );
  }
}

/**
 * Records every block a model allocates through it and drops it when freed, so checks can assert
 * that nothing leaked (`live.size === 0` once everything is torn down).
 */
export class AllocLedger {
  readonly live = new Set<KBuf>();

  /** `kmalloc(size, gfp)` recorded in the ledger; null for -ENOMEM. */
  *alloc(sim: Sim, size: number, gfp: Gfp, label: string): Routine<KBuf | null> {
    const buf = yield* kmalloc(sim, size, gfp, label);
    if (buf) this.live.add(buf);
    return buf;
  }

  /** `kfree(buf)`; `null` is a no-op, like the kernel's. */
  *free(buf: KBuf | null | undefined, label?: string): Routine {
    if (!buf) return;
    yield* kfree(buf, label);
    this.live.delete(buf);
  }

  /** Names of the blocks still allocated (for leak reports). */
  liveNames(): string[] {
    return [...this.live].map((b) => b.name);
  }
}

/**
 * `dma_resv_reserve_fences(resv, n)` with an explicit allocation mode. Workaround for
 * `DmaResv.reserveFences()` of `@hmmkit/sim`, which always allocates with GFP_KERNEL (the kernel
 * allocates only when the fence array has no room): lets a model reserve with `GFP_NOFAIL` where a
 * driver must not fail for resource reasons. 0 or -ENOMEM; the resv must be locked.
 */
export function* dmaResvReserveFences(resv: DmaResv, n: number, gfp: Gfp, label?: string): Routine<number> {
  resv.assertLocked();
  const buf = yield* kmalloc(resv.sim, 8 * n, gfp, label ?? `${resv.name} fence slots`);
  if (!buf) return -ENOMEM;
  yield new Op('dma_resv_reserve', resv, Access.Write, 0, n, label);
  return 0;
}
