/**
 * Base class of everything threads operate on (locks, variables, queues, page-table entries).
 */
import type { Op } from './op.js';
import type { Sim } from './sim.js';
import type { Thread } from './thread.js';

/**
 * A simulated object. Ids are assigned in creation order, so two runs of the same program give
 * every object the same id (the explorer and the traces rely on that).
 */
export abstract class SimObject {
  readonly id: number;
  /** Set by {@link Sim.free}: any later operation on it is a use-after-free. */
  freed = false;

  constructor(
    readonly sim: Sim,
    /** Kernel-style name shown in traces (`svmm->mutex`, `mm->mmap_lock`). */
    readonly name: string,
  ) {
    this.id = sim.register(this);
  }

  /** Whether `op` announced by `t` can run now. Blocking operations override this. */
  enabled(_op: Op, _t: Thread): boolean {
    return true;
  }

  /** Performs `op` for `t`; the return value is what the thread's `yield` evaluates to. */
  exec(_op: Op, _t: Thread): unknown {
    return undefined;
  }

  /** Trace text for an operation on this object. */
  describe(op: Op): string {
    return `${op.kind}(${this.name})`;
  }

  /** Text shown when a thread is stuck on this object (deadlock reports). */
  waitReason(op: Op, _t: Thread): string {
    return op.describe();
  }
}
