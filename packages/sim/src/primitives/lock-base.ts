/**
 * Shared behaviour of the sleeping and spinning locks: ownership, lockdep class, deadlock text.
 */
import type { LockClass } from '../core/lockdep.js';
import { SimObject } from '../core/object.js';
import type { Op } from '../core/op.js';
import type { Sim } from '../core/sim.js';
import type { Thread } from '../core/thread.js';

export interface LockOptions {
  /**
   * Lockdep class name. Instances created at one place share a class (`nouveau_svmm.mutex`);
   * defaults to the instance name.
   */
  lockClass?: string;
}

/** An exclusive lock with an owner. */
export abstract class ExclusiveLock extends SimObject {
  owner: Thread | null = null;
  readonly cls: LockClass;

  constructor(sim: Sim, name: string, options: LockOptions = {}, nestable = false) {
    super(sim, name);
    this.cls = sim.lockdep.classOf(options.lockClass ?? name, nestable);
  }

  override waitReason(op: Op, _t: Thread): string {
    return `${op.describe()}, held by ${this.owner?.name ?? 'nobody'}`;
  }

  /** Takes ownership for `t` and records it with lockdep (a trylock adds no dependency). */
  protected take(t: Thread, subclass = 0, trylock = false): void {
    this.sim.lockAcquired(t, this.cls, this, this.name, subclass, trylock);
    this.owner = t;
  }

  /** Drops ownership; reports an unlock by a thread that does not hold it. */
  protected drop(t: Thread, verb: string): void {
    if (this.owner !== t) {
      this.sim.fail(
        'bad-unlock',
        `${t.name}: ${verb}(${this.name}) but it is held by ${this.owner?.name ?? 'nobody'}`,
        {
          objects: [this.name],
        },
      );
    }
    this.sim.lockReleased(t, this);
    this.owner = null;
  }

  /** Self-deadlock check at acquisition time: re-locking a lock you hold never returns. */
  protected checkSelf(t: Thread, verb: string): void {
    if (this.owner === t) {
      this.sim.fail(
        'recursive-lock',
        `${t.name}: ${verb}(${this.name}) while already holding it (self-deadlock)`,
        {
          objects: [this.name],
        },
      );
    }
  }
}
