/**
 * One open file of a dmirror device, after `struct dmirror` of lib/test_hmm.c: the device page
 * table, the mutex that serialises it against invalidations, and the interval notifier over the
 * whole address space of the process that opened it. Also `dmirror_fops_open()`,
 * `dmirror_fops_release()` and the invalidate callback.
 */
import {
  alignDown,
  type Mm,
  MmuIntervalNotifier,
  type MmuIntervalNotifierOps,
  type MmuNotifierRange,
  MmuNotifyEvent,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalSetSeq,
  mmuNotifierRangeBlockable,
  PAGE_SIZE,
  ULONG_MAX,
} from '@hmmkit/mm';
import { EBUSY, ENOMEM, type KBuf, kfree, kmalloc, Mutex, type Routine, type Sim } from '@hmmkit/sim';
import type { DmirrorDevice } from './device.js';
import { DmirrorPt } from './pt.js';
import type { DmirrorVariantName } from './variants.js';

/** Options of an open file (the model's knobs; the kernel has none of them). */
export interface DmirrorFileOptions {
  /** A bug variant, or null for the correct driver. */
  variant?: DmirrorVariantName | null;
  /** Attempts of the fault loop before it gives up with -EBUSY (see {@link DMIRROR_RANGE_FAULT_RETRIES}). */
  retries?: number;
  /** Name in traces (default `dmirror<n>`). */
  name?: string;
  /**
   * What running out of attempts does: return -EBUSY, as the kernel does (default), or also report
   * a `livelock` violation (the conformance adapter: in a finite scenario a loop that never
   * converges is a livelock, and -EBUSY alone would hide it).
   */
  onRetriesExhausted?: 'ebusy' | 'livelock';
}

/**
 * `DMIRROR_RANGE_FAULT_TIMEOUT` / `HMM_RANGE_DEFAULT_TIMEOUT` is 1000 ms of jiffies in the kernel.
 * The model reads no clock: the fault loop makes at most this many attempts (an attempt is one
 * `mmu_interval_read_begin()` + `hmm_range_fault()` + `read_retry` round), then returns -EBUSY, as
 * the kernel does when its time runs out. Every attempt that fails was invalidated by another
 * thread, so in a finite scenario a correct driver needs at most one attempt per racing
 * invalidation; using them all up means the loop is not converging.
 */
export const DMIRROR_RANGE_FAULT_RETRIES = 16;

/** `struct dmirror`. */
export class Dmirror {
  /** `mutex`: serialises the device page table against the invalidate callback. */
  readonly mutex: Mutex;
  /** `pt`: the device page table. */
  readonly pt: DmirrorPt;
  /** `notifier`: the interval subscription over `[0, ULONG_MAX & PAGE_MASK)`. */
  readonly notifier: MmuIntervalNotifier;
  readonly ops: MmuIntervalNotifierOps;
  /** `flags`: set by HMM_DMIRROR_FLAGS (HMM_DMIRROR_FLAG_FAIL_ALLOC). */
  flags = 0;
  readonly variant: DmirrorVariantName | null;
  readonly retries: number;
  readonly name: string;
  /** The notifier is inserted and not yet removed. */
  subscribed = false;
  /** `release` has begun: the device no longer uses its page table (checkers ignore it). */
  releasing = false;
  /** Fault loops that ran out of attempts (-EBUSY), for tests. */
  exhausted = 0;
  readonly onRetriesExhausted: 'ebusy' | 'livelock';

  constructor(
    readonly sim: Sim,
    /** `mdevice`. */
    readonly device: DmirrorDevice,
    /** `notifier.mm`: the process that opened the file. */
    readonly mm: Mm,
    options: DmirrorFileOptions = {},
  ) {
    this.name = options.name ?? `dmirror${sim.nextId('dmirror')}`;
    this.variant = options.variant ?? null;
    this.retries = options.retries ?? DMIRROR_RANGE_FAULT_RETRIES;
    this.onRetriesExhausted = options.onRetriesExhausted ?? 'ebusy';
    this.mutex = new Mutex(sim, `${this.name}->mutex`, { lockClass: 'dmirror.mutex' });
    this.pt = new DmirrorPt(sim, `${this.name}->pt`);
    this.notifier = new MmuIntervalNotifier(sim, `${this.name}->notifier`);
    const self = this;
    this.ops = {
      invalidate(sub, range, curSeq) {
        return dmirrorIntervalInvalidate(self, sub, range, curSeq);
      },
    };
  }

