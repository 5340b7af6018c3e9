/**
 * nouveau_svm.c, the per-client half: `struct nouveau_svmm` (the SVM state of one client VMM), its
 * mm-wide `mmu_notifier` that clears GPU PTEs, the per-fault interval notifier callback that only
 * bumps the fault's sequence, SVM_INIT, SVM_BIND (a migration hint), channel join/part, and
 * `nouveau_pfns_map()` used by dmem. The device-wide half (the fault buffer and its worker) is in
 * svm-fault.ts.
 *
 * Locks: `cli->mutex` → `mmap_lock` (write) at init; `svm->mutex` only around the instance list;
 * `svmm->mutex` is the SVM update lock: held while programming GPU PTEs (PFNMAP, PFNCLR) and taken
 * by both notifiers. On the fault path `mmap_lock` (read) is dropped before `svmm->mutex` is taken.
 */
import {
  __mmuNotifierRegister,
  hex,
  type Mm,
  MmuIntervalNotifier,
  type MmuIntervalNotifierOps,
  MmuNotifier,
  type MmuNotifierRange,
  MmuNotifyEvent,
  mmgetNotZero,
  mmput,
  mmuIntervalSetSeq,
  mmuNotifierPut,
  mmuNotifierRangeBlockable,
  PAGE_SIZE,
} from '@hmmkit/mm';
import {
  EAGAIN,
  EBUSY,
  EINVAL,
  ENOMEM,
  ENOSYS,
  type KBuf,
  kfree,
  kmalloc,
  Mutex,
  type Routine,
  type Sim,
} from '@hmmkit/sim';
import { nouveauDmemMigrateVma } from './dmem.js';
import type { NouveauDrm } from './drm.js';
import { type NouveauCli, type NouveauVmm, newSvmVmm, nouveauIds } from './drm.js';
import type { NvFaultBuffer } from './gpu.js';
import type { WorkStruct } from './workqueue.js';

/** `struct nouveau_ivmm`: a channel instance pointer bound to an svmm. */
export interface NouveauIvmm {
  svmm: NouveauSvmm;
  inst: number;
  mem: KBuf;
}

/** `struct nouveau_svm_fault`: one cached fault buffer entry. */
export interface NouveauSvmFault {
  inst: number;
  addr: number;
  access: number;
  hub: number;
  gpc: number;
  client: number;
  svmm: NouveauSvmm | null;
  /** The slot's allocation (made the first time the slot is used). */
  mem: KBuf;
}

/** `struct nouveau_svm_fault_buffer`. */
export interface NouveauSvmFaultBuffer {
  id: number;
  /** `buffer->object` and the GET/PUT registers: the hardware. */
  hw: NvFaultBuffer;
  entries: number;
  /** Cached GET and PUT. */
  get: number;
  put: number;
  /** `buffer->fault[]`: slots, allocated on first use. */
  fault: (NouveauSvmFault | null)[];
  faultNr: number;
  /** `buffer->work`: runs nouveau_svm_fault(). */
  work: WorkStruct;
}

/** `struct nouveau_svm`: per device. */
export class NouveauSvm {
  /** `svm->mutex`: protects `inst`. */
  readonly mutex: Mutex;
  /** `svm->inst`. */
  readonly inst: NouveauIvmm[] = [];
  /** `svm->buffer[0]` (set by the fault buffer constructor). */
  buffer!: NouveauSvmFaultBuffer;
  /** Model counters for tests: replays issued, faults cancelled, fault batches handled. */
  readonly stats = { replays: 0, cancels: 0, batches: 0, handled: 0, skippedUnsatisfied: 0 };

  constructor(readonly drm: NouveauDrm) {
    this.mutex = new Mutex(drm.sim, `${drm.name}->svm->mutex`, { lockClass: 'nouveau_svm.mutex' });
  }
}

/** `struct nouveau_svmm`. */
export class NouveauSvmm {
  readonly name: string;
  /** `svmm->notifier`: the mm-wide classic notifier (owns the svmm: freed in free_notifier). */
  readonly notifier: MmuNotifier;
  /** `svmm->vmm`: NULL once nouveau_svmm_fini() ran. */
  vmm: NouveauVmm | null;
  /** `svmm->unmanaged`: the window reserved for kernel-managed objects, never mirrored. */
  readonly unmanaged: { start: number; limit: number };
  /** `svmm->mutex`: the SVM update lock. */
  readonly mutex: Mutex;
  /** Per-fault interval notifiers created so far (names in traces). */
  notifierSeq = 0;
  /** Model of the 'mm-notifier-first' variant: invalidations whose mm-wide clear already ran. */
  readonly clearedEarly = new Set<MmuNotifierRange>();

