/**
 * `struct rw_semaphore` (kernel/locking/rwsem.c); `mmap_lock` is one. Readers share, a writer
 * excludes everyone. Simplification: a waiting writer does not block new readers (the kernel's
 * handoff rules only change which waiter goes first, not which states are reachable here).
 */
import type { LockClass } from '../core/lockdep.js';
import { SimObject } from '../core/object.js';
import { Access, Op, OpFlag, type Routine } from '../core/op.js';
import type { Sim } from '../core/sim.js';
import type { Thread } from '../core/thread.js';
import type { LockOptions } from './lock-base.js';

export class RwSemaphore extends SimObject {
  writer: Thread | null = null;
  readonly readers: Thread[] = [];
  readonly cls: LockClass;

  constructor(sim: Sim, name: string, options: LockOptions = {}) {
    super(sim, name);
    this.cls = sim.lockdep.classOf(options.lockClass ?? name);
  }

  /** `down_read()`. */
  *downRead(label?: string): Routine {
    yield new Op('down_read', this, Access.AcquireShared, OpFlag.MightSleep, 0, label);
  }
  /** `down_write()`. */
  *downWrite(label?: string): Routine {
    yield new Op('down_write', this, Access.Acquire, OpFlag.MightSleep, 0, label);
  }
  /** `down_read_nested()`: a lockdep subclass, for taking two instances of one class in order. */
  *downReadNested(subclass: number, label?: string): Routine {
    yield new Op('down_read_nested', this, Access.AcquireShared, OpFlag.MightSleep, subclass, label);
  }
  /** `down_write_nested()`. */
  *downWriteNested(subclass: number, label?: string): Routine {
    yield new Op('down_write_nested', this, Access.Acquire, OpFlag.MightSleep, subclass, label);
  }
  /** `down_read_trylock()`. */
  *downReadTrylock(label?: string): Routine<boolean> {
    return (yield new Op('down_read_trylock', this, Access.Write, 0, 0, label)) as boolean;
  }
  /** `down_write_trylock()`. */
  *downWriteTrylock(label?: string): Routine<boolean> {
    return (yield new Op('down_write_trylock', this, Access.Write, 0, 0, label)) as boolean;
  }
  /** `up_read()`. */
  *upRead(label?: string): Routine {
    yield new Op('up_read', this, Access.ReleaseShared, 0, 0, label);
  }
  /** `up_write()`. */
  *upWrite(label?: string): Routine {
    yield new Op('up_write', this, Access.Release, 0, 0, label);
  }
  /** `downgrade_write()`: the writer becomes a reader without letting a writer in between. */
  *downgradeWrite(label?: string): Routine {
    yield new Op('downgrade_write', this, Access.Write, 0, 0, label);
  }

  /** `rwsem_is_locked()`. */
  isLocked(): boolean {
    return this.writer !== null || this.readers.length > 0;
  }

  /** True if `t` holds it for read or write (`lockdep_is_held`). */
  heldBy(t: Thread): boolean {
    return this.writer === t || this.readers.includes(t);
  }

  override enabled(op: Op, t: Thread): boolean {
    if (op.kind === 'down_read' || op.kind === 'down_read_nested')
      return this.writer === null || this.writer === t || this.readers.includes(t);
    if (op.kind === 'down_write' || op.kind === 'down_write_nested')
      return (this.writer === null && this.readers.length === 0) || this.heldBy(t);
    return true;
  }

  override exec(op: Op, t: Thread): unknown {
    const sim = this.sim;
    switch (op.kind) {
      case 'down_read':
      case 'down_write':
      case 'down_read_nested':
      case 'down_write_nested':
        if (this.heldBy(t)) {
          sim.fail(
            'recursive-lock',
            `${t.name}: ${op.kind}(${this.name}) while already holding it (self-deadlock)`,
            {
              objects: [this.name],
            },
          );
        }
        sim.lockAcquired(t, this.cls, this, this.name, op.arg as number);
        if (op.access === Access.AcquireShared) this.readers.push(t);
        else this.writer = t;
        return undefined;
      case 'down_read_trylock':
        if (this.writer !== null) return false;
        sim.lockAcquired(t, this.cls, this, this.name, 0, true);
        this.readers.push(t);
        return true;
      case 'down_write_trylock':
        if (this.writer !== null || this.readers.length > 0) return false;
        sim.lockAcquired(t, this.cls, this, this.name, 0, true);
        this.writer = t;
        return true;
      case 'up_read': {
        const i = this.readers.indexOf(t);
        if (i < 0) sim.fail('bad-unlock', `${t.name}: up_read(${this.name}) without holding it for read`);
        this.readers.splice(i, 1);
        sim.lockReleased(t, this);
        return undefined;
      }
      case 'up_write':
        if (this.writer !== t)
          sim.fail('bad-unlock', `${t.name}: up_write(${this.name}) without holding it for write`);
        this.writer = null;
        sim.lockReleased(t, this);
        return undefined;
      case 'downgrade_write':
        if (this.writer !== t)
          sim.fail('bad-unlock', `${t.name}: downgrade_write(${this.name}) without holding it`);
        this.writer = null;
        this.readers.push(t);
        return undefined;
      default:
        return undefined;
    }
  }

  override waitReason(op: Op): string {
    const holders = this.writer
      ? `write-held by ${this.writer.name}`
      : `read-held by ${this.readers.map((r) => r.name).join(', ')}`;
    return `${op.describe()}, ${holders}`;
  }
}
