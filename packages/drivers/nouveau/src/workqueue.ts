/**
 * `struct work_struct` on a kernel worker, as far as the model needs it: `schedule_work()` queues
 * the item unless it is already pending (the PENDING bit), the worker clears PENDING before it
 * calls the function (so a schedule while it runs makes it run again), and `flush_work()` waits
 * until it is neither pending nor running.
 *
 * The kernel's worker pool outlives the item; a simulated run must end with every thread finished,
 * so the driver model stops the worker thread when the object owning the item is destroyed
 * ({@link WorkStruct.stop}, after the kernel's `flush_work()`).
 */
import { Completion, type Routine, type Sim, type Thread, Var } from '@hmmkit/sim';

export class WorkStruct {
  /** `WORK_STRUCT_PENDING_BIT`. */
  readonly pending: Var<boolean>;
  /** The function is running. */
  readonly running: Var<boolean>;
  private readonly kick: Completion;
  private readonly idle: Completion;
  private readonly stopping: Var<boolean>;
  private thread: Thread | null = null;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    private readonly fn: () => Routine,
  ) {
    this.pending = new Var(sim, `${name}.pending`, false);
    this.running = new Var(sim, `${name}.running`, false);
    this.stopping = new Var(sim, `${name}.stop`, false);
    this.kick = new Completion(sim, `${name}.queued`);
    this.idle = new Completion(sim, `${name}.idle`);
  }

  /** Starts the worker thread (`INIT_WORK` + the pool's kworker). */
  start(): void {
    if (this.thread) return;
    const self = this;
    this.thread = this.sim.spawn(`kworker(${this.name})`, function* () {
      for (;;) {
        yield* self.kick.wait('worker_thread: wait for work');
        if (yield* self.stopping.read()) {
          if (!(yield* self.pending.read())) return;
        }
        if (!(yield* self.pending.cmpxchg(true, false, 'clear WORK_STRUCT_PENDING'))) continue;
        yield* self.running.write(true);
        yield* self.fn();
        yield* self.running.write(false);
        yield* self.idle.complete('work done');
      }
    });
  }

  /** `schedule_work()`: true if it was queued, false if it was already pending. */
  *schedule(): Routine<boolean> {
    if ((yield* this.pending.cmpxchg(false, true, 'schedule_work')) !== false) return false;
    yield* this.kick.complete('queue_work');
    return true;
  }

  /** `flush_work()`: waits until the item is neither pending nor running. */
  *flush(): Routine {
    for (;;) {
      const busy = (yield* this.pending.read('flush_work')) || (yield* this.running.read('flush_work'));
      if (!busy) return;
      yield* this.idle.wait('flush_work: wait for the running item');
    }
  }

  /** Model only: stops the worker thread (after {@link flush}) and waits for it to exit. */
  *stop(): Routine {
    if (!this.thread) return;
    yield* this.stopping.write(true);
    yield* this.kick.complete('stop worker');
    yield* this.sim.join(this.thread);
    this.thread = null;
  }
}
