/**
 * Execution contexts a thread can be in, as counters: sections nest (a spinlock inside a notifier
 * inside reclaim), and leaving one is only valid if it was entered.
 */
export const Ctx = {
  /** Preemption disabled: a spinlock is held or an explicit atomic section. */
  Atomic: 0,
  /** A non-blockable section: a notifier called without MMU_NOTIFIER_RANGE_BLOCKABLE. */
  NonBlock: 1,
  /** Direct reclaim (`fs_reclaim`): GFP_KERNEL allocations would recurse. */
  Reclaim: 2,
  /** Between `dma_fence_begin_signalling()` and `dma_fence_end_signalling()`. */
  FenceSignalling: 3,
} as const;
export type Ctx = (typeof Ctx)[keyof typeof Ctx];

export const ctxNames: readonly string[] = ['atomic', 'non-blockable', 'reclaim', 'fence-signalling'];
