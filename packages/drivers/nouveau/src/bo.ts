/**
 * The part of nouveau_bo.c / nouveau_gem.c that VM_BIND depends on: a GEM object with a placement
 * (VRAM, or evicted to system memory), `nouveau_bo_validate()`, and the move notification that
 * unmaps or remaps every GPU VA of the BO (`nouveau_uvmm_bo_unmap_all()` / `_map_all()`), marking
 * the vas invalidated. TTM waits for the BO's fences before it moves a BO; a bind job's done fence
 * sits in the resv of every BO it touches, so a BO never moves under a running bind job.
 */
import { GemObject } from '@hmmkit/gpuva';
import type { PageValue } from '@hmmkit/mm';
import { type KBuf, kmalloc, type Routine, type Sim } from '@hmmkit/sim';
import { nouveauUvmmBoMapAll, nouveauUvmmBoUnmapAll } from './uvmm.js';

/** Where a BO's memory is. */
export type NouveauBoPlacement = 'VRAM' | 'SYSTEM';

/** `struct nouveau_bo` (with its GEM object). */
export class NouveauBo extends GemObject {
  /** Contents, one value per page. */
  readonly pages: PageValue[];
  placement: NouveauBoPlacement = 'VRAM';
  /** Moves of this BO, for tests. */
  moves = 0;

  constructor(sim: Sim, name: string, npages: number) {
    super(sim, name, { size: npages });
    this.pages = new Array<PageValue>(npages).fill(0);
  }
}

/** models nouveau_gem_new(): a VRAM BO of `npages` pages with its own resv (an external object). */
export function* nouveauGemNew(sim: Sim, name: string, npages: number): Routine<NouveauBo | null> {
  const mem: KBuf | null = yield* kmalloc(sim, 512, 'GFP_KERNEL', `nouveau_gem_new(${name})`);
  if (!mem) return null;
  const bo = new NouveauBo(sim, name, npages);
  bo.mem = mem;
  return bo;
}

/**
 * models nouveau_bo_move() → nouveau_bo_move_ntfy() for a move to `placement` (the caller holds
 * the BO's resv and TTM waited for its fences): unmap every va of the BO when it leaves VRAM,
 * map them again when it comes back.
 */
export function* nouveauBoMove(bo: NouveauBo, placement: NouveauBoPlacement): Routine {
  bo.sim.assertHeld(bo.resv);
  if (bo.placement === placement) return;
  bo.moves++;
  if (placement === 'VRAM') {
    bo.placement = placement;
    yield* nouveauUvmmBoMapAll(bo);
  } else {
    yield* nouveauUvmmBoUnmapAll(bo);
    bo.placement = placement;
  }
}

/** models nouveau_bo_validate(): bring the BO back into VRAM (resv held). */
export function* nouveauBoValidate(bo: NouveauBo): Routine<number> {
  yield* nouveauBoMove(bo, 'VRAM');
  return 0;
}

/**
 * TTM eviction of `bo` (memory pressure): lock its resv, wait for every fence in it (bind jobs
 * that touch it included), move it to system memory.
 */
export function* nouveauBoEvict(bo: NouveauBo): Routine {
  yield* bo.resv.lock(null, 'ttm_bo_evict');
  yield* bo.resv.wait('BOOKKEEP', 'ttm_bo_wait_ctx');
  yield* nouveauBoMove(bo, 'SYSTEM');
  yield* bo.resv.unlock();
}
