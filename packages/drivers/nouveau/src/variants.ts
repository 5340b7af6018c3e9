/**
 * The bug variants of the nouveau model. Each is one switch at the place of the mistake in the
 * correct model (grep for `variant ===`); the metadata has the shape of the conformance kit's
 * `DriverVariant`. Every variant here is a real, observable bug: the package's tests show each one
 * caught by an exploration (test/variants.test.ts, test/vm-bind.test.ts); which ones the kit's
 * scenario library reaches is in the README.
 *
 * {@link nouveauBenignMutations} lists switches that look like bugs but that the model shows to be
 * harmless in nouveau (see the README): they are not offered to the kit as variants.
 */
import type { ViolationKind } from '@hmmkit/sim';

export type NouveauVariantName =
  | 'atomic-retry-keeps-folio'
  | 'no-own-exclusive-filter'
  | 'mm-notifier-first'
  | 'migrate-to-ram-no-clear'
  | 'run-job-allocates-pt'
  | 'sync-bind-bypasses-queue'
  | 'remap-unlink-before-link';

/** Switches the model shows to be harmless in nouveau (kept for the exploration that proves it). */
export type NouveauBenignMutationName = 'set-seq-outside-lock';

export type NouveauMutationName = NouveauVariantName | NouveauBenignMutationName;

/** One variant: the mistake, where it comes from, what an exploration reports for it. */
export interface NouveauVariant {
  name: NouveauVariantName;
  description: string;
  source: string;
  expect: readonly ViolationKind[];
}

