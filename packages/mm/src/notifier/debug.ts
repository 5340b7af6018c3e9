/**
 * Diagnostics of the notifier layer: the kernel's `WARN_ON`/`BUG_ON`, misuse reports, and the
 * per-run switches tests use to reach error paths.
 *
 * @module
 */
import { Ctx, type LockMap, LockMaps, lockMap, type Sim } from '@hmmkit/sim';

/** Violation kinds reported by the notifier layer (besides the sim's own kinds). */
export const NotifierViolation = {
  /** A `WARN_ON` the kernel would print, with `panicOnWarn` set. */
  Warn: 'kernel-warn',
  /** A `BUG_ON` the kernel would hit (the kernel oopses; the run cannot go on). */
  Bug: 'kernel-bug',
  /**
   * A call the kernel does not defend against and that would corrupt its state (removing a
   * notifier that was never inserted, inserting one twice). Reported before any state changes.
   */
  Misuse: 'api-misuse',
} as const;
export type NotifierViolation = (typeof NotifierViolation)[keyof typeof NotifierViolation];

/** Per-run diagnostics and switches of the notifier layer (`notifierDebug(sim)`). */
export interface NotifierDebug {
  /** Every `WARN_ON` that fired in this run, in order. */
  readonly warnings: string[];
  /** Report the first warning as a `kernel-warn` violation (the kernel's `panic_on_warn`). */
  panicOnWarn: boolean;
  /**
   * Have `__mmu_notifier_register()` prime lockdep with `fs_reclaim -> start map`, as kernels from
   * v5.4 did under `CONFIG_LOCKDEP` (the newest revision read no longer carries the block; the same
   * order is primed by `dma_resv_lockdep()`). Default true.
   */
  primeLockdepInRegister: boolean;
  /** How many upcoming `mm_take_all_locks()` calls fail with -EINTR (a fatal signal). Default 0. */
  takeAllLocksFailures: number;
}

export function notifierDebug(sim: Sim): NotifierDebug {
  return sim.singleton('mmu_notifier:debug', () => ({
    warnings: [],
    panicOnWarn: false,
    primeLockdepInRegister: true,
    takeAllLocksFailures: 0,
  }));
}

/** `WARN_ON(cond)`: records the warning (and fails with `panicOnWarn`); returns `cond`. */
export function warnOn(sim: Sim, cond: boolean, message: string): boolean {
  if (!cond) return false;
  const d = notifierDebug(sim);
  d.warnings.push(message);
  if (d.panicOnWarn) sim.fail(NotifierViolation.Warn, `WARNING: ${message}`);
  return true;
}

/** `BUG_ON(cond)`. */
export function bugOn(sim: Sim, cond: boolean, message: string): void {
  if (cond) sim.fail(NotifierViolation.Bug, `kernel BUG: ${message}`);
}

/** A call the kernel would not survive; reported before any state is changed. */
export function misuse(sim: Sim, message: string): never {
  return sim.fail(NotifierViolation.Misuse, message);
}

/** `might_sleep()` for the running thread (sim's check, named here for the notifier code). */
export function mightSleep(sim: Sim, what: string): void {
  sim.mightSleep(what);
}

/** The lockdep pseudo-lock `__mmu_notifier_invalidate_range_start_map` of this run. */
export function startMap(sim: Sim): LockMap {
  return lockMap(sim, LockMaps.mmuNotifierStart);
}

/** Whether the running thread is inside `invalidate_range_start/end` (holds the start map). */
export function insideInvalidation(sim: Sim): boolean {
  const t = sim.current;
  if (!t) return false;
  const map = startMap(sim);
  return t.held.some((h) => h.instance === map);
}

/**
 * `lock_map_acquire(&__mmu_notifier_invalidate_range_start_map); lock_map_release(...)` as done by
 * `mmu_interval_read_begin()` and `mmu_interval_notifier_remove()`: "I may wait for invalidations".
 * Lockdep turns it into a `lock-order` report when the caller holds a lock that an invalidation
 * callback takes. Called from inside an invalidation (a callback), the wait can never end; the
 * kernel's lockdep reports that as recursive locking of the map, the model as a `deadlock`.
 */
export function touchStartMap(sim: Sim, who: string): void {
  const t = sim.current;
  if (!t) return;
  if (insideInvalidation(sim)) {
    sim.fail(
      'deadlock',
      `${who} called by ${t.name} inside an mmu notifier invalidation (from a callback): it may sleep until that very invalidation ends`,
      {
        objects: [LockMaps.mmuNotifierStart],
        details: [`held: ${t.held.map((h) => h.name).join(', ')}`],
      },
    );
  }
  startMap(sim).touchNow(t);
}

/** `lock_map_acquire()` in the running thread's current step (no scheduling point). */
export function acquireStartMap(sim: Sim): void {
  const t = sim.current;
  if (t) startMap(sim).acquireNow(t);
}

/** `lock_map_release()` in the running thread's current step. */
export function releaseStartMap(sim: Sim): void {
  const t = sim.current;
  if (t) startMap(sim).releaseNow(t);
}

/**
 * Enters the context an invalidation callback runs in: non-blockable when the range is (the
 * kernel's `non_block_start()`; it only marks classic callbacks, the model checks interval
 * callbacks too, whose contract is the same) and reclaim-like always (the same callbacks run
 * from direct reclaim through `try_to_unmap()`, so a GFP_KERNEL allocation in one may recurse into
 * reclaim; lockdep's `fs_reclaim -> __mmu_notifier_invalidate_range_start_map` order says so).
 */
export function enterCallbackCtx(sim: Sim, blockable: boolean): void {
  if (!blockable) sim.enterCtx(Ctx.NonBlock);
  sim.enterCtx(Ctx.Reclaim);
}

/** Leaves the context entered by {@link enterCallbackCtx}. */
export function exitCallbackCtx(sim: Sim, blockable: boolean): void {
  sim.exitCtx(Ctx.Reclaim);
  if (!blockable) sim.exitCtx(Ctx.NonBlock);
}
