/**
 * The global SRCU domain of mm/mmu_notifier.c (`DEFINE_STATIC_SRCU(srcu)`), as far as classic
 * subscriber lifetime needs it: read sections around callbacks, `synchronize_srcu()` waiting for
 * every read section that had started, and `call_srcu()` running a function after a grace period.
 *
 * @module
 */
import { Access, Ctx, Op, OpFlag, type Routine, type Sim, SimObject, type Thread } from '@hmmkit/sim';

/** An SRCU domain: readers are tokens; a grace period waits for the tokens present when it began. */
export class Srcu extends SimObject {
  private nextToken = 1;
  /** Tokens of the read sections in progress. */
  readonly readers = new Set<number>();
  /** Threads started by {@link callSrcu} that have not been waited for yet. */
  readonly callbacks: Thread[] = [];

  /** models `srcu_read_lock()`; returns the index for the unlock. */
  *readLock(label?: string): Routine<number> {
    return (yield new Op('srcu_read_lock', this, Access.Write, 0, undefined, label)) as number;
  }

  /**
   * models `srcu_read_unlock()`. Its footprint is a release: it can only enable a grace-period
   * wait, and otherwise commutes with it.
   */
  *readUnlock(token: number, label?: string): Routine {
    yield new Op('srcu_read_unlock', this, Access.Release, 0, token, label);
  }

  /** models `synchronize_srcu()`: sleeps until every read section that had begun has ended. */
  *synchronize(label?: string): Routine {
    const snapshot = (yield new Op(
      'synchronize_srcu',
      this,
      Access.Write,
      OpFlag.MightSleep,
      undefined,
      label,
    )) as number[] | null;
    if (!snapshot) return;
    yield new Op('srcu_wait_grace_period', this, Access.Acquire, OpFlag.MightSleep, snapshot, label);
  }

  override enabled(op: Op): boolean {
    if (op.kind !== 'srcu_wait_grace_period') return true;
    for (const token of op.arg as number[]) if (this.readers.has(token)) return false;
    return true;
  }

  override exec(op: Op): unknown {
    switch (op.kind) {
      case 'srcu_read_lock': {
        const token = this.nextToken++;
        this.readers.add(token);
        return token;
      }
      case 'srcu_read_unlock':
        if (!this.readers.delete(op.arg as number)) {
          this.sim.fail('bad-unlock', `srcu_read_unlock(${this.name}) of a read section that is not open`);
        }
        return undefined;
      case 'synchronize_srcu':
        return this.readers.size === 0 ? null : [...this.readers];
      default:
        return undefined;
    }
  }

  override describe(op: Op): string {
    return `${op.kind}(&${this.name})`;
  }

  override waitReason(op: Op): string {
    const left = (op.arg as number[]).filter((t) => this.readers.has(t));
    return `${op.describe()}: waiting for ${left.length} SRCU read section(s) to end`;
  }
}

/** The mmu_notifier SRCU domain of this run. */
export function mmuNotifierSrcu(sim: Sim): Srcu {
  return sim.singleton('mmu_notifier:srcu', () => new Srcu(sim, 'srcu'));
}

/**
 * models `call_srcu()`: runs `fn` in a new thread (the SRCU callback context, which cannot sleep)
 * after a grace period.
 */
export function callSrcu(sim: Sim, name: string, fn: () => Routine<void>): Thread {
  const srcu = mmuNotifierSrcu(sim);
  const t = sim.spawn(`call_srcu(${name})`, function* () {
    yield* srcu.synchronize('grace period before the SRCU callback');
    // SRCU callbacks run from softirq/workqueue context with no sleeping allowed.
    sim.enterCtx(Ctx.Atomic);
    yield* fn();
    sim.exitCtx(Ctx.Atomic);
  });
  srcu.callbacks.push(t);
  return t;
}
