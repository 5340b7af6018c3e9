/**
 * The device fault path of lib/test_hmm.c: `dmirror_fault()` splits the range in chunks of 64
 * pages, `dmirror_range_fault()` runs the documented read_begin / hmm_range_fault / read_retry
 * loop on each, and `dmirror_do_fault()` stores the result in the device page table under the
 * driver mutex.
 */
import { hex, mmgetNotZero, mmput, mmuIntervalReadBegin, mmuIntervalReadRetry, PAGE_SIZE } from '@hmmkit/mm';
import {
  HMM_PFN_ERROR,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  type HmmRange,
  hmmPfnToPfn,
  hmmRangeFault,
} from '@hmmkit/mm/hmm';
import { EBUSY, EFAULT, type Routine } from '@hmmkit/sim';
import { dmirrorWarnOn, frameOf } from './access.js';
import type { Dmirror } from './dmirror.js';
import { DPT_XA_TAG_NONE, DPT_XA_TAG_WRITE, type DptEntry } from './pt.js';

/** `ARRAY_SIZE(pfns)` of dmirror_fault(): pages per hmm_range_fault() call. */
export const DMIRROR_FAULT_CHUNK = 64;

/** What a successful hmm_range_fault() sampled: the frame of every entry, taken right after it. */
type Sampled = (ReturnType<typeof frameOf> | null)[];

function sample(dmirror: Dmirror, range: HmmRange): Sampled {
  const mem = dmirror.mm.system.mem;
  const out: Sampled = [];
  for (const v of range.hmmPfns) out.push(v & HMM_PFN_VALID ? frameOf(mem, hmmPfnToPfn(v)) : null);
  return out;
}

/** models dmirror_do_fault(): stores the sampled pages in the device page table (mutex held). */
export function* dmirrorDoFault(dmirror: Dmirror, range: HmmRange, frames: Sampled): Routine<number> {
  const sim = dmirror.sim;
  sim.assertHeld(dmirror.mutex);
  const n = (range.end - range.start) / PAGE_SIZE;
  for (let i = 0; i < n; i++) {
    const v = range.hmmPfns[i]!;
    const va = range.start + i * PAGE_SIZE;
    // hmm_range_fault() was asked to populate every page: no error entry on success.
    dmirrorWarnOn(sim, (v & HMM_PFN_ERROR) !== 0n, `error entry at ${hex(va)}`);
    dmirrorWarnOn(sim, (v & HMM_PFN_VALID) === 0n, `invalid entry at ${hex(va)}`);
    const f = frames[i];
    if (!f) continue;
    let tag = DPT_XA_TAG_NONE as DptEntry['tag'];
    if (v & HMM_PFN_WRITE) tag = DPT_XA_TAG_WRITE;
    else if (
      dmirrorWarnOn(
        sim,
        (range.defaultFlags & HMM_PFN_REQ_WRITE) !== 0n,
        `read-only entry at ${hex(va)} for a write`,
      )
    )
      return -EFAULT;
    yield* dmirror.pt.store(
      va / PAGE_SIZE,
      { frame: f.frame, folio: f.folio, index: f.index, tag },
      'dmirror_do_fault',
    );
  }
  return 0;
}

/** models dmirror_range_fault(): the retry loop for one chunk, bounded by the retry budget. */
export function* dmirrorRangeFault(dmirror: Dmirror, range: HmmRange): Routine<number> {
  const mm = dmirror.mm;
  const variant = dmirror.variant;
  let frames: Sampled = [];
  for (let attempt = 0; ; attempt++) {
    // The kernel checks a 1000 ms deadline here; the model counts attempts instead.
    if (attempt >= dmirror.retries)
      return dmirror.retriesExhausted('dmirror_range_fault', range.start, range.end);
    range.notifierSeq = yield* mmuIntervalReadBegin(range.notifier);
    yield* mm.mmapLock.downRead('mmap_read_lock');
    const ret = yield* hmmRangeFault(range);
    if (ret === 0) frames = sample(dmirror, range);
    yield* mm.mmapLock.upRead('mmap_read_unlock');
    if (ret) {
      if (ret === -EBUSY) continue;
      return ret;
    }
    if (variant === 'read-retry-before-lock') {
      // The mistake: the check and the update are not under one lock hold.
      if (yield* mmuIntervalReadRetry(range.notifier, range.notifierSeq)) continue;
      yield* dmirror.mutex.lock('mutex_lock');
      break;
    }
    yield* dmirror.mutex.lock('mutex_lock');
    if (variant === 'program-before-retry') {
      // The mistake: the device is programmed before the sample is known to be current.
      const r = yield* dmirrorDoFault(dmirror, range, frames);
      if (yield* mmuIntervalReadRetry(range.notifier, range.notifierSeq)) {
        yield* dmirror.mutex.unlock('mutex_unlock');
        continue;
      }
      yield* dmirror.mutex.unlock('mutex_unlock');
      return r;
    }
    if (yield* mmuIntervalReadRetry(range.notifier, range.notifierSeq)) {
      yield* dmirror.mutex.unlock('mutex_unlock');
      continue;
    }
    break;
  }
  const ret = yield* dmirrorDoFault(dmirror, range, frames);
  yield* dmirror.mutex.unlock('mutex_unlock');
  return ret;
}

/**
 * models dmirror_fault(): faults `[start, end)` in for the device, for write if asked, in chunks of
 * {@link DMIRROR_FAULT_CHUNK} pages. Returns 0 without doing anything if the process is exiting.
 */
export function* dmirrorFault(dmirror: Dmirror, start: number, end: number, write: boolean): Routine<number> {
  const mm = dmirror.mm;
  // Keep the mirrored address space alive while we walk it.
  if (!(yield* mmgetNotZero(mm))) return 0;
  let ret = 0;
  for (let addr = start; addr < end; ) {
    const next = Math.min(addr + DMIRROR_FAULT_CHUNK * PAGE_SIZE, end);
    const range: HmmRange = {
      notifier: dmirror.notifier,
      notifierSeq: 0,
      start: addr,
      end: next,
      hmmPfns: new BigUint64Array((next - addr) / PAGE_SIZE),
      defaultFlags: HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0n),
      pfnFlagsMask: 0n,
      devPrivateOwner: dmirror.device,
    };
    ret = yield* dmirrorRangeFault(dmirror, range);
    if (ret) break;
    addr = next;
  }
  yield* mmput(mm);
  return ret;
}
