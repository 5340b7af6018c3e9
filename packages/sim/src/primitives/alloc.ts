/**
 * The allocation model: `kmalloc(size, gfp)`. A GFP_KERNEL allocation may sleep and enter reclaim,
 * so it is checked against the thread's context and annotated with the `fs_reclaim` pseudo-lock the
 * way `might_alloc()` does. With fault injection on (`allocFailures > 0`), each allocation is an
 * explored choice between success and -ENOMEM.
 */
import { SimObject } from '../core/object.js';
import { Access, Op, OpFlag, type Routine } from '../core/op.js';
import type { Sim } from '../core/sim.js';
import type { Thread } from '../core/thread.js';
import { LockMaps, lockMap } from './lockmap.js';

/** Allocation flags that matter to the model. */
export type Gfp = 'GFP_KERNEL' | 'GFP_NOWAIT' | 'GFP_ATOMIC' | 'GFP_NOFAIL';

/** A block returned by kmalloc; `kfree` frees it, and any later access is a use-after-free. */
export class KBuf extends SimObject {
  constructor(
    sim: Sim,
    name: string,
    readonly size: number,
  ) {
    super(sim, name);
  }
  override exec(op: Op): unknown {
    if (op.kind === 'kfree') this.sim.free(this);
    return undefined;
  }
}

class Slab extends SimObject {
  private seq = 0;
  override exec(op: Op, t: Thread): unknown {
    const { size, gfp } = op.arg as { size: number; gfp: Gfp };
    if (gfp === 'GFP_KERNEL' || gfp === 'GFP_NOFAIL') lockMap(this.sim, LockMaps.fsReclaim).touchNow(t);
    const mayFail = gfp !== 'GFP_NOFAIL' && this.sim.mayFailAlloc();
    if (mayFail && this.sim.decide(2, `fail ${op.label ?? 'kmalloc'}`) === 1) {
      this.sim.spendAllocFailure();
      return null;
    }
    return new KBuf(this.sim, `${op.label ?? 'kmalloc'}#${this.seq++}`, size);
  }
  override describe(op: Op): string {
    const { size, gfp } = op.arg as { size: number; gfp: Gfp };
    return `kmalloc(${size}, ${gfp})`;
  }
}

function slab(sim: Sim): Slab {
  return sim.singleton('slab', () => new Slab(sim, 'slab'));
}

/**
 * `kmalloc(size, gfp)`: a block, or null for -ENOMEM (only when fault injection is on, never for
 * GFP_NOFAIL). `label` names what is being allocated in traces.
 */
export function* kmalloc(sim: Sim, size: number, gfp: Gfp, label?: string): Routine<KBuf | null> {
  const flags = gfp === 'GFP_KERNEL' || gfp === 'GFP_NOFAIL' ? OpFlag.AllocKernel | OpFlag.MightSleep : 0;
  return (yield new Op('kmalloc', slab(sim), Access.None, flags, { size, gfp }, label)) as KBuf | null;
}

/** `kfree(buf)`; freeing twice is reported as a use-after-free. */
export function* kfree(buf: KBuf, label?: string): Routine {
  yield new Op('kfree', buf, Access.Write, 0, undefined, label);
}
