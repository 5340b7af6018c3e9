/**
 * `refcount_t` and `struct kref` (include/linux/refcount.h, kref.h). Raising a count from zero and
 * dropping it below zero are the kernel's saturation warnings; here they are violations.
 */
import { SimObject } from '../core/object.js';
import { Access, Op, type Routine } from '../core/op.js';
import type { Sim } from '../core/sim.js';

export class Refcount extends SimObject {
  constructor(
    sim: Sim,
    name: string,
    public count = 1,
  ) {
    super(sim, name);
  }

  /** `refcount_inc()` / `kref_get()`. */
  *inc(label?: string): Routine {
    yield new Op('refcount_inc', this, Access.Write, 0, undefined, label);
  }
  /** `refcount_inc_not_zero()` / `kref_get_unless_zero()`. */
  *incNotZero(label?: string): Routine<boolean> {
    return (yield new Op('refcount_inc_not_zero', this, Access.Write, 0, undefined, label)) as boolean;
  }
  /** `refcount_dec_and_test()` / `kref_put()`: true when this put dropped the last reference. */
  *decAndTest(label?: string): Routine<boolean> {
    return (yield new Op('refcount_dec_and_test', this, Access.Write, 0, undefined, label)) as boolean;
  }
  /**
   * `refcount_dec_not_one()`: drops a reference unless it is the last one (then returns false and
   * leaves it, so the caller can take the lock that the final put needs, as `kref_put_mutex` does).
   */
  *decNotOne(label?: string): Routine<boolean> {
    return (yield new Op('refcount_dec_not_one', this, Access.Write, 0, undefined, label)) as boolean;
  }
  /** `refcount_read()`. */
  *read(label?: string): Routine<number> {
    return (yield new Op('refcount_read', this, Access.Read, 0, undefined, label)) as number;
  }

  override exec(op: Op): unknown {
    switch (op.kind) {
      case 'refcount_inc':
        if (this.count <= 0)
          this.sim.fail('refcount', `refcount_t ${this.name}: addition on 0; use-after-free`);
        this.count++;
        return undefined;
      case 'refcount_inc_not_zero':
        if (this.count <= 0) return false;
        this.count++;
        return true;
      case 'refcount_dec_not_one':
        if (this.count <= 0) this.sim.fail('refcount', `refcount_t ${this.name}: underflow; use-after-free`);
        if (this.count === 1) return false;
        this.count--;
        return true;
      case 'refcount_dec_and_test':
        if (this.count <= 0) this.sim.fail('refcount', `refcount_t ${this.name}: underflow; use-after-free`);
        this.count--;
        return this.count === 0;
      default:
        return this.count;
    }
  }
}