  constructor(
    readonly drm: NouveauDrm,
    vmm: NouveauVmm,
    unmanagedAddr: number,
    unmanagedSize: number,
    /** kzalloc(sizeof(*svmm)). */
    readonly mem: KBuf,
  ) {
    this.name = `${drm.name}:svmm${nouveauIds(drm.sim).svmm++}`;
    this.vmm = vmm;
    this.unmanaged = { start: unmanagedAddr, limit: unmanagedAddr + unmanagedSize };
    this.mutex = new Mutex(drm.sim, `${this.name}->mutex`, { lockClass: 'nouveau_svmm.mutex' });
    this.notifier = new MmuNotifier(`${this.name}->notifier`, {
      invalidateRangeStart: (_mn, range) => nouveauSvmmInvalidateRangeStart(this, range),
      freeNotifier: () => nouveauSvmmFreeNotifier(this),
    });
  }

  get sim(): Sim {
    return this.drm.sim;
  }

  /** `svmm->notifier.mm`. */
  get mm(): Mm {
    return this.notifier.mm!;
  }

  toString(): string {
    return this.name;
  }
}

/**
 * `struct svm_notifier`: the interval notifier of one fault window, on the fault worker's stack,
 * inserted for the duration of one fault.
 */
export class SvmNotifier {
  readonly notifier: MmuIntervalNotifier;
  readonly ops: MmuIntervalNotifierOps;

  constructor(readonly svmm: NouveauSvmm) {
    this.notifier = new MmuIntervalNotifier(svmm.sim, `${svmm.name}:fault${svmm.notifierSeq++}`);
    this.ops = {
      invalidate: (mni, range, curSeq) => nouveauSvmRangeInvalidate(this, mni, range, curSeq),
    };
  }
}

// ---- SVMM invalidation ------------------------------------------------------------------------------

/** models nouveau_svmm_invalidate(): PFNCLR over `[start, limit)` of the client's VMM. */
export function* nouveauSvmmInvalidate(svmm: NouveauSvmm, start: number, limit: number): Routine {
  if (limit > start) {
    const vmm = svmm.vmm?.vmm;
    if (!vmm)
      return svmm.sim.fail('null-pointer-dereference', `nouveau_svmm_invalidate: ${svmm.name}->vmm is NULL`);
    yield* vmm.pfnclr(start, limit - start, 'nouveau_svmm_invalidate');
  }
}

/**
 * models nouveau_svmm_invalidate_range_start(), the mm-wide notifier: refuses every non-blockable
 * range (-EAGAIN); under svmm->mutex, does nothing once the svmm is being torn down or for the
 * migrations of its own device (dmem clears those itself), else clears the GPU PTEs of the range,
 * split around the unmanaged window.
 */
export function* nouveauSvmmInvalidateRangeStart(
  svmm: NouveauSvmm,
  update: MmuNotifierRange,
): Routine<number> {
  let start = update.start;
  const limit = update.end;
  if (!mmuNotifierRangeBlockable(update)) return -EAGAIN;
  // 'mm-notifier-first': this invalidation's clear already ran, before the interval callbacks.
  if (svmm.drm.variant === 'mm-notifier-first' && svmm.clearedEarly.delete(update)) return 0;
  yield* svmm.mutex.lock('mutex_lock(&svmm->mutex)');
  if (svmm.vmm && !(update.event === MmuNotifyEvent.MIGRATE && update.owner === svmm.drm.dev)) {
    if (limit > svmm.unmanaged.start && start < svmm.unmanaged.limit) {
      if (start < svmm.unmanaged.start) yield* nouveauSvmmInvalidate(svmm, start, svmm.unmanaged.limit);
      start = svmm.unmanaged.limit;
    }
    yield* nouveauSvmmInvalidate(svmm, start, limit);
  }
  yield* svmm.mutex.unlock('mutex_unlock(&svmm->mutex)');
  return 0;
}

/** models nouveau_svmm_free_notifier(): the last mmu_notifier_put() frees the svmm. */
function* nouveauSvmmFreeNotifier(svmm: NouveauSvmm): Routine {
  svmm.sim.free(svmm.mutex);
  yield* kfree(svmm.mem, 'kfree(svmm)');
}

/**
 * models nouveau_svm_range_invalidate(), the per-fault interval notifier: it only publishes the new
 * sequence under svmm->mutex (so a fault that is programming the GPU finishes first); the PTEs are
 * cleared by the mm-wide notifier, which the core calls after it. Its own device-exclusive
 * conversion (MMU_NOTIFY_EXCLUSIVE with owner drm->dev) must not bump the sequence.
 */
