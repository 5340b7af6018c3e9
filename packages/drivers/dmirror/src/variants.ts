/**
 * The bug variants of the dmirror model: each is one switch at the exact place of the mistake in
 * the correct driver (grep for `variant ===`). The metadata has the shape of the conformance kit's
 * `DriverVariant`.
 */
import type { ViolationKind } from '@hmmkit/sim';

/** Names of the switches (`ctx.variant` / `DmirrorFileOptions.variant`): the variants and the benign mutations. */
export type DmirrorVariantName =
  | 'set-seq-outside-lock'
  | 'read-retry-before-lock'
  | 'program-before-retry'
  | 'invalidate-no-clear'
  | 'trylock-skip-clear'
  | 'gfp-kernel-in-invalidate'
  | DmirrorBenignMutationName;

/** Switches the model keeps but does not offer as kit variants (nothing can catch them). */
export type DmirrorBenignMutationName = 'no-migrate-filter';

/** One variant: the mistake, where it comes from, and what an exploration reports for it. */
export interface DmirrorVariant {
  name: Exclude<DmirrorVariantName, DmirrorBenignMutationName>;
  description: string;
  source: string;
  expect: readonly ViolationKind[];
}

export const dmirrorVariants: readonly DmirrorVariant[] = [
  {
    name: 'set-seq-outside-lock',
    description:
      'dmirror_interval_invalidate() calls mmu_interval_set_seq() after dropping dmirror->mutex, so a fault can pass read_retry and map a page the invalidation is tearing down',
    source:
      'include/linux/mmu_notifier.h, the kernel-doc of mmu_interval_set_seq() and mmu_interval_read_retry() (the same lock on both sides); Documentation/mm/hmm.rst',
    expect: ['use-after-free', 'stale-mapping', 'freed-frame'],
  },
  {
    name: 'read-retry-before-lock',
    description:
      'dmirror_range_fault() checks mmu_interval_read_retry() before taking dmirror->mutex, leaving a window between the check and the device page-table update',
    source:
      'Documentation/mm/hmm.rst, the usage pattern (take the driver lock, then mmu_interval_read_retry()); the mmu_interval_notifier series (Jason Gunthorpe, linux-mm, 2019)',
    expect: ['use-after-free', 'stale-mapping', 'freed-frame'],
  },
  {
    name: 'program-before-retry',
    description:
      'dmirror_range_fault() stores the device entries (dmirror_do_fault) before checking mmu_interval_read_retry(), and leaves them in place when it retries',
    source:
      'Documentation/mm/hmm.rst, the usage pattern: the device update happens only after read_retry succeeded',
    expect: ['use-after-free', 'stale-mapping', 'freed-frame'],
  },
  {
    name: 'invalidate-no-clear',
    description:
      'dmirror_interval_invalidate() bumps the sequence but does not erase the device entries (no dmirror_do_update)',
    source:
      'lib/test_hmm.c, dmirror_do_update(): "The XArray doesn\'t hold references to pages since it relies on the mmu notifier to clear page pointers when they become stale"',
    expect: ['use-after-free', 'stale-mapping', 'freed-frame'],
  },
  {
    name: 'trylock-skip-clear',
    description:
      'dmirror_interval_invalidate() uses mutex_trylock() even when the range is blockable and returns true without clearing when the mutex is contended',
    source:
      'include/linux/mmu_notifier.h: only a non-blockable invalidation may fail, and it must then return false; lib/test_hmm.c takes the mutex with mutex_lock() when mmu_notifier_range_blockable()',
    expect: ['use-after-free', 'stale-mapping', 'freed-frame'],
  },
  {
    name: 'gfp-kernel-in-invalidate',
    description:
      'dmirror_interval_invalidate() allocates with GFP_KERNEL (a bookkeeping record), which may recurse into reclaim from inside an invalidation',
    source:
      'invalidations run from reclaim (try_to_unmap) and the OOM reaper, so callbacks must not allocate with GFP_KERNEL; the recurring dri-devel review point on notifier callbacks (reference core-mm.md §8.10)',
    expect: ['alloc-in-forbidden-context'],
  },
];

/** Switches the model keeps but does not offer as kit variants, with the reason. */
export const dmirrorBenignMutations: readonly {
  name: DmirrorBenignMutationName;
  description: string;
  why: string;
}[] = [
  {
    name: 'no-migrate-filter',
    description:
      'dmirror_interval_invalidate() does not ignore MMU_NOTIFY_MIGRATE events whose owner is this device, so its own migrations invalidate (and bump the sequence of) its own mirror',
    why: 'harmless in dmirror: it never migrates inside its own read_begin/read_retry window (hmm_range_fault() reports, and never faults, pages whose pgmap owner is the caller; test_hmm migrates from ioctls and from migrate_to_ram, outside the fault loop), so the extra invalidations only clear entries that are about to be overwritten. The self-invalidation livelock needs a driver that migrates inside its fault loop. Without the filter the own MIGRATE event even bumps the sequence, which closes the fault-vs-MIGRATE_TO_DEV race of the correct driver (README, Findings). test/variants.test.ts explores both.',
  },
];

/** Looks a variant (or a benign mutation) up by name; throws for an unknown one. */
export function dmirrorVariant(name: string): { name: DmirrorVariantName; description: string } {
  const v =
    dmirrorVariants.find((x) => x.name === name) ?? dmirrorBenignMutations.find((x) => x.name === name);
  if (!v) {
    const known = [...dmirrorVariants, ...dmirrorBenignMutations].map((x) => x.name).join(', ');
    throw new RangeError(`dmirror: unknown variant '${name}' (known: ${known})`);
  }
  return v;
}
