/**
 * HMM_DMIRROR_EXCLUSIVE and HMM_DMIRROR_CHECK_EXCLUSIVE: atomic device access through
 * device-exclusive entries (`dmirror_exclusive()`, `dmirror_atomic_map()`,
 * `dmirror_check_atomic()`), on the v6.15+ `make_device_exclusive()` (one page per call, the folio
 * returned locked and referenced, owner NULL: test_hmm does not wrap the call in a read_retry loop,
 * so it needs no filter for its own EXCLUSIVE event).
 */
import { type Folio, folioPut, mmgetNotZero, mmput, PAGE_SIZE, peekPte } from '@hmmkit/mm';
import { makeDeviceExclusive } from '@hmmkit/mm/device-exclusive';
import { EINVAL, EPERM, type Routine } from '@hmmkit/sim';
import type { Dmirror } from './dmirror.js';
import { DPT_XA_TAG_ATOMIC } from './pt.js';
import { copyToUser, dmirrorBounceInit, dmirrorDoRead } from './read-write.js';
import type { HmmDmirrorCmd } from './uapi.js';

/** models dmirror_check_atomic(): -EPERM if any page of `[start, end)` is still mapped for atomics. */
export function* dmirrorCheckAtomic(dmirror: Dmirror, start: number, end: number): Routine<number> {
  const first = start / PAGE_SIZE;
  const last = end / PAGE_SIZE - 1;
  return (yield* dmirror.pt.anyTagged(first, last, DPT_XA_TAG_ATOMIC, 'dmirror_check_atomic')) ? -EPERM : 0;
}

/** models dmirror_atomic_map(): maps page `index` of `folio` at `addr` for atomic access. */
export function* dmirrorAtomicMap(
  dmirror: Dmirror,
  addr: number,
  folio: Folio,
  index: number,
): Routine<number> {
  const mem = dmirror.mm.system.mem;
  yield* dmirror.mutex.lock('mutex_lock');
  yield* dmirror.pt.store(
    addr / PAGE_SIZE,
    { frame: mem.frameRef(folio, index), folio, index, tag: DPT_XA_TAG_ATOMIC },
    'dmirror_atomic_map',
  );
  yield* dmirror.mutex.unlock('mutex_unlock');
  return 0;
}

/** models dmirror_exclusive(): HMM_DMIRROR_EXCLUSIVE, then reads the data back into `cmd.ptr`. */
export function* dmirrorExclusive(dmirror: Dmirror, cmd: HmmDmirrorCmd): Routine<number> {
  const mm = dmirror.mm;
  const start = cmd.addr;
  const size = cmd.npages * PAGE_SIZE;
  const end = start + size;
  if (!(yield* mmgetNotZero(mm))) return -EINVAL;
  let ret = 0;
  yield* mm.mmapLock.downRead('mmap_read_lock');
  for (let addr = start; !ret && addr < end; addr += PAGE_SIZE) {
    const r = yield* makeDeviceExclusive(mm, addr, null);
    if (typeof r === 'number') {
      ret = r;
      break;
    }
    const folio = r;
    // The page of the folio at addr: the device-exclusive entry there names it, and it cannot
    // change while we hold the folio lock.
    const pte = peekPte(mm, addr);
    const index = pte.folio === folio ? pte.index : 0;
    ret = yield* dmirrorAtomicMap(dmirror, addr, folio, index);
    yield* folio.unlock('folio_unlock');
    yield* folioPut(mm.system.mem, folio, 'folio_put');
  }
  yield* mm.mmapLock.upRead('mmap_read_unlock');
  yield* mmput(mm);
  if (ret) return ret;
  // Return the data for verification.
  const bounce = dmirrorBounceInit(start, size);
  yield* dmirror.mutex.lock('mutex_lock');
  ret = yield* dmirrorDoRead(dmirror, start, end, bounce);
  yield* dmirror.mutex.unlock('mutex_unlock');
  if (ret === 0) copyToUser(cmd, bounce.ptr);
  cmd.cpages = bounce.cpages;
  return ret;
}