export function* nouveauSvmRangeInvalidate(
  sn: SvmNotifier,
  mni: MmuIntervalNotifier,
  range: MmuNotifierRange,
  curSeq: number,
): Routine<boolean> {
  const svmm = sn.svmm;
  const variant = svmm.drm.variant;
  if (
    variant !== 'no-own-exclusive-filter' &&
    range.event === MmuNotifyEvent.EXCLUSIVE &&
    range.owner === svmm.drm.dev
  ) {
    return true;
  }
  if (variant === 'mm-notifier-first' && !svmm.clearedEarly.has(range)) {
    // The mistake: the mm-wide notifier's clear happens before this seq bump, in its own
    // critical section, as if the core called the classic notifiers first (and not after).
    if ((yield* nouveauSvmmInvalidateRangeStart(svmm, range)) !== 0) return false;
    svmm.clearedEarly.add(range);
  }
  if (mmuNotifierRangeBlockable(range)) yield* svmm.mutex.lock('mutex_lock(&svmm->mutex)');
  else if (!(yield* svmm.mutex.trylock('mutex_trylock(&svmm->mutex)'))) return false;
  if (variant === 'set-seq-outside-lock') {
    yield* svmm.mutex.unlock('mutex_unlock(&svmm->mutex)');
    yield* mmuIntervalSetSeq(mni, curSeq);
    return true;
  }
  yield* mmuIntervalSetSeq(mni, curSeq);
  yield* svmm.mutex.unlock('mutex_unlock(&svmm->mutex)');
  return true;
}

// ---- SVM_INIT, fini, join/part -----------------------------------------------------------------------

/**
 * models nouveau_svmm_init() (DRM_NOUVEAU_SVM_INIT): a new MANAGED VMM with replayable faults for
 * the client, and the mm-wide notifier registered on the caller's mm under mmap_write_lock.
 * -ENOSYS without SVM, -EBUSY if the client already has it, or the registration's error.
 */
export function* nouveauSvmmInit(
  cli: NouveauCli,
  unmanagedAddr: number,
  unmanagedSize: number,
): Routine<number> {
  const drm = cli.drm;
  if (!drm.svm) return -ENOSYS;
  const mem = yield* kmalloc(drm.sim, 256, 'GFP_KERNEL', 'kzalloc(svmm)');
  if (!mem) return -ENOMEM;
  const svmm = new NouveauSvmm(drm, cli.svm, unmanagedAddr, unmanagedSize, mem);
  let ret = 0;
  yield* cli.mutex.lock('mutex_lock(&cli->mutex)');
  if (cli.svm.cli) {
    ret = -EBUSY;
  } else {
    // nvif_vmm_ctor(&cli->mmu, "svmVmm", ..., MANAGED, unmanaged window, fault_replay = true)
    cli.svm.vmm = newSvmVmm(cli);
    const mm = cli.mm;
    yield* mm.mmapLock.downWrite('mmap_write_lock');
    ret = yield* __mmuNotifierRegister(svmm.notifier, mm);
    if (!ret) {
      // Ownership of svmm passes to the notifier.
      cli.svm.svmm = svmm;
      cli.svm.cli = cli;
    }
    yield* mm.mmapLock.upWrite('mmap_write_unlock');
  }
  // abi16 channel allocation (the SVM client's way to get channels) disables VM_INIT.
  if (!ret && !cli.uvmm.ptr) cli.uvmm.disabled = true;
  yield* cli.mutex.unlock('mutex_unlock(&cli->mutex)');
  if (ret) yield* kfree(mem, 'kfree(svmm)');
  return ret;
}

/**
 * models nouveau_svmm_fini(): marks the svmm dead under its mutex (the notifier does nothing from
 * then on) and drops the notifier reference; the svmm is freed after an SRCU grace period.
 */
export function* nouveauSvmmFini(vmm: NouveauVmm): Routine {
  const svmm = vmm.svmm;
  if (!svmm) return;
  yield* svmm.mutex.lock('mutex_lock(&svmm->mutex)');
  svmm.vmm = null;
  yield* svmm.mutex.unlock('mutex_unlock(&svmm->mutex)');
  yield* mmuNotifierPut(svmm.notifier);
  vmm.svmm = null;
}

/** models nouveau_svmm_join(): links channel instance `inst` to the svmm (allocating outside the lock). */
export function* nouveauSvmmJoin(svmm: NouveauSvmm | null, inst: number): Routine<number> {
  if (!svmm) return 0;
  const svm = svmm.drm.svm!;
  const mem = yield* kmalloc(svmm.sim, 32, 'GFP_KERNEL', 'kmalloc(ivmm)');
  if (!mem) return -ENOMEM;
  yield* svm.mutex.lock('mutex_lock(&svm->mutex)');
  svm.inst.unshift({ svmm, inst, mem });
  yield* svm.mutex.unlock('mutex_unlock(&svm->mutex)');
  return 0;
}

