/**
 * nouveau_svm.c, the device-wide half: the replayable fault buffer and the work item that handles
 * it (`nouveau_svm_fault()`); the two ways one fault is served (`nouveau_range_fault()`,
 * `nouveau_atomic_range_fault()`) are in svm-range.ts.
 *
 * The worker: drain the ring into cached entries (GET written back so the GPU can reuse slots),
 * sort by (instance, address, access priority), resolve instances to svmms under svm->mutex, then
 * per group: one fault is handled; following faults of the same svmm inside the mapped window
 * whose first fault's access the new PTE satisfies are skipped; a failure cancels the whole group
 * (the channel is killed); one replay is issued for the batch if anything succeeded.
 */
import { mmgetNotZero, mmput, NotifierViolation, notifierDebug, PAGE_SIZE } from '@hmmkit/mm';
import { HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE } from '@hmmkit/mm/hmm';
import { kfree, kmalloc, type Routine, type Sim } from '@hmmkit/sim';
import type { NouveauDrm } from './drm.js';
import {
  FAULT_ACCESS_ATOMIC,
  FAULT_ACCESS_PREFETCH,
  FAULT_ACCESS_READ,
  FAULT_ACCESS_WRITE,
  faultAccessName,
} from './gpu.js';
import {
  NVIF_VMM_PFNMAP_V0_A,
  NVIF_VMM_PFNMAP_V0_V,
  NVIF_VMM_PFNMAP_V0_VRAM,
  NVIF_VMM_PFNMAP_V0_W,
  nvifPfnmapFlags,
} from './nvif.js';
import {
  NouveauSvm,
  type NouveauSvmFault,
  type NouveauSvmFaultBuffer,
  type NouveauSvmm,
  nouveauIvmmFind,
  SvmNotifier,
} from './svm.js';
import { nouveauAtomicRangeFault, nouveauRangeFault, type SvmFaultArgs } from './svm-range.js';
import { WorkStruct } from './workqueue.js';

/** `WARN_ON(cond)` in the driver: recorded with the notifier layer's warnings (the kit checks them). */
export function nouveauWarnOn(sim: Sim, cond: boolean, message: string): boolean {
  if (!cond) return false;
  const d = notifierDebug(sim);
  d.warnings.push(`nouveau: ${message}`);
  if (d.panicOnWarn) sim.fail(NotifierViolation.Warn, `WARNING: nouveau: ${message}`);
  return true;
}

// ---- replay, cancel, cache, sort --------------------------------------------------------------------

/** models nouveau_svm_fault_replay(): GP100_VMM_VN_FAULT_REPLAY on the DRM client's VMM. */
function* nouveauSvmFaultReplay(svm: NouveauSvm): Routine {
  svm.stats.replays++;
  yield* svm.buffer.hw.replay();
}

/** models nouveau_svm_fault_cancel(): GP100_VMM_VN_FAULT_CANCEL, an engine reset killing the channel. */
function* nouveauSvmFaultCancel(
  svm: NouveauSvm,
  inst: number,
  hub: number,
  gpc: number,
  client: number,
): Routine {
  svm.stats.cancels++;
  yield* svm.buffer.hw.cancel(inst, hub, gpc, client);
}

/** models nouveau_svm_fault_cancel_fault(). */
function* nouveauSvmFaultCancelFault(svm: NouveauSvm, fault: NouveauSvmFault): Routine {
  yield* nouveauSvmFaultCancel(svm, fault.inst, fault.hub, fault.gpc, fault.client);
}

/** models nouveau_svm_fault_priority(): PREFETCH < READ < WRITE < ATOMIC. */
export function nouveauSvmFaultPriority(access: number): number {
  switch (access) {
    case FAULT_ACCESS_PREFETCH:
      return 0;
    case FAULT_ACCESS_READ:
      return 1;
    case FAULT_ACCESS_WRITE:
      return 2;
    case FAULT_ACCESS_ATOMIC:
      return 3;
    default:
      return -1;
  }
}

/** models nouveau_svm_fault_cmp(): instance, then address, then access priority (ascending). */
export function nouveauSvmFaultCmp(fa: NouveauSvmFault, fb: NouveauSvmFault, writesFirst = false): number {
  if (fa.inst !== fb.inst) return fa.inst - fb.inst;
  if (fa.addr !== fb.addr) return fa.addr - fb.addr;
  const d = nouveauSvmFaultPriority(fa.access) - nouveauSvmFaultPriority(fb.access);
  // The proposed fix of §1.11 (b): strongest access first, as the duplicate-skip comment assumes.
  return writesFirst ? -d : d;
}

