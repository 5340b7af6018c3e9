/**
 * nouveau_svm.c, serving one fault window: `nouveau_range_fault()` (the hmm_range_fault() /
 * read_retry loop for one page, PFNMAP of the result widened to the CPU mapping's order) and
 * `nouveau_atomic_range_fault()` (make_device_exclusive(), the folio kept locked across the
 * read_retry check and the PFNMAP), with `nouveau_hmm_convert_pfn()`. Each runs under a fresh
 * per-fault interval notifier, inserted for the window and removed before returning. The
 * HMM_RANGE_DEFAULT_TIMEOUT deadline is a number of attempts (`NouveauOptions.faultRetries`).
 */
import { type FrameRef, folioPut, hex, PAGE_SIZE, type PhysMem, peekPte } from '@hmmkit/mm';
import { makeDeviceExclusive } from '@hmmkit/mm/device-exclusive';
import {
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  type HmmRange,
  hmmPfnToMapOrder,
  hmmPfnToPfn,
  hmmRangeFault,
} from '@hmmkit/mm/hmm';
import {
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
} from '@hmmkit/mm/notifier';
import { EBUSY, EINVAL, type Routine } from '@hmmkit/sim';
import type { NouveauDrm } from './drm.js';
import {
  NVIF_VMM_PFNMAP_V0_A,
  NVIF_VMM_PFNMAP_V0_HOST,
  NVIF_VMM_PFNMAP_V0_V,
  NVIF_VMM_PFNMAP_V0_VRAM,
  NVIF_VMM_PFNMAP_V0_W,
  nvifPfnmapEntry,
} from './nvif.js';
import type { NouveauSvmm, SvmNotifier } from './svm.js';

/** The arguments one fault builds for PFNMAP (`args.i.p` and `args.phys[0]` of nouveau_svm_fault()). */
export interface SvmFaultArgs {
  addr: number;
  /** `p.page`: the page shift of the single entry. */
  page: number;
  size: number;
  phys: number;
  /** The model's record of the frame `phys` names (pfn + allocation generation). */
  frame: FrameRef | null;
}

/** A device-held reference to the page at `pfn` as it is now (a dead generation if it is free). */
export function frameOf(mem: PhysMem, pfn: number): FrameRef {
  const folio = mem.folioAt(pfn);
  return folio ? { pfn, gen: folio.gen } : { pfn, gen: mem.genOf(pfn) - 1 };
}

/** The retry budget of a fault loop ran out: -EBUSY, and a livelock report if the model asks for it. */
function retriesExhausted(drm: NouveauDrm, where: string, addr: number): number {
  drm.exhausted++;
  if (drm.options.onRetriesExhausted === 'livelock') {
    drm.sim.fail(
      'livelock',
      `${drm.name}: ${where} at ${hex(addr)} reached its deadline (${drm.options.faultRetries} attempts, every one invalidated)`,
    );
  }
  return -EBUSY;
}

// ---- converting and mapping -------------------------------------------------------------------------

/** What hmm_range_fault() returned for the page, recorded right after it (under mmap_read_lock). */
interface Sampled {
  frame: FrameRef;
  devicePrivate: boolean;
}

/**
 * models nouveau_hmm_convert_pfn(): the single hmm pfn as one PFNMAP entry: VRAM aperture for this
 * GPU's device-private pages, HOST otherwise, W if the CPU maps it writable; a compound CPU mapping
 * (map order > 0) widens the window to its size and alignment.
 */
function nouveauHmmConvertPfn(range: HmmRange, args: SvmFaultArgs, sampled: Sampled | null): void {
  const v = range.hmmPfns[0]!;
  if (!(v & HMM_PFN_VALID) || !sampled) {
    args.phys = 0;
    args.frame = null;
    return;
  }
  let pfn = hmmPfnToPfn(v);
  let gen = sampled.frame.gen;
  const order = hmmPfnToMapOrder(v);
  if (order) {
    const addr = args.addr;
    args.page = order + 12;
    args.size = 2 ** args.page;
    args.addr = addr - (addr % args.size);
    pfn -= (addr - args.addr) / PAGE_SIZE;
    gen = sampled.frame.gen;
  }
  // nouveau_dmem_page_addr(): the model's VRAM address is the device-private pfn itself.
  let phys = sampled.devicePrivate
    ? nvifPfnmapEntry(pfn, NVIF_VMM_PFNMAP_V0_V | NVIF_VMM_PFNMAP_V0_VRAM)
    : nvifPfnmapEntry(pfn, NVIF_VMM_PFNMAP_V0_V | NVIF_VMM_PFNMAP_V0_HOST);
  if (v & HMM_PFN_WRITE) phys += NVIF_VMM_PFNMAP_V0_W;
  args.phys = phys;
  args.frame = { pfn, gen };
}

/** `nvif_object_ioctl(&svmm->vmm->vmm.object, args)`: the PFNMAP method with one entry. */
function* svmmPfnmap(svmm: NouveauSvmm, args: SvmFaultArgs, label: string): Routine<number> {
  svmm.sim.assertHeld(svmm.mutex);
  const vmm = svmm.vmm?.vmm;
  if (!vmm) return svmm.sim.fail('null-pointer-dereference', `${label}: ${svmm.name}->vmm is NULL`);
  yield* vmm.pfnmap(args.addr, args.page, args.size, [args.phys], [args.frame], label);
  return 0;
}

/**
 * models nouveau_atomic_range_fault(): makes the page device-exclusive and maps it V|W|A|HOST,
 * holding the folio lock from make_device_exclusive() until the GPU is programmed.
 */
