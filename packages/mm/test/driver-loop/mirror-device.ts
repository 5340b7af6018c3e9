/**
 * A minimal mirroring "device" for the driver-loop tests (NOT the reference driver): a device page
 * table of `addr -> { frame, write }`, one interval subscription, the documented fault loop and
 * invalidate callback, and named broken variants of both.
 *
 * The fault loop (Documentation/mm/hmm.rst, "the usage pattern"):
 *
 *     again:
 *       seq = mmu_interval_read_begin(sub)
 *       sample the CPU page table                 (hmm_range_fault)
 *       lock(driver->update)
 *       if mmu_interval_read_retry(sub, seq): unlock; goto again
 *       program the device PTE
 *       unlock(driver->update)
 *
 * and invalidate() takes the same lock, calls mmu_interval_set_seq(), clears the device PTEs of
 * the overlap, and unlocks.
 */
import { Access, EBUSY, EFAULT, kmalloc, Mutex, Op, type Routine, type Sim, SimObject } from '@hmmkit/sim';
import type { Mm } from '../../src/mm.js';
import {
  MmuIntervalNotifier,
  type MmuIntervalNotifierOps,
  MmuNotifyEvent,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierRangeBlockable,
} from '../../src/notifier/index.js';

/** What the CPU maps at an address, as the device mirrors it. */
export interface CpuMapping {
  /** The frame; a sim object, so that touching it after it was freed is a use-after-free. */
  frame: SimObject;
  /** Page of a multi-page frame (a large folio); 0 otherwise. */
  index?: number;
  write: boolean;
}

/** The CPU side the device needs: sampling a PTE (a step), and peeking at it (checks only). */
export interface CpuView {
  /** `hmm_range_fault()` of one page: the CPU mapping at `addr`, faulting it in if needed. */
  sample(addr: number, write: boolean): Routine<CpuMapping | null>;
  /** The CPU mapping now, without a step (invariant checks). */
  peek(addr: number): CpuMapping | null;
}

/** The mistakes the tests plant in the loop. */
export type MirrorBug =
  | 'none'
  /** invalidate() calls set_seq after dropping the driver lock. */
  | 'set-seq-outside-lock'
  /** The fault loop checks read_retry before taking the driver lock. */
  | 'retry-before-lock'
  /** The fault loop programs the device PTE before checking read_retry. */
  | 'program-before-retry'
  /** invalidate() returns true without clearing the device PTEs. */
  | 'no-clear'
  /** invalidate() allocates bookkeeping with GFP_KERNEL. */
  | 'gfp-kernel-in-callback'
  /** invalidate() removes its own subscription on MMU_NOTIFY_UNMAP. */
  | 'remove-in-callback';

/** The device page table: a sim object whose entries the explorer sees being read and written. */
export class DevicePageTable extends SimObject {
  readonly entries = new Map<number, CpuMapping>();

  *set(addr: number, m: CpuMapping): Routine<void> {
    yield new Op(
      'dev_pte_set',
      this,
      Access.Write,
      0,
      () => this.entries.set(addr, m),
      `0x${addr.toString(16)} -> ${m.frame.name}${m.write ? ' rw' : ' ro'}`,
    );
  }

  /** Clears every entry in `[start, last]`. */
  *clear(start: number, last: number): Routine<void> {
    yield new Op(
      'dev_pte_clear',
      this,
      Access.Write,
      0,
      () => {
        for (const a of [...this.entries.keys()]) if (a >= start && a <= last) this.entries.delete(a);
      },
      `[0x${start.toString(16)}, 0x${last.toString(16)}]`,
    );
  }

  *lookup(addr: number): Routine<CpuMapping | null> {
    return (yield new Op(
      'dev_pte_lookup',
      this,
      Access.Read,
      0,
      () => this.entries.get(addr) ?? null,
    )) as CpuMapping | null;
  }

  override exec(op: Op): unknown {
    return (op.arg as () => unknown)();
  }
}

export const DEFAULT_MAX_TRIES = 4;

export class MirrorDevice {
  readonly lock: Mutex;
  readonly pt: DevicePageTable;
  readonly sub: MmuIntervalNotifier;
  readonly ops: MmuIntervalNotifierOps;
  /** Invalidate callbacks that returned true, with the device state right after (invariant 7). */
  readonly invalidations: { start: number; last: number; leftover: number[] }[] = [];

  constructor(
    readonly sim: Sim,
    readonly mm: Mm,
    readonly cpu: CpuView,
    readonly bug: MirrorBug = 'none',
    readonly maxTries = DEFAULT_MAX_TRIES,
    name = 'dmirror',
  ) {
    this.lock = new Mutex(sim, `${name}->mutex`, { lockClass: 'dmirror.mutex' });
    this.pt = new DevicePageTable(sim, `${name}->pt`);
    this.sub = new MmuIntervalNotifier(sim, `${name}->notifier`);
    const dev = this;
    this.ops = {
      invalidate(sub, range, curSeq) {
        return dev.invalidate(sub, range, curSeq);
      },
    };
  }