export const nouveauVariants: readonly NouveauVariant[] = [
  {
    name: 'atomic-retry-keeps-folio',
    description:
      'nouveau_atomic_range_fault() retries after a failed mmu_interval_read_retry() without folio_unlock() + folio_put() of the folio make_device_exclusive() returned locked: the next attempt sleeps on its own folio lock (or returns with it locked and referenced)',
    source:
      'upstream b3fefbb30a16 "nouveau/svm: fix missing folio unlock + put after make_device_exclusive_range()" (David Hildenbrand, Feb 2025; Fixes: 8f187163eb89); the model uses the v6.15 make_device_exclusive(), whose folio_lock sleeps, so the symptom is a self-deadlock',
    expect: ['deadlock', 'leak', 'bad-page', 'kernel-warn'],
  },
  {
    name: 'no-own-exclusive-filter',
    description:
      "nouveau_svm_range_invalidate() does not return early for MMU_NOTIFY_EXCLUSIVE events whose owner is drm->dev, so make_device_exclusive()'s own notification bumps the fault's sequence and the atomic fault loop retries until its deadline, every time",
    source:
      'nouveau_svm.c, nouveau_svm_range_invalidate(): the EXCLUSIVE/owner early return; Documentation/mm/hmm.rst on the owner of make_device_exclusive(); the 2025 proposal to drop the owner argument was rejected for this reason (reference core-mm.md §4.5)',
    expect: ['livelock'],
  },
  {
    name: 'mm-notifier-first',
    description:
      "the mm-wide notifier's PFNCLR runs before the per-fault interval notifier's mmu_interval_set_seq() (as if the core called classic notifiers first): a fault can pass read_retry between the clear and the seq bump and map a page that is being unmapped",
    source:
      'nouveau_svm.c, the comment in nouveau_svm_range_invalidate() that calls the scheme "very hacky": it is correct only because the core calls interval notifiers before the mm-wide one; mm/mmu_notifier.c __mmu_notifier_invalidate_range_start() calls mn_itree_invalidate() first',
    expect: ['stale-mapping', 'freed-frame', 'use-after-free', 'data-integrity'],
  },
  {
    name: 'migrate-to-ram-no-clear',
    description:
      'nouveau_dmem_migrate_to_ram() copies the VRAM page back without nouveau_svmm_invalidate() (PFNCLR) under svmm->mutex: the GPU keeps its VRAM mapping of a page that is freed when the migration finalizes',
    source:
      'nouveau_dmem.c, nouveau_dmem_migrate_to_ram(): the PFNCLR before the copy; nouveau_svmm_invalidate_range_start() skips MMU_NOTIFY_MIGRATE from its own device, leaving the clear to the migration code, so nothing else clears it ("nouveau/svm: use the new migration invalidation", Ralph Campbell, linux-mm, July 2020, which added both the skip and this clear)',
    expect: ['freed-frame', 'stale-mapping', 'use-after-free', 'data-integrity'],
  },
  {
    name: 'run-job-allocates-pt',
    description:
      'nouveau_uvmm_bind_job_run() gets page tables (nvif_vmm_raw_get, a GFP_KERNEL allocation) when it maps, instead of using the ones nouveau_uvmm_sm_prepare() pre-allocated at submit time: an allocation in the fence-signalling path',
    source:
      'the nouveau VM_BIND review (dri-devel, 2023, "DRM GPUVA Manager & Nouveau VM_BIND"): page tables are got at submit (nvif_vmm_raw_get in nouveau_uvmm_sm_prepare) because run_job must not allocate; Documentation/driver-api/dma-buf.rst, "Indefinite DMA Fences" / dma-fence signalling rules',
    expect: ['alloc-in-forbidden-context'],
  },
  {
    name: 'sync-bind-bypasses-queue',
    description:
      "a synchronous VM_BIND runs its job inline in the ioctl instead of pushing it to the client's scheduler entity, so it overtakes async binds submitted before it (whose VA-tree changes it already saw)",
    source:
      'nouveau_sched.c nouveau_job_submit(): sync jobs are pushed like async ones and then waited for; the 2023 "DRM GPUVA Manager & Nouveau VM_BIND" thread, where the first draft ran sync jobs inline (also the @hmmkit/gpuva syncBypassesQueue bug)',
    expect: ['vm-bind-order', 'vm-bind-pagetable'],
  },
  {
    name: 'remap-unlink-before-link',
    description:
      'bind_link_gpuvas() unlinks the remapped va before linking its prev/next pieces to the same vm_bo: when the victim held the last reference, the vm_bo is destroyed and the pieces are linked to freed memory',
    source:
      'nouveau_uvmm.c bind_link_gpuvas(): link prev/next to va->vm_bo, then drm_gpuva_unlink(va); drm_gpuvm.c DOC "Locking" example of the remap callback (link the new pieces before unlinking the old va)',
    expect: ['use-after-free', 'refcount'],
  },
];

/** Switches the model keeps but does not offer as kit variants, with the reason. */
export const nouveauBenignMutations: readonly {
  name: NouveauBenignMutationName;
  description: string;
  why: string;
}[] = [
  {
    name: 'set-seq-outside-lock',
    description:
      'nouveau_svm_range_invalidate() calls mmu_interval_set_seq() after mutex_unlock(&svmm->mutex)',
    why: "harmless in nouveau: the interval callback clears nothing; the mm-wide notifier, called after it for the same invalidation, takes svmm->mutex and PFNCLRs. A fault whose read_retry+PFNMAP section ran before that clear is cleared by it; one that ran after it sees the new seq (set before the clear, in the invalidating thread). Exhaustive exploration finds no violation (test/variants.test.ts). It becomes a bug only together with 'mm-notifier-first'.",
  },
];

/** Looks a variant up by name; throws for an unknown one. */
export function nouveauVariant(name: string): NouveauVariant {
  const v = nouveauVariants.find((x) => x.name === name);
  if (!v) {
    throw new RangeError(
      `nouveau: unknown variant '${name}' (known: ${nouveauVariants.map((x) => x.name).join(', ')})`,
    );
  }
  return v;
}

/** A variant or a benign mutation by name (the model accepts both); throws for an unknown one. */
export function nouveauMutation(name: string): NouveauMutationName {
  if (nouveauBenignMutations.some((m) => m.name === name)) return name as NouveauBenignMutationName;
  return nouveauVariant(name).name;
}