  /** The retry budget of a fault loop ran out: -EBUSY (and a livelock report if asked). */
  retriesExhausted(where: string, start: number, end: number): number {
    this.exhausted++;
    if (this.onRetriesExhausted === 'livelock') {
      this.sim.fail(
        'livelock',
        `${this.name}: ${where} gave up after ${this.retries} attempts on [0x${start.toString(16)}, 0x${end.toString(16)}): every attempt was invalidated`,
        { objects: [this.notifier.name] },
      );
    }
    return -EBUSY;
  }

  toString(): string {
    return `${this.name}(${this.device.name})`;
  }
}

/**
 * models dmirror_fops_open(): allocates the file's state and subscribes to the whole address
 * space of `mm` (the opener's `current->mm`). Returns the open file, or a negative errno.
 */
export function* dmirrorFopsOpen(
  device: DmirrorDevice,
  mm: Mm,
  options: DmirrorFileOptions = {},
): Routine<Dmirror | number> {
  const sim = device.sim;
  const buf = yield* kmalloc(sim, 128, 'GFP_KERNEL', 'struct dmirror');
  if (!buf) return -ENOMEM;
  const dmirror = new Dmirror(sim, device, mm, options);
  const ret = yield* mmuIntervalNotifierInsert(
    dmirror.notifier,
    mm,
    0,
    alignDown(ULONG_MAX, PAGE_SIZE),
    dmirror.ops,
  );
  if (ret) {
    yield* kfree(buf);
    return ret;
  }
  dmirror.subscribed = true;
  dmirrorBufs.set(dmirror, buf);
  return dmirror;
}

const dmirrorBufs = new WeakMap<Dmirror, KBuf>();

/** models dmirror_fops_release(): unsubscribes, then drops the device page table. */
export function* dmirrorFopsRelease(dmirror: Dmirror): Routine {
  dmirror.releasing = true;
  yield* mmuIntervalNotifierRemove(dmirror.notifier);
  dmirror.subscribed = false;
  yield* dmirror.pt.destroy('xa_destroy');
  const buf = dmirrorBufs.get(dmirror);
  if (buf) yield* kfree(buf);
}

/** models dmirror_do_update(): erases the entries of `[start >> PAGE_SHIFT, end >> PAGE_SHIFT]`. */
export function* dmirrorDoUpdate(dmirror: Dmirror, start: number, end: number): Routine {
  // The kernel's range is inclusive of end >> PAGE_SHIFT: one page of harmless over-invalidation.
  const last = Math.min(Math.floor(end / PAGE_SIZE), Math.floor(ULONG_MAX / PAGE_SIZE));
  yield* dmirror.pt.eraseRange(Math.floor(start / PAGE_SIZE), last, 'dmirror_do_update');
}

/** models dmirror_interval_invalidate(). */
export function* dmirrorIntervalInvalidate(
  dmirror: Dmirror,
  mni: MmuIntervalNotifier,
  range: MmuNotifierRange,
  curSeq: number,
): Routine<boolean> {
  const variant = dmirror.variant;
  // Our own migrations invalidate our mappings themselves, as part of the migration.
  if (
    variant !== 'no-migrate-filter' &&
    range.event === MmuNotifyEvent.MIGRATE &&
    range.owner === dmirror.device
  ) {
    return true;
  }
  if (variant === 'gfp-kernel-in-invalidate') {
    const rec = yield* kmalloc(dmirror.sim, 64, 'GFP_KERNEL', 'dmirror invalidation record');
    if (rec) yield* kfree(rec);
  }
  if (variant === 'trylock-skip-clear') {
    // The mistake: trylock whatever the range, and a contended mutex skips the teardown.
    if (!(yield* dmirror.mutex.trylock('mutex_trylock'))) return true;
  } else if (mmuNotifierRangeBlockable(range)) {
    yield* dmirror.mutex.lock('mutex_lock');
  } else if (!(yield* dmirror.mutex.trylock('mutex_trylock'))) {
    return false;
  }
  if (variant !== 'set-seq-outside-lock') yield* mmuIntervalSetSeq(mni, curSeq);
  if (variant !== 'invalidate-no-clear') yield* dmirrorDoUpdate(dmirror, range.start, range.end);
  yield* dmirror.mutex.unlock('mutex_unlock');
  if (variant === 'set-seq-outside-lock') yield* mmuIntervalSetSeq(mni, curSeq);
  return true;
}
