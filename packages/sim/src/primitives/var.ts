/**
 * A shared variable: plain or atomic memory that threads read and write at scheduling points
 * (`READ_ONCE`/`WRITE_ONCE`, `atomic_t`). Accesses are sequentially consistent.
 */
import { SimObject } from '../core/object.js';
import { Access, Op, type Routine } from '../core/op.js';
import type { Sim } from '../core/sim.js';

export class Var<T> extends SimObject {
  constructor(
    sim: Sim,
    name: string,
    /** Current value. Checks and setup may read it directly; threads go through the ops. */
    public value: T,
  ) {
    super(sim, name);
  }

  /** `READ_ONCE(x)`. */
  *read(label?: string): Routine<T> {
    return (yield new Op('READ_ONCE', this, Access.Read, 0, undefined, label)) as T;
  }

  /** `WRITE_ONCE(x, v)`. */
  *write(v: T, label?: string): Routine {
    yield new Op('WRITE_ONCE', this, Access.Write, 0, v, label);
  }

  /** Atomic read-modify-write: stores `fn(old)` and returns the old value (`atomic_fetch_*`). */
  *update(fn: (old: T) => T, label?: string): Routine<T> {
    return (yield new Op('atomic_rmw', this, Access.Write, 0, fn, label)) as T;
  }

  /** `cmpxchg(x, old, new)`: returns the value found; stored `next` iff it equalled `expected`. */
  *cmpxchg(expected: T, next: T, label?: string): Routine<T> {
    return (yield new Op('cmpxchg', this, Access.Write, 0, [expected, next], label)) as T;
  }

  override exec(op: Op): unknown {
    const old = this.value;
    switch (op.kind) {
      case 'READ_ONCE':
        return old;
      case 'WRITE_ONCE':
        this.value = op.arg as T;
        return undefined;
      case 'atomic_rmw':
        this.value = (op.arg as (o: T) => T)(old);
        return old;
      default: {
        const [expected, next] = op.arg as [T, T];
        if (old === expected) this.value = next;
        return old;
      }
    }
  }

  override describe(op: Op): string {
    if (op.kind === 'WRITE_ONCE') return `WRITE_ONCE(${this.name}, ${fmt(op.arg)})`;
    if (op.kind === 'cmpxchg') {
      const [e, n] = op.arg as [unknown, unknown];
      return `cmpxchg(${this.name}, ${fmt(e)}, ${fmt(n)})`;
    }
    return `${op.kind}(${this.name})`;
  }
}

function fmt(v: unknown): string {
  return typeof v === 'object' && v !== null ? '{...}' : String(v);
}
