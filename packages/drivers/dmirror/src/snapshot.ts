/**
 * HMM_DMIRROR_SNAPSHOT: what the CPU page tables say, without faulting anything in
 * (`dmirror_snapshot()`, `dmirror_range_snapshot()`, `dmirror_mkentry()`). Each 64-page chunk is
 * sampled under a temporary interval notifier of its own, whose callback only bumps the sequence.
 */
import {
  MmuIntervalNotifier,
  type MmuIntervalNotifierOps,
  mmgetNotZero,
  mmput,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierRangeBlockable,
  PAGE_SHIFT,
  PAGE_SIZE,
  PMD_SHIFT,
} from '@hmmkit/mm';
import {
  HMM_PFN_ERROR,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  type HmmRange,
  hmmPfnToMapOrder,
  hmmPfnToPfn,
  hmmRangeFault,
} from '@hmmkit/mm/hmm';
import { EBUSY, EINVAL, type Routine } from '@hmmkit/sim';
import type { Dmirror } from './dmirror.js';
import { DMIRROR_FAULT_CHUNK } from './fault.js';
import {
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE,
  HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_PROT_NONE,
  HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_PUD,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_PROT_ZERO,
  type HmmDmirrorCmd,
} from './uapi.js';

/** x86-64 `PUD_SHIFT`. */
const PUD_SHIFT = 30;

/** models dmirror_mkentry(): one SNAPSHOT byte for one hmm_pfns entry. */
export function dmirrorMkentry(dmirror: Dmirror, entry: bigint): number {
  if (entry & HMM_PFN_ERROR) return HMM_DMIRROR_PROT_ERROR;
  if (!(entry & HMM_PFN_VALID)) return HMM_DMIRROR_PROT_NONE;
  const mem = dmirror.mm.system.mem;
  const pfn = hmmPfnToPfn(entry);
  const folio = mem.folioAt(pfn);
  let perm: number;
  if (folio?.zone === 'device-private') {
    // Migrated to this device, or to some other one?
    perm = dmirror.device.owns(folio)
      ? HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL
      : HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
  } else if (folio?.zone === 'device-coherent') {
    perm = dmirror.device.owns(folio)
      ? HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL
      : HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE;
  } else if (mem.isZeroPfn(pfn)) {
    perm = HMM_DMIRROR_PROT_ZERO;
  } else {
    perm = HMM_DMIRROR_PROT_NONE;
  }
  perm |= entry & HMM_PFN_WRITE ? HMM_DMIRROR_PROT_WRITE : HMM_DMIRROR_PROT_READ;
  const order = hmmPfnToMapOrder(entry);
  if (order + PAGE_SHIFT === PMD_SHIFT) perm |= HMM_DMIRROR_PROT_PMD;
  else if (order + PAGE_SHIFT === PUD_SHIFT) perm |= HMM_DMIRROR_PROT_PUD;
  return perm;
}

/** models dmirror_snapshot_invalidate(): any invalidation of the chunk voids the snapshot. */
export function* dmirrorSnapshotInvalidate(
  dmirror: Dmirror,
  mni: MmuIntervalNotifier,
  blockable: boolean,
  curSeq: number,
): Routine<boolean> {
  if (blockable) yield* dmirror.mutex.lock('mutex_lock');
  else if (!(yield* dmirror.mutex.trylock('mutex_trylock'))) return false;
  yield* mmuIntervalSetSeq(mni, curSeq);
  yield* dmirror.mutex.unlock('mutex_unlock');
  return true;
}

/** models dmirror_range_snapshot(): one chunk, under a temporary notifier. */
export function* dmirrorRangeSnapshot(dmirror: Dmirror, range: HmmRange, perm: Uint8Array): Routine<number> {
  const mm = dmirror.mm;
  const notifier = new MmuIntervalNotifier(dmirror.sim, `${dmirror.name} snapshot notifier`);
  const ops: MmuIntervalNotifierOps = {
    invalidate: (mni, r, curSeq) =>
      dmirrorSnapshotInvalidate(dmirror, mni, mmuNotifierRangeBlockable(r), curSeq),
  };
  range.notifier = notifier;
  let ret = yield* mmuIntervalNotifierInsert(notifier, mm, range.start, range.end - range.start, ops);
  if (ret) return ret;
  for (let attempt = 0; ; attempt++) {
    if (attempt >= dmirror.retries) {
      ret = dmirror.retriesExhausted('dmirror_range_snapshot', range.start, range.end);
      break;
    }
    range.notifierSeq = yield* mmuIntervalReadBegin(notifier);
    yield* mm.mmapLock.downRead('mmap_read_lock');
    ret = yield* hmmRangeFault(range);
    yield* mm.mmapLock.upRead('mmap_read_unlock');
    if (ret) {
      if (ret === -EBUSY) continue;
      break;
    }
    yield* dmirror.mutex.lock('mutex_lock');
    if (yield* mmuIntervalReadRetry(notifier, range.notifierSeq)) {
      yield* dmirror.mutex.unlock('mutex_unlock');
      continue;
    }
    const n = (range.end - range.start) / PAGE_SIZE;
    for (let i = 0; i < n; i++) perm[i] = dmirrorMkentry(dmirror, range.hmmPfns[i]!);
    yield* dmirror.mutex.unlock('mutex_unlock');
    break;
  }
  yield* mmuIntervalNotifierRemove(notifier);
  return ret;
}

/** models dmirror_snapshot(): HMM_DMIRROR_SNAPSHOT of `cmd.npages` pages into `cmd.ptr` (bytes). */
export function* dmirrorSnapshot(dmirror: Dmirror, cmd: HmmDmirrorCmd): Routine<number> {
  const mm = dmirror.mm;
  const start = cmd.addr;
  const end = start + cmd.npages * PAGE_SIZE;
  if (!(yield* mmgetNotZero(mm))) return -EINVAL;
  const uptr = cmd.ptr as Uint8Array;
  let off = 0;
  let ret = 0;
  for (let addr = start; addr < end; ) {
    const next = Math.min(addr + DMIRROR_FAULT_CHUNK * PAGE_SIZE, end);
    const n = (next - addr) / PAGE_SIZE;
    const range: HmmRange = {
      notifier: dmirror.notifier,
      notifierSeq: 0,
      start: addr,
      end: next,
      hmmPfns: new BigUint64Array(n),
      defaultFlags: 0n,
      pfnFlagsMask: 0n,
      devPrivateOwner: dmirror.device,
    };
    const perm = new Uint8Array(n);
    ret = yield* dmirrorRangeSnapshot(dmirror, range, perm);
    if (ret) break;
    // models copy_to_user(uptr, perm, n)
    uptr.set(perm, off);
    cmd.cpages += n;
    off += n;
    addr = next;
  }
  yield* mmput(mm);
  return ret;
}
