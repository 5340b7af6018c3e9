/**
 * A model thread: a generator plus the bookkeeping the scheduler and the checkers need.
 */
import { Ctx } from './context.js';
import type { HeldLock } from './lockdep.js';
import { SimObject } from './object.js';
import { Access, Op, type Routine } from './op.js';
import type { Sim } from './sim.js';

/** A thread body: a generator function taking no arguments (close over what it needs). */
export type ThreadBody = () => Routine<unknown>;

/**
 * A simulated kernel thread (a CPU running a syscall, a device fault worker, a scheduler thread).
 * It is itself an object so that `join` can wait on it.
 */
export class Thread extends SimObject {
  /** Position in `sim.threads`; the id used in schedules. */
  readonly tid: number;
  /** The operation announced at the current yield. */
  pending: Op;
  done = false;
  /** The body's return value once done. */
  result: unknown = undefined;
  /** Context nesting counters indexed by {@link Ctx}. */
  readonly ctx = [0, 0, 0, 0];
  /** Locks held, outermost first, as lockdep sees them. */
  readonly held: HeldLock[] = [];
  /** Set by a wake-up of the wait queue this thread sleeps on. */
  woken = false;
  /** @internal State-changing steps this thread made (`cpu_relax()` waits for other threads'). */
  changes = 0;
  /**
   * @internal Other threads' state changes counted at this thread's last `cpu_relax()` (-1: none yet);
   * its next `cpu_relax()` waits for more.
   */
  relaxMark = -1;
  /** Scratch slot for the object this thread waits on (wait queues). */
  waitCond: (() => boolean) | null = null;
  private gen: Routine<unknown> | null = null;

  constructor(
    sim: Sim,
    name: string,
    private readonly body: ThreadBody,
    tid: number,
  ) {
    super(sim, name);
    this.tid = tid;
    this.pending = new Op('start', this, Access.None);
  }

  /** Runs the thread's code from the current yield to the next, resuming it with `value`. */
  advance(value: unknown): void {
    if (!this.gen) this.gen = this.body();
    const r = this.gen.next(value);
    if (r.done) {
      this.done = true;
      this.result = r.value;
    } else {
      this.pending = r.value;
    }
  }

  /** True while the thread is inside context `c`. */
  inCtx(c: Ctx): boolean {
    return this.ctx[c]! > 0;
  }

  override enabled(op: Op, t: Thread): boolean {
    // join(this): runnable once this thread finished. 'start' is always runnable.
    return op.kind === 'start' || (op.kind === 'join' ? this.done : t === this);
  }

  override exec(op: Op): unknown {
    return op.kind === 'join' ? this.result : undefined;
  }

  override describe(op: Op): string {
    return op.kind === 'start' ? `<start ${this.name}>` : `${op.kind}(${this.name})`;
  }

  /** Whether the thread is inside any section where sleeping is forbidden. */
  get atomic(): boolean {
    return this.ctx[Ctx.Atomic]! > 0;
  }
}
