/**
 * A swap device with a swap cache (mm/swapfile.c, mm/swap_state.c, as far as the CPU paths need
 * them): slots with a use count (`swap_map`: one per swap PTE), the content written by pageout, and
 * the swap-cache folio of a slot, if any.
 */
import { Access, Op, type Routine, type Sim, SimObject } from '@hmmkit/sim';
import type { Folio, PageValue } from './folio.js';

export interface SwapSlot {
  /** Swap PTEs referring to the slot (`swap_count`). */
  count: number;
  /** The slot is allocated (count > 0 or a swap-cache folio holds it). */
  used: boolean;
  /** Content written by the last pageout. */
  data: PageValue;
  /** The swap-cache folio for this slot (`SWAP_HAS_CACHE`), or null. */
  cache: Folio | null;
}

export class SwapDevice extends SimObject {
  readonly slots: SwapSlot[];

  constructor(
    sim: Sim,
    readonly nrSlots: number,
  ) {
    super(sim, 'swap');
    this.slots = Array.from({ length: nrSlots }, () => ({ count: 0, used: false, data: 0, cache: null }));
  }

  /** One atomic step on the swap map / swap cache (`swap_info_struct->lock` section). */
  *update<R>(kind: string, fn: (s: SwapDevice) => R, label?: string): Routine<R> {
    return (yield new Op(kind, this, Access.Write, 0, fn, label)) as R;
  }

  /** A read of the swap map or swap cache (`swap_cache_get_folio`, `__swap_count`). */
  *inspect<R>(kind: string, fn: (s: SwapDevice) => R, label?: string): Routine<R> {
    return (yield new Op(kind, this, Access.Read, 0, fn, label)) as R;
  }

  /** `folio_alloc_swap()` helper: a free slot index, marked used with count 0, or -1. */
  allocSlot(): number {
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i]!;
      if (!s.used) {
        s.used = true;
        s.count = 0;
        s.cache = null;
        return i;
      }
    }
    return -1;
  }

  /** Releases a slot once no PTE and no cache refer to it. */
  maybeFree(slot: number): void {
    const s = this.slots[slot]!;
    if (s.count === 0 && s.cache === null) {
      s.used = false;
      s.data = 0;
    }
  }

  /** Slots in use (tests). */
  usedSlots(): number {
    return this.slots.filter((s) => s.used).length;
  }

  override exec(op: Op): unknown {
    return (op.arg as (s: SwapDevice) => unknown)(this);
  }
}
