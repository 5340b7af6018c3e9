/**
 * `struct mutex`: a sleeping exclusive lock (kernel/locking/mutex.c).
 */
import { Access, Op, OpFlag, type Routine } from '../core/op.js';
import type { Sim } from '../core/sim.js';
import type { Thread } from '../core/thread.js';
import { ExclusiveLock, type LockOptions } from './lock-base.js';

export class Mutex extends ExclusiveLock {
  constructor(sim: Sim, name: string, options: LockOptions = {}) {
    super(sim, name, options);
  }

  /** `mutex_lock()`: sleeps until the mutex is free. */
  *lock(label?: string): Routine {
    yield new Op('mutex_lock', this, Access.Acquire, OpFlag.MightSleep, 0, label);
  }

  /** `mutex_lock_nested()`: a lockdep subclass for taking two instances of one class in order. */
  *lockNested(subclass: number, label?: string): Routine {
    yield new Op('mutex_lock_nested', this, Access.Acquire, OpFlag.MightSleep, subclass, label);
  }

  /** `mutex_trylock()`: never sleeps; true if it took the mutex. */
  *trylock(label?: string): Routine<boolean> {
    return (yield new Op('mutex_trylock', this, Access.Write, 0, 0, label)) as boolean;
  }

  /** `mutex_unlock()`. */
  *unlock(label?: string): Routine {
    yield new Op('mutex_unlock', this, Access.Release, 0, 0, label);
  }

  /** `mutex_is_locked()`, read without synchronisation (a racy hint, as in the kernel). */
  isLocked(): boolean {
    return this.owner !== null;
  }

  override enabled(op: Op, t: Thread): boolean {
    if (op.access === Access.Acquire) return this.owner === null || this.owner === t;
    return true;
  }

  override exec(op: Op, t: Thread): unknown {
    switch (op.kind) {
      case 'mutex_lock':
      case 'mutex_lock_nested':
        this.checkSelf(t, op.kind);
        this.take(t, op.arg as number);
        return undefined;
      case 'mutex_trylock':
        if (this.owner !== null) return false;
        this.take(t, 0, true);
        return true;
      default:
        this.drop(t, op.kind);
        return undefined;
    }
  }
}
