/**
 * `struct completion` (kernel/sched/completion.c).
 */
import { SimObject } from '../core/object.js';
import { Access, Op, OpFlag, type Routine } from '../core/op.js';

const ALL = Number.MAX_SAFE_INTEGER;

export class Completion extends SimObject {
  done = 0;

  /** `wait_for_completion()`: sleeps until completed, consuming one completion. */
  *wait(label?: string): Routine {
    yield new Op('wait_for_completion', this, Access.Write, OpFlag.MightSleep, undefined, label);
  }
  /** `complete()`: releases one waiter (or the next wait). */
  *complete(label?: string): Routine {
    yield new Op('complete', this, Access.Write, 0, undefined, label);
  }
  /** `complete_all()`: releases every current and future waiter. */
  *completeAll(label?: string): Routine {
    yield new Op('complete_all', this, Access.Write, 0, undefined, label);
  }
  /** `completion_done()`. */
  *isDone(label?: string): Routine<boolean> {
    return (yield new Op('completion_done', this, Access.Read, 0, undefined, label)) as boolean;
  }

  override enabled(op: Op): boolean {
    return op.kind !== 'wait_for_completion' || this.done > 0;
  }

  override exec(op: Op): unknown {
    switch (op.kind) {
      case 'wait_for_completion':
        if (this.done !== ALL) this.done--;
        return undefined;
      case 'complete':
        if (this.done !== ALL) this.done++;
        return undefined;
      case 'complete_all':
        this.done = ALL;
        return undefined;
      default:
        return this.done > 0;
    }
  }
}