/**
 * models nouveau_svm_fault_cache(): copies the entry at slot `get` into a cached fault (allocated
 * the first time the slot is used; on failure the fault is cancelled) and clears its valid bit.
 */
function* nouveauSvmFaultCache(svm: NouveauSvm, buffer: NouveauSvmFaultBuffer, get: number): Routine {
  const sim = svm.drm.sim;
  const e = yield* buffer.hw.readEntry(get);
  if (nouveauWarnOn(sim, !e?.valid, `fault buffer entry ${get} is not valid`) || !e) return;
  let fault = buffer.fault[buffer.faultNr];
  if (!fault) {
    const mem = yield* kmalloc(sim, 64, 'GFP_KERNEL', 'kmalloc(struct nouveau_svm_fault)');
    if (nouveauWarnOn(sim, !mem, 'fault cache allocation failed') || !mem) {
      yield* nouveauSvmFaultCancel(svm, e.inst, e.hub, e.gpc, e.client);
      return;
    }
    fault = { inst: 0, addr: 0, access: 0, hub: 0, gpc: 0, client: 0, svmm: null, mem };
    buffer.fault[buffer.faultNr] = fault;
  }
  buffer.faultNr++;
  fault.inst = e.inst;
  fault.addr = e.addr;
  fault.access = e.access;
  fault.hub = e.hub;
  fault.gpc = e.gpc;
  fault.client = e.client;
  fault.svmm = null;
}

// ---- the work item ------------------------------------------------------------------------------

/** models nouveau_svm_fault(): the fault work item (see the module comment). */
export function* nouveauSvmFault(svm: NouveauSvm): Routine {
  const drm = svm.drm;
  const buffer = svm.buffer;
  const fixes = drm.options.proposedFixes;

  // Parse the ring into the cache and give the slots back to the GPU.
  if (buffer.get === buffer.put) {
    const r = yield* buffer.hw.rdPutGet();
    buffer.put = r.put;
    buffer.get = r.get;
    if (buffer.get === buffer.put) return;
  }
  buffer.faultNr = 0;
  while (buffer.get !== buffer.put) {
    yield* nouveauSvmFaultCache(svm, buffer, buffer.get);
    if (++buffer.get === buffer.entries) buffer.get = 0;
  }
  yield* buffer.hw.wrGet(buffer.get);
  svm.stats.batches++;

  // Sort by instance, address and access, so each instance is looked up once.
  const faults = buffer.fault.slice(0, buffer.faultNr) as NouveauSvmFault[];
  faults.sort((a, b) => nouveauSvmFaultCmp(a, b, fixes.sortWritesFirst));

  yield* svm.mutex.lock('mutex_lock(&svm->mutex)');
  let svmm: NouveauSvmm | null = null;
  let inst = -1;
  for (const f of faults) {
    if (!svmm || f.inst !== inst) {
      svmm = nouveauIvmmFind(svm, f.inst)?.svmm ?? null;
      inst = f.inst;
    }
    f.svmm = svmm;
  }
  yield* svm.mutex.unlock('mutex_unlock(&svm->mutex)');

  // One PFNMAP argument block for the whole batch (its phys[0] outlives each group).
  const args: SvmFaultArgs = { addr: 0, page: 12, size: PAGE_SIZE, phys: 0, frame: null };
  let replay = 0;
  let atomic = false;
  let hmmFlags = 0n;
  let ret = 0;
  for (let fi = 0, fn = 0; fi < faults.length; fi = fn) {
    fn = fi + 1;
    const f = faults[fi]!;
    // Faults from channels without SVM are cancelled.
    const s = f.svmm;
    if (!s) {
      yield* nouveauSvmFaultCancelFault(svm, f);
      continue;
    }
    // Computed as upstream does, and, as upstream, not used for the request.
    let limit = f.addr + PAGE_SIZE;
    if (f.addr < s.unmanaged.limit) limit = Math.min(limit, s.unmanaged.start);
    args.addr = f.addr;
    args.page = 12;
    args.size = PAGE_SIZE;
    switch (f.access) {
      case FAULT_ACCESS_READ:
        hmmFlags = HMM_PFN_REQ_FAULT;
        break;
      case FAULT_ACCESS_ATOMIC:
        atomic = true;
        break;
      case FAULT_ACCESS_PREFETCH:
        hmmFlags = 0n;
        break;
      default:
        hmmFlags = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
        break;
    }
    // The proposed fix of §1.11 (a): `atomic` belongs to this group only.
    if (fixes.resetAtomicPerGroup) atomic = f.access === FAULT_ACCESS_ATOMIC;
    const mm = s.mm;
    if (!(yield* mmgetNotZero(mm))) {
      yield* nouveauSvmFaultCancelFault(svm, f);
      continue;
    }
    const notifier = new SvmNotifier(s);
    ret = atomic
      ? yield* nouveauAtomicRangeFault(s, drm, args, notifier)
      : yield* nouveauRangeFault(s, drm, args, hmmFlags, notifier);
    yield* mmput(mm);
    svm.stats.handled++;

    // Skip the following faults the new mapping already covers (same svmm, inside the window,
    // with the permission the group's first fault needed).
    limit = args.addr + args.size;
    const bits = nvifPfnmapFlags(args.phys);
    for (fn = fi; ++fn < faults.length; ) {
      const g = faults[fn]!;
      // Upstream tests the group's first fault's access; the proposed fix tests each fault's own.
      const need = fixes.skipChecksEachFault ? g.access : f.access;
      if (
        g.svmm !== s ||
        g.addr >= limit ||
        (need === FAULT_ACCESS_READ && !(bits & NVIF_VMM_PFNMAP_V0_V)) ||
        (need !== FAULT_ACCESS_READ && need !== FAULT_ACCESS_PREFETCH && !(bits & NVIF_VMM_PFNMAP_V0_W)) ||
        (need !== FAULT_ACCESS_READ &&
          need !== FAULT_ACCESS_WRITE &&
          need !== FAULT_ACCESS_PREFETCH &&
          !(bits & NVIF_VMM_PFNMAP_V0_A))
      ) {
        break;
      }
      // Model counter: a skipped fault the new mapping does not satisfy will fault again.
      if (!accessSatisfied(g.access, bits)) svm.stats.skippedUnsatisfied++;
    }
    // A failure cancels every fault of the group; a success asks for a replay.
    if (ret) {
      while (fi < fn) yield* nouveauSvmFaultCancelFault(svm, faults[fi++]!);
    } else {
      replay++;
    }
  }
  if (replay) yield* nouveauSvmFaultReplay(svm);
}

