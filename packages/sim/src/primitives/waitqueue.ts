/**
 * `wait_queue_head_t` (kernel/sched/wait.c). `waitEvent` is the kernel's `wait_event()`: queue
 * yourself, test the condition, sleep until woken, test again. A sleep that skips the re-test after
 * queueing can miss a wake-up; the simulator reports such a sleeper as `missed-wakeup`.
 */
import { SimObject } from '../core/object.js';
import { Access, Op, OpFlag, type Routine } from '../core/op.js';
import type { Thread } from '../core/thread.js';

export class WaitQueue extends SimObject {
  readonly waiters: Thread[] = [];

  /**
   * `wait_event(wq, cond)`. The condition is evaluated in a step that is ordered against every other
   * step (it may read anything), right after the thread queued itself.
   */
  *waitEvent(cond: () => boolean, label?: string): Routine {
    for (;;) {
      const ok = (yield new Op('prepare_to_wait', this, Access.Global, 0, cond, label)) as boolean;
      if (ok) return;
      yield new Op('schedule', this, Access.Write, OpFlag.MightSleep, cond, label);
    }
  }

  /**
   * Sleeps on the queue without testing any condition after queueing: the open-coded
   * `if (!cond) schedule()` that the kernel's helpers exist to prevent. `cond` is only used to
   * classify a stuck sleeper as a missed wake-up.
   */
  *sleep(cond: () => boolean, label?: string): Routine {
    yield new Op('add_wait_queue', this, Access.Write, 0, cond, label);
    yield new Op('schedule', this, Access.Write, OpFlag.MightSleep, cond, label);
  }

  /** `wake_up_all()`: wakes every queued sleeper. */
  *wakeUpAll(label?: string): Routine {
    yield new Op('wake_up_all', this, Access.Write, 0, undefined, label);
  }

  /** `wq_has_sleeper()`-style check for tests. */
  hasSleeper(): boolean {
    return this.waiters.length > 0;
  }

  override enabled(op: Op, t: Thread): boolean {
    return op.kind !== 'schedule' || t.woken;
  }

  override exec(op: Op, t: Thread): unknown {
    switch (op.kind) {
      case 'prepare_to_wait': {
        const cond = op.arg as () => boolean;
        if (cond()) {
          this.dequeue(t);
          return true;
        }
        this.enqueue(t, cond);
        return false;
      }
      case 'add_wait_queue':
        this.enqueue(t, op.arg as () => boolean);
        return undefined;
      case 'schedule':
        t.waitCond = null;
        return undefined;
      default:
        for (const w of this.waiters) w.woken = true;
        this.waiters.length = 0;
        return undefined;
    }
  }

  private enqueue(t: Thread, cond: () => boolean): void {
    t.woken = false;
    t.waitCond = cond;
    if (!this.waiters.includes(t)) this.waiters.push(t);
  }

  private dequeue(t: Thread): void {
    const i = this.waiters.indexOf(t);
    if (i >= 0) this.waiters.splice(i, 1);
    t.waitCond = null;
  }

  override waitReason(op: Op): string {
    return `${op.describe()} on ${this.name}, not woken`;
  }
}
