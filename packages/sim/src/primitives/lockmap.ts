/**
 * Lockdep pseudo-locks (`struct lockdep_map` with `lock_map_acquire/release`): annotations that
 * tell lockdep "this code may wait for whatever runs under this map", without any real locking.
 * The kernel uses them for `fs_reclaim`, `__mmu_notifier_invalidate_range_start_map` and the
 * dma-fence signalling map.
 */

import type { LockClass } from '../core/lockdep.js';
import { SimObject } from '../core/object.js';
import { Access, Op, type Routine } from '../core/op.js';
import type { Sim } from '../core/sim.js';
import type { Thread } from '../core/thread.js';

export class LockMap extends SimObject {
  readonly cls: LockClass;

  constructor(sim: Sim, name: string) {
    super(sim, name);
    this.cls = sim.lockdep.classOf(name);
  }

  /** `lock_map_acquire(map)`. */
  *acquire(label?: string): Routine {
    yield new Op('lock_map_acquire', this, Access.None, 0, undefined, label);
  }
  /** `lock_map_release(map)`. */
  *release(label?: string): Routine {
    yield new Op('lock_map_release', this, Access.None, 0, undefined, label);
  }
  /** `lock_map_acquire(map); lock_map_release(map);` in one step: "I may wait for holders of it". */
  *touch(label?: string): Routine {
    yield new Op('lock_map_touch', this, Access.None, 0, undefined, label);
  }

  /** The same as an immediate acquire/release pair, for use inside another object's exec. */
  touchNow(t: Thread): void {
    this.sim.lockAcquired(t, this.cls, this, this.name);
    this.sim.lockReleased(t, this);
  }
  /** Acquire for use inside another object's exec. */
  acquireNow(t: Thread): void {
    this.sim.lockAcquired(t, this.cls, this, this.name);
  }
  /** Release for use inside another object's exec. */
  releaseNow(t: Thread): void {
    this.sim.lockReleased(t, this);
  }

  override exec(op: Op, t: Thread): unknown {
    if (op.kind === 'lock_map_acquire') this.acquireNow(t);
    else if (op.kind === 'lock_map_release') this.releaseNow(t);
    else this.touchNow(t);
    return undefined;
  }
}

/** Well-known pseudo-lock names, shared so priming and annotations agree. */
export const LockMaps = {
  fsReclaim: 'fs_reclaim',
  mmuNotifierStart: '__mmu_notifier_invalidate_range_start_map',
  dmaFence: 'dma_fence_map',
  reservation: 'reservation_ww_class_mutex',
  mmapLock: 'mmap_lock',
} as const;

/** The per-run pseudo-lock named `name`. */
export function lockMap(sim: Sim, name: string): LockMap {
  return sim.singleton(`lockmap:${name}`, () => new LockMap(sim, name));
}

/**
 * Primes the lock order the kernel primes in `dma_resv_lockdep()` at boot: mmap_lock, then
 * dma_resv, then fs_reclaim, then the mmu-notifier start map, then fence waits.
 */
export function primeDmaResvLockdep(sim: Sim): void {
  sim.lockdep.prime(
    [
      LockMaps.mmapLock,
      LockMaps.reservation,
      LockMaps.fsReclaim,
      LockMaps.mmuNotifierStart,
      LockMaps.dmaFence,
    ],
    'dma_resv_lockdep()',
  );
}