/** Whether a PFNMAP entry with `bits` lets the GPU perform `access`. */
function accessSatisfied(access: number, bits: number): boolean {
  switch (access) {
    case FAULT_ACCESS_PREFETCH:
      return true;
    case FAULT_ACCESS_READ:
      return (bits & NVIF_VMM_PFNMAP_V0_V) !== 0;
    case FAULT_ACCESS_WRITE:
      return (bits & NVIF_VMM_PFNMAP_V0_W) !== 0;
    default:
      return (bits & NVIF_VMM_PFNMAP_V0_A) !== 0 || (bits & NVIF_VMM_PFNMAP_V0_VRAM) !== 0;
  }
}

/** models nouveau_svm_event(): the fault interrupt only schedules the work item. */
function* nouveauSvmEvent(buffer: NouveauSvmFaultBuffer): Routine {
  yield* buffer.work.schedule();
}

// ---- init / fini ----------------------------------------------------------------------------------

/**
 * models nouveau_svm_init() on a Pascal GPU with nouveau_svm_fault_buffer_ctor() and _init():
 * setup time (no thread). The fault work's thread starts here.
 */
export function nouveauSvmInit(drm: NouveauDrm): void {
  const svm = new NouveauSvm(drm);
  const hw = drm.hw;
  const buffer: NouveauSvmFaultBuffer = {
    id: 0,
    hw,
    entries: hw.entries,
    get: hw.get,
    put: hw.put,
    fault: new Array<NouveauSvmFault | null>(hw.entries).fill(null),
    faultNr: 0,
    work: new WorkStruct(drm.sim, `${drm.name}->svm->buffer[0].work`, () => nouveauSvmFault(svm)),
  };
  svm.buffer = buffer;
  hw.handler = () => nouveauSvmEvent(buffer);
  hw.allowed = true; // nvif_event_allow()
  buffer.work.start();
  drm.svm = svm;
}

/**
 * models nouveau_svm_fini() → nouveau_svm_fault_buffer_dtor(): blocks the fault event, flushes
 * the work, frees the cached faults. (The model also stops the work's thread.)
 */
export function* nouveauSvmFini(drm: NouveauDrm): Routine {
  const svm = drm.svm;
  if (!svm) return;
  const buffer = svm.buffer;
  yield* buffer.hw.setAllowed(false);
  yield* buffer.work.flush();
  yield* buffer.work.stop();
  for (const f of buffer.fault) if (f) yield* kfree(f.mem, 'kfree(fault)');
  buffer.fault.fill(null);
  drm.svm = null;
}

/** Readable name of a fault access code (traces, reports). */
export function faultName(access: number): string {
  return faultAccessName[access as 0] ?? String(access);
}