export function* nouveauAtomicRangeFault(
  svmm: NouveauSvmm,
  drm: NouveauDrm,
  args: SvmFaultArgs,
  notifier: SvmNotifier,
): Routine<number> {
  const mm = svmm.mm;
  const mem = mm.system.mem;
  const start = args.addr;
  let ret = yield* mmuIntervalNotifierInsert(notifier.notifier, mm, args.addr, args.size, notifier.ops);
  if (ret) return ret;
  for (let attempt = 0; ; attempt++) {
    // time_after(jiffies, timeout): the deadline is a number of attempts in the model.
    if (attempt >= drm.options.faultRetries) {
      ret = retriesExhausted(drm, 'nouveau_atomic_range_fault', start);
      yield* mmuIntervalNotifierRemove(notifier.notifier);
      return ret;
    }
    const notifierSeq = yield* mmuIntervalReadBegin(notifier.notifier);
    yield* mm.mmapLock.downRead('mmap_read_lock');
    const r = yield* makeDeviceExclusive(mm, start, drm.dev);
    const pte = typeof r === 'number' ? null : peekPte(mm, start);
    yield* mm.mmapLock.upRead('mmap_read_unlock');
    if (typeof r === 'number') {
      yield* mmuIntervalNotifierRemove(notifier.notifier);
      return -EINVAL;
    }
    const folio = r;
    yield* svmm.mutex.lock('mutex_lock(&svmm->mutex)');
    if (!(yield* mmuIntervalReadRetry(notifier.notifier, notifierSeq))) {
      // Map the page on the GPU.
      const index = pte?.folio === folio ? pte.index : 0;
      args.page = 12;
      args.size = PAGE_SIZE;
      args.addr = start;
      args.phys = nvifPfnmapEntry(
        folio.pfn + index,
        NVIF_VMM_PFNMAP_V0_V | NVIF_VMM_PFNMAP_V0_W | NVIF_VMM_PFNMAP_V0_A | NVIF_VMM_PFNMAP_V0_HOST,
      );
      args.frame = mem.frameRef(folio, index);
      ret = yield* svmmPfnmap(svmm, args, 'nouveau_atomic_range_fault');
      yield* svmm.mutex.unlock('mutex_unlock(&svmm->mutex)');
      yield* folio.unlock('folio_unlock');
      yield* folioPut(mem, folio, 'folio_put');
      yield* mmuIntervalNotifierRemove(notifier.notifier);
      return ret;
    }
    yield* svmm.mutex.unlock('mutex_unlock(&svmm->mutex)');
    if (drm.variant !== 'atomic-retry-keeps-folio') {
      yield* folio.unlock('folio_unlock');
      yield* folioPut(mem, folio, 'folio_put');
    }
  }
}

/**
 * models nouveau_range_fault(): the hmm_range_fault() / read_retry loop for the one-page window of
 * `args`, then PFNMAP of the result (widened to the CPU mapping's order) under svmm->mutex.
 */
export function* nouveauRangeFault(
  svmm: NouveauSvmm,
  drm: NouveauDrm,
  args: SvmFaultArgs,
  hmmFlags: bigint,
  notifier: SvmNotifier,
): Routine<number> {
  const mm = svmm.mm;
  const mem = mm.system.mem;
  const range: HmmRange = {
    notifier: notifier.notifier,
    notifierSeq: 0,
    start: 0,
    end: 0,
    hmmPfns: new BigUint64Array(1),
    defaultFlags: hmmFlags,
    pfnFlagsMask: 0n,
    devPrivateOwner: drm.dev,
  };
  let ret = yield* mmuIntervalNotifierInsert(notifier.notifier, mm, args.addr, args.size, notifier.ops);
  if (ret) return ret;
  range.start = notifier.notifier.start;
  range.end = notifier.notifier.last + 1;
  let sampled: Sampled | null = null;
  for (let attempt = 0; ; attempt++) {
    if (attempt >= drm.options.faultRetries) {
      ret = retriesExhausted(drm, 'nouveau_range_fault', args.addr);
      yield* mmuIntervalNotifierRemove(notifier.notifier);
      return ret;
    }
    range.notifierSeq = yield* mmuIntervalReadBegin(range.notifier);
    yield* mm.mmapLock.downRead('mmap_read_lock');
    ret = yield* hmmRangeFault(range);
    if (ret === 0) sampled = sample(mem, range);
    yield* mm.mmapLock.upRead('mmap_read_unlock');
    if (ret) {
      if (ret === -EBUSY) continue;
      yield* mmuIntervalNotifierRemove(notifier.notifier);
      return ret;
    }
    yield* svmm.mutex.lock('mutex_lock(&svmm->mutex)');
    if (yield* mmuIntervalReadRetry(range.notifier, range.notifierSeq)) {
      yield* svmm.mutex.unlock('mutex_unlock(&svmm->mutex)');
      continue;
    }
    break;
  }
  nouveauHmmConvertPfn(range, args, sampled);
  ret = yield* svmmPfnmap(svmm, args, 'nouveau_range_fault');
  yield* svmm.mutex.unlock('mutex_unlock(&svmm->mutex)');
  yield* mmuIntervalNotifierRemove(notifier.notifier);
  return ret;
}

/** Records what the hmm pfn names right after hmm_range_fault() (the model's DMA address). */
function sample(mem: PhysMem, range: HmmRange): Sampled | null {
  const v = range.hmmPfns[0]!;
  if (!(v & HMM_PFN_VALID)) return null;
  const pfn = hmmPfnToPfn(v);
  const folio = mem.folioAt(pfn);
  return { frame: frameOf(mem, pfn), devicePrivate: folio?.zone === 'device-private' };
}
