/**
 * `seqcount_t` (include/linux/seqlock.h): a writer makes the count odd while it updates; readers
 * sample it and retry if it changed.
 */
import { SimObject } from '../core/object.js';
import { Access, Op, type Routine } from '../core/op.js';

export class SeqCount extends SimObject {
  sequence = 0;

  /** `write_seqcount_begin()`: the count becomes odd. The caller must serialise writers. */
  *writeBegin(label?: string): Routine {
    yield new Op('write_seqcount_begin', this, Access.Write, 0, undefined, label);
  }

  /** `write_seqcount_end()`: the count becomes even again. */
  *writeEnd(label?: string): Routine {
    yield new Op('write_seqcount_end', this, Access.Write, 0, undefined, label);
  }

  /** `read_seqcount_begin()`: waits while a write is in progress, returns the even count. */
  *readBegin(label?: string): Routine<number> {
    return (yield new Op('read_seqcount_begin', this, Access.Read, 0, undefined, label)) as number;
  }

  /** `raw_read_seqcount()`: the count as it is, odd or even, without waiting. */
  *rawRead(label?: string): Routine<number> {
    return (yield new Op('raw_read_seqcount', this, Access.Read, 0, undefined, label)) as number;
  }

  /** `read_seqcount_retry()`: true if a writer ran since `start`. */
  *readRetry(start: number, label?: string): Routine<boolean> {
    return (yield new Op('read_seqcount_retry', this, Access.Read, 0, start, label)) as boolean;
  }

  override enabled(op: Op): boolean {
    return op.kind !== 'read_seqcount_begin' || (this.sequence & 1) === 0;
  }

  override exec(op: Op): unknown {
    switch (op.kind) {
      case 'write_seqcount_begin':
        if (this.sequence & 1)
          this.sim.fail('assertion', `write_seqcount_begin(${this.name}) with a write already open`);
        this.sequence++;
        return undefined;
      case 'write_seqcount_end':
        if (!(this.sequence & 1))
          this.sim.fail('assertion', `write_seqcount_end(${this.name}) without a write open`);
        this.sequence++;
        return undefined;
      case 'read_seqcount_retry':
        return this.sequence !== op.arg;
      default:
        return this.sequence;
    }
  }
}
