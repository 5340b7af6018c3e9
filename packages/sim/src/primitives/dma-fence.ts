/**
 * `struct dma_fence` (drivers/dma-buf/dma-fence.c): a one-shot completion for device work, plus the
 * signalling annotations. Code between `dma_fence_begin_signalling()` and `_end_signalling()` is on
 * the path that signals fences, so it must not allocate with GFP_KERNEL, take a dma_resv lock, or
 * wait for a fence: any of those can wait for the very fence it is meant to signal.
 */
import { Ctx } from '../core/context.js';
import { SimObject } from '../core/object.js';
import { Access, Op, OpFlag, type Routine } from '../core/op.js';
import type { Sim } from '../core/sim.js';
import type { Thread } from '../core/thread.js';
import { LockMaps, lockMap } from './lockmap.js';

export class DmaFence extends SimObject {
  signaled = false;
  /** Negative errno set with `dma_fence_set_error()` before signalling. */
  error = 0;

  /** `dma_fence_signal()`; signalling twice is harmless, as in the kernel (returns -EINVAL). */
  *signal(label?: string): Routine<number> {
    return (yield new Op('dma_fence_signal', this, Access.Write, 0, undefined, label)) as number;
  }

  /** `dma_fence_wait()`: sleeps until signaled. A fence wait inside a signalling section is reported. */
  *wait(label?: string): Routine {
    yield new Op(
      'dma_fence_wait',
      this,
      Access.Write,
      OpFlag.MightSleep | OpFlag.FenceWait,
      undefined,
      label,
    );
  }

  /** `dma_fence_is_signaled()`. */
  *isSignaled(label?: string): Routine<boolean> {
    return (yield new Op('dma_fence_is_signaled', this, Access.Read, 0, undefined, label)) as boolean;
  }

  override enabled(op: Op): boolean {
    return op.kind !== 'dma_fence_wait' || this.signaled;
  }

  override exec(op: Op, t: Thread): unknown {
    switch (op.kind) {
      case 'dma_fence_signal':
        if (this.signaled) return -22;
        this.signaled = true;
        return 0;
      case 'dma_fence_wait':
        // __dma_fence_might_wait(): tell lockdep this thread may wait for signalling sections.
        lockMap(this.sim, LockMaps.dmaFence).touchNow(t);
        return undefined;
      default:
        return this.signaled;
    }
  }

  override waitReason(op: Op): string {
    return `${op.describe()}, never signaled`;
  }
}

class FenceSignalling extends SimObject {
  override exec(op: Op, t: Thread): unknown {
    const map = lockMap(this.sim, LockMaps.dmaFence);
    if (op.kind === 'dma_fence_begin_signalling') {
      map.acquireNow(t);
      t.ctx[Ctx.FenceSignalling]!++;
    } else {
      if (t.ctx[Ctx.FenceSignalling]! <= 0) {
        this.sim.fail('model-error', `${t.name}: dma_fence_end_signalling() without begin`);
      }
      map.releaseNow(t);
      t.ctx[Ctx.FenceSignalling]!--;
    }
    return undefined;
  }
  override describe(op: Op): string {
    return `${op.kind}()`;
  }
}

function signallingObj(sim: Sim): FenceSignalling {
  return sim.singleton('fence-signalling', () => new FenceSignalling(sim, 'dma_fence_signalling'));
}

/** `dma_fence_begin_signalling()`: enters the fence-signalling critical section. */
export function* dmaFenceBeginSignalling(sim: Sim, label?: string): Routine {
  yield new Op('dma_fence_begin_signalling', signallingObj(sim), Access.None, 0, undefined, label);
}

/** `dma_fence_end_signalling()`. */
export function* dmaFenceEndSignalling(sim: Sim, label?: string): Routine {
  yield new Op('dma_fence_end_signalling', signallingObj(sim), Access.None, 0, undefined, label);
}