  /** `mmu_interval_notifier_insert()` over `[start, start + length)`. */
  *insert(start: number, length: number): Routine<number> {
    return yield* mmuIntervalNotifierInsert(this.sub, this.mm, start, length, this.ops);
  }

  /** The invalidate callback (and its broken variants). */
  *invalidate(
    sub: MmuIntervalNotifier,
    range: { start: number; end: number; event: string; flags: number },
    curSeq: number,
  ): Routine<boolean> {
    const bug = this.bug;
    if (bug === 'remove-in-callback' && range.event === MmuNotifyEvent.UNMAP) {
      yield* mmuIntervalNotifierRemove(sub);
    }
    if (bug === 'gfp-kernel-in-callback')
      yield* kmalloc(this.sim, 64, 'GFP_KERNEL', 'dmirror invalidation record');
    if (mmuNotifierRangeBlockable(range as never)) yield* this.lock.lock();
    else if (!(yield* this.lock.trylock())) return false;
    if (bug !== 'set-seq-outside-lock') yield* mmuIntervalSetSeq(sub, curSeq);
    const start = Math.max(range.start, sub.start);
    const last = Math.min(range.end - 1, sub.last);
    if (bug !== 'no-clear') yield* this.pt.clear(start, last);
    const leftover = [...this.pt.entries.keys()].filter((a) => a >= start && a <= last);
    yield* this.lock.unlock();
    if (bug === 'set-seq-outside-lock') yield* mmuIntervalSetSeq(sub, curSeq);
    this.invalidations.push({ start, last, leftover });
    return true;
  }

  /** The device fault loop (and its broken variants). 0, -EFAULT (not mapped), -EBUSY (gave up). */
  *fault(addr: number, write: boolean): Routine<number> {
    const bug = this.bug;
    for (let tries = 0; tries < this.maxTries; tries++) {
      const seq = yield* mmuIntervalReadBegin(this.sub);
      const m = yield* this.cpu.sample(addr, write);
      if (!m || (write && !m.write)) return -EFAULT;
      const entry: CpuMapping = { frame: m.frame, index: m.index ?? 0, write: m.write && write };
      if (bug === 'retry-before-lock') {
        if (yield* mmuIntervalReadRetry(this.sub, seq)) continue;
        yield* this.lock.lock();
        yield* this.pt.set(addr, entry);
        yield* this.lock.unlock();
        return 0;
      }
      yield* this.lock.lock();
      if (bug === 'program-before-retry') {
        yield* this.pt.set(addr, entry);
        if (yield* mmuIntervalReadRetry(this.sub, seq)) {
          yield* this.lock.unlock();
          continue;
        }
        yield* this.lock.unlock();
        return 0;
      }
      if (yield* mmuIntervalReadRetry(this.sub, seq)) {
        yield* this.lock.unlock();
        continue;
      }
      yield* this.pt.set(addr, entry);
      yield* this.lock.unlock();
      return 0;
    }
    return -EBUSY;
  }

  /**
   * A device access through its page table (DMA): under the driver lock, as the callback's
   * teardown waits for in-flight accesses. Touching a freed frame is a use-after-free.
   */
  *access(addr: number): Routine<boolean> {
    yield* this.lock.lock();
    const m = yield* this.pt.lookup(addr);
    if (m) {
      // A freed toy frame is caught by the simulator; a freed folio is 'dead'.
      const check = (f: { dead?: boolean }) => {
        if (f.dead)
          this.sim.fail('use-after-free', `device reads 0x${addr.toString(16)} from freed ${m.frame.name}`);
      };
      yield new Op('device_dma', m.frame, Access.Read, 0, check, `device reads 0x${addr.toString(16)}`);
    }
    yield* this.lock.unlock();
    return m !== null;
  }

  /**
   * The mirror invariant: outside an invalidation window (no invalidation of the mm between start
   * and end), every device entry maps the frame the CPU maps at that address, with no more
   * permission. Returns a message when it is broken.
   */
  mirrorInvariant(): string | undefined {
    const subs = this.mm.notifierSubscriptions;
    if (subs && subs.activeInvalidateRanges > 0) return;
    for (const [addr, d] of this.pt.entries) {
      const c = this.cpu.peek(addr);
      const where = `0x${addr.toString(16)}`;
      if (!c) return `device maps ${where} -> ${d.frame.name} but the CPU maps nothing there`;
      if (c.frame !== d.frame)
        return `device maps ${where} -> ${d.frame.name} but the CPU maps ${c.frame.name}`;
      if (d.write && !c.write) return `device maps ${where} writable but the CPU maps it read-only`;
    }
  }
}
