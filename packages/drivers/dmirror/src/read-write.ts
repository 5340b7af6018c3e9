/**
 * HMM_DMIRROR_READ and HMM_DMIRROR_WRITE: the device copies between its view of the process's
 * memory and a bounce buffer, faulting missing pages in through the fault path
 * (`dmirror_read()`, `dmirror_write()` and their `dmirror_do_*()` helpers).
 */
import { PAGE_SIZE, type PageValue } from '@hmmkit/mm';
import { ENOENT, type Routine } from '@hmmkit/sim';
import { deviceReadPage, deviceWritePage } from './access.js';
import type { Dmirror } from './dmirror.js';
import { dmirrorFault } from './fault.js';
import { DPT_XA_TAG_WRITE } from './pt.js';
import type { HmmDmirrorCmd } from './uapi.js';

/** `struct dmirror_bounce`: the kernel-side copy of the user buffer. */
export interface DmirrorBounce {
  ptr: PageValue[];
  /** Bytes. */
  size: number;
  /** User address of `ptr[0]`. */
  addr: number;
  cpages: number;
}

/** models dmirror_bounce_init(). */
export function dmirrorBounceInit(addr: number, size: number): DmirrorBounce {
  return { ptr: new Array<PageValue>(size / PAGE_SIZE).fill(0), size, addr, cpages: 0 };
}

/** models dmirror_do_read(): copies `[start, end)` into the bounce buffer (mutex held). */
export function* dmirrorDoRead(
  dmirror: Dmirror,
  start: number,
  end: number,
  bounce: DmirrorBounce,
): Routine<number> {
  const mem = dmirror.mm.system.mem;
  let i = (start - bounce.addr) / PAGE_SIZE;
  for (let pfn = start / PAGE_SIZE; pfn < end / PAGE_SIZE; pfn++, i++) {
    const entry = yield* dmirror.pt.load(pfn, 'dmirror_do_read');
    if (!entry) return -ENOENT;
    bounce.ptr[i] = yield* deviceReadPage(mem, entry, dmirror.name, pfn * PAGE_SIZE);
    bounce.cpages++;
  }
  return 0;
}

/** models dmirror_do_write(): copies the bounce buffer into `[start, end)` (mutex held). */
export function* dmirrorDoWrite(
  dmirror: Dmirror,
  start: number,
  end: number,
  bounce: DmirrorBounce,
): Routine<number> {
  const mem = dmirror.mm.system.mem;
  let i = (start - bounce.addr) / PAGE_SIZE;
  for (let pfn = start / PAGE_SIZE; pfn < end / PAGE_SIZE; pfn++, i++) {
    const entry = yield* dmirror.pt.load(pfn, 'dmirror_do_write');
    if (!entry || entry.tag !== DPT_XA_TAG_WRITE) return -ENOENT;
    yield* deviceWritePage(mem, entry, bounce.ptr[i]!, dmirror.name, pfn * PAGE_SIZE);
    bounce.cpages++;
  }
  return 0;
}

/** models dmirror_read(): device read of `cmd.npages` pages at `cmd.addr` into `cmd.ptr`. */
export function* dmirrorRead(dmirror: Dmirror, cmd: HmmDmirrorCmd): Routine<number> {
  const size = cmd.npages * PAGE_SIZE;
  let start = cmd.addr;
  const end = start + size;
  const bounce = dmirrorBounceInit(start, size);
  let ret: number;
  for (;;) {
    yield* dmirror.mutex.lock('mutex_lock');
    ret = yield* dmirrorDoRead(dmirror, start, end, bounce);
    yield* dmirror.mutex.unlock('mutex_unlock');
    if (ret !== -ENOENT) break;
    start = cmd.addr + bounce.cpages * PAGE_SIZE;
    ret = yield* dmirrorFault(dmirror, start, end, false);
    if (ret) break;
    cmd.faults++;
  }
  // models copy_to_user(): the user buffer changes only on success.
  if (ret === 0) copyToUser(cmd, bounce.ptr);
  cmd.cpages = bounce.cpages;
  return ret;
}

/** models dmirror_write(): device write of `cmd.ptr` to `cmd.npages` pages at `cmd.addr`. */
export function* dmirrorWrite(dmirror: Dmirror, cmd: HmmDmirrorCmd): Routine<number> {
  const size = cmd.npages * PAGE_SIZE;
  let start = cmd.addr;
  const end = start + size;
  const bounce = dmirrorBounceInit(start, size);
  // models copy_from_user()
  const src = cmd.ptr as PageValue[];
  for (let i = 0; i < bounce.ptr.length; i++) bounce.ptr[i] = src[i] ?? 0;
  let ret: number;
  for (;;) {
    yield* dmirror.mutex.lock('mutex_lock');
    ret = yield* dmirrorDoWrite(dmirror, start, end, bounce);
    yield* dmirror.mutex.unlock('mutex_unlock');
    if (ret !== -ENOENT) break;
    start = cmd.addr + bounce.cpages * PAGE_SIZE;
    ret = yield* dmirrorFault(dmirror, start, end, true);
    if (ret) break;
    cmd.faults++;
  }
  cmd.cpages = bounce.cpages;
  return ret;
}

/** `copy_to_user(cmd->ptr, bounce.ptr, bounce.size)`. */
export function copyToUser(cmd: HmmDmirrorCmd, values: readonly PageValue[]): void {
  const dst = cmd.ptr as PageValue[];
  for (let i = 0; i < values.length; i++) dst[i] = values[i]!;
}