/** models nouveau_svmm_part(): unlinks channel instance `inst`. */
export function* nouveauSvmmPart(svmm: NouveauSvmm | null, inst: number): Routine {
  if (!svmm) return;
  const svm = svmm.drm.svm!;
  yield* svm.mutex.lock('mutex_lock(&svm->mutex)');
  const i = svm.inst.findIndex((v) => v.inst === inst);
  const ivmm = i >= 0 ? svm.inst.splice(i, 1)[0]! : null;
  if (ivmm) yield* kfree(ivmm.mem, 'kfree(ivmm)');
  yield* svm.mutex.unlock('mutex_unlock(&svm->mutex)');
}

/** models nouveau_ivmm_find(): caller holds svm->mutex. */
export function nouveauIvmmFind(svm: NouveauSvm, inst: number): NouveauIvmm | null {
  svm.drm.sim.assertHeld(svm.mutex);
  return svm.inst.find((v) => v.inst === inst) ?? null;
}

// ---- SVM_BIND and pfns_map -----------------------------------------------------------------------------

/**
 * models nouveau_svmm_bind() (DRM_NOUVEAU_SVM_BIND) for its only command, MIGRATE to GPU VRAM:
 * best-effort migration of every VMA piece of `[start, end)` under mmap_read_lock; always 0 once
 * the arguments are valid.
 */
export function* nouveauSvmmBind(cli: NouveauCli, start: number, end: number): Routine<number> {
  const vaStart = start - (start % PAGE_SIZE);
  const vaEnd = Math.ceil(end / PAGE_SIZE) * PAGE_SIZE;
  if (vaStart >= vaEnd) return -EINVAL;
  const mm = cli.mm;
  // get_task_mm(current)
  if (!(yield* mmgetNotZero(mm))) return -EINVAL;
  yield* mm.mmapLock.downRead('mmap_read_lock');
  const svmm = cli.svm.svmm;
  if (!svmm) {
    yield* mm.mmapLock.upRead('mmap_read_unlock');
    yield* mmput(mm);
    return -EINVAL;
  }
  for (let addr = vaStart; addr < vaEnd; ) {
    const vma = mm.findVma(addr);
    if (!vma || vma.start >= vaEnd) break;
    addr = Math.max(addr, vma.start);
    const next = Math.min(vma.end, vaEnd);
    // Best effort: errors are ignored.
    yield* nouveauDmemMigrateVma(cli.drm, svmm, vma, addr, next);
    addr = next;
  }
  yield* mm.mmapLock.upRead('mmap_read_unlock');
  yield* mmput(mm);
  return 0;
}

/** The arguments of a PFNMAP call (`struct nouveau_pfnmap_args` + `phys[]`), with the model's frames. */
export interface NouveauPfnmapArgs {
  addr: number;
  /** `p.page`: page shift of each `phys` entry. */
  page: number;
  size: number;
  phys: number[];
  frames: (import('@hmmkit/mm').FrameRef | null)[];
  mem: KBuf | null;
}

/** models nouveau_pfns_alloc(): the argument block for `npages` PFNMAP entries (kzalloc). */
export function* nouveauPfnsAlloc(sim: Sim, npages: number): Routine<NouveauPfnmapArgs | null> {
  const mem = yield* kmalloc(sim, 64 + 8 * npages, 'GFP_KERNEL', 'nouveau_pfns_alloc');
  if (!mem) return null;
  return {
    addr: 0,
    page: 12,
    size: 0,
    phys: new Array<number>(npages).fill(0),
    frames: new Array(npages).fill(null),
    mem,
  };
}

/** models nouveau_pfns_free(). */
export function* nouveauPfnsFree(args: NouveauPfnmapArgs): Routine {
  if (args.mem) yield* kfree(args.mem, 'nouveau_pfns_free');
}

/** models nouveau_pfns_map(): PFNMAP `npages` entries at `addr` under svmm->mutex. */
export function* nouveauPfnsMap(
  svmm: NouveauSvmm,
  addr: number,
  args: NouveauPfnmapArgs,
  npages: number,
): Routine {
  args.addr = addr;
  args.size = npages * PAGE_SIZE;
  yield* svmm.mutex.lock('mutex_lock(&svmm->mutex)');
  const vmm = svmm.vmm?.vmm;
  if (!vmm) return svmm.sim.fail('null-pointer-dereference', `nouveau_pfns_map: ${svmm.name}->vmm is NULL`);
  yield* vmm.pfnmap(
    addr,
    args.page,
    args.size,
    args.phys.slice(0, npages),
    args.frames.slice(0, npages),
    `nouveau_pfns_map(${hex(addr)})`,
  );
  yield* svmm.mutex.unlock('mutex_unlock(&svmm->mutex)');
}
