/**
 * `spinlock_t`: an exclusive lock that puts its holder in atomic context, so anything that may
 * sleep while it is held is reported (`BUG: sleeping function called from invalid context`).
 */
import { Ctx } from '../core/context.js';
import { Access, Op, type Routine } from '../core/op.js';
import type { Sim } from '../core/sim.js';
import type { Thread } from '../core/thread.js';
import { ExclusiveLock, type LockOptions } from './lock-base.js';

export class Spinlock extends ExclusiveLock {
  constructor(sim: Sim, name: string, options: LockOptions = {}) {
    super(sim, name, options);
  }

  /** `spin_lock()`: spins (is not runnable) until free; the holder is atomic. */
  *lock(label?: string): Routine {
    yield new Op('spin_lock', this, Access.Acquire, 0, 0, label);
  }

  /** `spin_lock_nested()`: a lockdep subclass, for taking two instances of one class in order. */
  *lockNested(subclass: number, label?: string): Routine {
    yield new Op('spin_lock_nested', this, Access.Acquire, 0, subclass, label);
  }

  /** `spin_trylock()`. */
  *trylock(label?: string): Routine<boolean> {
    return (yield new Op('spin_trylock', this, Access.Write, 0, 0, label)) as boolean;
  }

  /** `spin_unlock()`. */
  *unlock(label?: string): Routine {
    yield new Op('spin_unlock', this, Access.Release, 0, 0, label);
  }

  override enabled(op: Op, t: Thread): boolean {
    if (op.access === Access.Acquire) return this.owner === null || this.owner === t;
    return true;
  }

  override exec(op: Op, t: Thread): unknown {
    switch (op.kind) {
      case 'spin_lock':
      case 'spin_lock_nested':
        this.checkSelf(t, op.kind);
        this.take(t, op.arg as number);
        t.ctx[Ctx.Atomic]!++;
        return undefined;
      case 'spin_trylock':
        if (this.owner !== null) return false;
        this.take(t, 0, true);
        t.ctx[Ctx.Atomic]!++;
        return true;
      default:
        this.drop(t, op.kind);
        t.ctx[Ctx.Atomic]!--;
        return undefined;
    }
  }
}
