/**
 * Asynchronous VM_BIND (`Documentation/gpu/drm-vm-bind-async.rst`, gpuvm.md §5): bind jobs with
 * in- and out-fences on bind queues, a scheduler thread per queue whose `run_job` is a
 * fence-signalling critical section, multi-op binds that are all-or-nothing, and the two upstream
 * ways of building it on gpuvm:
 *
 * - `'submit'` (nouveau, xe): the ioctl creates op lists and applies them to the VA tree at once,
 *   under the driver's VM lock, so later ops of the same ioctl see earlier ones; a failure unwinds
 *   the applied ops in reverse. Then it locks and links; `run_job` only writes page tables.
 * - `'run-job'` (panthor, PowerVR, Tyr; IMMEDIATE_MODE): the ioctl validates and pre-allocates the
 *   worst case; `run_job` runs `drm_gpuvm_sm_map()`/`sm_unmap()` with callbacks that consume the
 *   pre-allocation, link and unlink under `obj->gpuva.lock` and defer vm_bo destruction.
 *
 * A driver model uses it by creating a {@link VmBind} over its {@link GpuVm}, one or more
 * {@link BindQueue}s (bind contexts), and calling {@link VmBind.bind} from its ioctl threads;
 * `checks()` gives the properties (page tables match the tree, per-queue order, no leak).
 */
import {
  type Check,
  Completion,
  DmaFence,
  dmaFenceBeginSignalling,
  dmaFenceEndSignalling,
  EINVAL,
  ENOENT,
  ENOMEM,
  type Gfp,
  type KBuf,
  kmalloc,
  Mutex,
  primeDmaResvLockdep,
  type Routine,
  type Sim,
  type Thread,
  Var,
} from '@hmmkit/sim';
import { isU64 } from '../addr.js';
import { checkGpuvm } from '../check.js';
import { DrmExec, gpuvmPrepareVm, gpuvmResvAddFence } from '../exec.js';
import { DrmExecFlags, GpuvaOpType, GpuvmFlags } from '../flags.js';
import { GemObject } from '../gem.js';
import { AllocLedger, dmaResvReserveFences } from '../kernel.js';
import { type GpuvaOp, type GpuvaOps, isErr, mapReq, type OpRemap, opRemapToUnmapRange } from '../ops.js';
import {
  gpuvaOpsFree,
  gpuvmSmMapOpsCreate,
  gpuvmSmUnmapOpsCreate,
  type SmSteps,
  smMapWith,
  smUnmapWith,
} from '../split-merge.js';
import { GpuVa } from '../va.js';
import { GpuVm, type GpuVmInit, gpuvaMap, gpuvaRemap, gpuvaUnmap } from '../vm.js';
import {
  type GpuVmBo,
  gpuvaLink,
  gpuvaLinkNow,
  gpuvaUnlink,
  gpuvaUnlinkDefer,
  gpuvmBoCreate,
  gpuvmBoDeferredCleanup,
  gpuvmBoExtobjAdd,
  gpuvmBoExtobjAddNow,
  gpuvmBoObtain,
  gpuvmBoObtainNow,
  gpuvmBoObtainPrealloc,
  gpuvmBoPut,
  gpuvmBoPutDeferred,
  gpuvmBoPutNow,
} from '../vm-bo.js';
import { DevicePageTable } from './page-table.js';
import { VmBindPrealloc, vasWorstCase } from './prealloc.js';

/** One user operation of a VM_BIND ioctl. A map with `obj: null` is a sparse (NULL) mapping. */
export interface BindOp {
  op: 'map' | 'unmap';
  addr: number;
  range: number;
  obj?: GemObject | null;
  offset?: number;
}

/** Per-ioctl options. */
export interface BindOptions {
  /** In-syncobj fences: the job starts only after all signalled. Must be empty for a sync bind. */
  inFences?: DmaFence[];
  /** Synchronous VM_BIND: returns only when the job completed. */
  sync?: boolean;
  /** Memory (user) fences given as in-fences: waited for synchronously inside the ioctl. */
  userFences?: Completion[];
}

/** What the ioctl returns: 0 or -errno (errors are reported synchronously), and the job. */
export interface BindResult {
  ret: number;
  /** The job (its `done` fence is the out-fence), null on error. */
  job: BindJob | null;
}

/** Known-bug variants, each named after the mistake it models. All off by default. */
export interface VmBindBugs {
  /** `run_job` allocates with GFP_KERNEL (the early nouveau VM_BIND did). */
  allocInRunJob?: boolean;
  /** `run_job` takes the VM's dma_resv. */
  resvLockInRunJob?: boolean;
  /** Submit pattern: `run_job` takes the VM lock that the ioctl holds while allocating. */
  lockTreeInRunJob?: boolean;
  /** Run-job pattern: unlink victims with the non-deferred `drm_gpuva_unlink()` in `run_job`. */
  putInRunJob?: boolean;
  /** Unlink a REMAP victim before linking its pieces to the victim's vm_bo. */
  unlinkBeforeLink?: boolean;
  /** A synchronous bind runs inline instead of going through the queue (the first nouveau draft). */
  syncBypassesQueue?: boolean;
  /** Submit pattern: a failed multi-op ioctl does not unwind the ops it already applied. */
  noUnwind?: boolean;
  /** Submit pattern: jobs on different queues touching the same VA range are not ordered. */
  noImplicitDeps?: boolean;
}

export type VmBindPattern = 'submit' | 'run-job';

export interface VmBindOptions {
  pattern: VmBindPattern;
  /** The driver's VM lock (`gpu_vm->lock` / `op_lock`); created when omitted. */
  vmLock?: Mutex;
  /** Units per page-table page (default 4). */
  ptEntriesPerPage?: number;
  /**
   * Allocate what pure-unmap binds need with `__GFP_NOFAIL`, so unbinds never fail for resource
   * reasons (the async doc's rule). Default true. gpuvm's own op-list allocations stay GFP_KERNEL.
   */
  unbindNoFail?: boolean;
  /** Injects an unexpected error into a job's `run_job`: non-zero bans the VM (§5.2). */
  runJobError?: (job: BindJob) => number;
  bugs?: VmBindBugs;
}

/** One applied step of the submit pattern (what unwind and `run_job` need). */
type Applied =
  | { kind: 'map'; va: GpuVa; op: GpuvaOp & { op: 0 } }
  | { kind: 'remap'; victim: GpuVa; prev: GpuVa | null; next: GpuVa | null; op: OpRemap }
  | { kind: 'unmap'; victim: GpuVa };

/** A VM_BIND job: the ops of one ioctl and everything needed to run and free them. */
export class BindJob {
  /** The job's finished fence; out-syncobjs signal with it. */
  readonly done: DmaFence;
  /** Implicit dependencies the KMD adds (overlapping jobs on other queues). */
  deps: DmaFence[] = [];
  readonly prealloc: VmBindPrealloc;
  /** Submit pattern: op lists and the steps applied to the tree. */
  readonly lists: GpuvaOps[] = [];
  readonly applied: Applied[] = [];
  /** Vas removed from the tree; freed with the job. */
  readonly removed: GpuVa[] = [];
  /** Run-job pattern: the vm_bo of each map op (a reference held by the job). */
  readonly vmBos: (GpuVmBo | null)[] = [];
  /** Set when `run_job` started. */
  ran = false;

  constructor(
    readonly vmb: VmBind,
    readonly seq: number,
    readonly queue: BindQueue,
    readonly ops: readonly BindOp[],
    readonly inFences: readonly DmaFence[],
    readonly sync: boolean,
    readonly mem: KBuf,
  ) {
    this.done = new DmaFence(vmb.sim, `${queue.name}:job${seq}.done`);
    this.prealloc = new VmBindPrealloc(vmb.sim, vmb.ledger, vmb.vaMem);
  }

  /** The VA ranges this job touches. */
  ranges(): [number, number][] {
    return this.ops.map((o) => [o.addr, o.addr + o.range]);
  }
}

/**
 * A bind queue (bind context, Xe `exec_queue` of class VM_BIND): jobs run in submission order on
 * the queue's scheduler thread; separate queues are not ordered against each other.
 */
export class BindQueue {
  readonly jobs: Var<BindJob[]>;
  readonly closed: Var<boolean>;
  /** Counts pushes and the close: the scheduler sleeps on it (`drm_sched` wake-up). */
  readonly avail: Completion;
  /**
   * Submit pattern: held from the VA-tree update to the push, so jobs enter the queue in the order
   * they changed the tree (nouveau's `sched->mutex` around `submit()` and the push).
   */
  readonly submitLock: Mutex;
  readonly thread: Thread;
  /** Sequence numbers of this queue's jobs, in the order their fences signalled. */
  readonly completed: number[] = [];
  /** Sequence numbers of this queue's jobs, in submission (push) order. */
  readonly submitted: number[] = [];

  constructor(
    readonly vmb: VmBind,
    readonly name: string,
  ) {
    const sim = vmb.sim;
    this.jobs = new Var<BindJob[]>(sim, `${name}.jobs`, []);
    this.closed = new Var(sim, `${name}.closed`, false);
    this.avail = new Completion(sim, `${name}.avail`);
    this.submitLock = new Mutex(sim, `${name}->submit_lock`, { lockClass: 'vm_bind queue submit lock' });
    this.thread = sim.spawn(`${name} scheduler`, () => this.scheduler());
  }

  /** `drm_sched_entity_push_job()` + wake the scheduler. */
  *push(job: BindJob): Routine {
    yield* this.jobs.update((l) => {
      this.submitted.push(job.seq);
      return [...l, job];
    }, `push job${job.seq}`);
    yield* this.avail.complete('wake scheduler');
  }

  /** Stops the scheduler once its queue is empty. */
  *close(): Routine {
    yield* this.closed.write(true, 'close queue');
    yield* this.avail.complete('wake scheduler');
  }

  /** The scheduler thread: wait for dependencies outside the signalling section, then run the job. */
  private *scheduler(): Routine {
    for (;;) {
      yield* this.avail.wait('drm_sched: wait for a job');
      const list = yield* this.jobs.update((l) => l.slice(1), 'pop job');
      const job = list[0];
      if (!job) {
        if (yield* this.closed.read()) return;
        continue;
      }
      for (const f of [...job.inFences, ...job.deps]) yield* f.wait(`job${job.seq} dependency`);
      yield* this.vmb.execJob(job);
    }
  }
}

/** The asynchronous VM_BIND model over one VM. */
export class VmBind {
  readonly sim: Sim;
  readonly pattern: VmBindPattern;
  readonly vmLock: Mutex;
  readonly pt: DevicePageTable;
  /** Allocations of the model itself (jobs, vas, page-table pages). */
  readonly ledger = new AllocLedger();
  /** Memory of every va allocated by this model. */
  readonly vaMem = new Map<GpuVa, KBuf>();
  readonly queues: BindQueue[] = [];
  /** Jobs submitted and not yet freed (for implicit dependencies). */
  readonly inflight: BindJob[] = [];
  /** Set by an unexpected error in `run_job`; later ioctls return -ENOENT. */
  banned = false;
  readonly bugs: Readonly<VmBindBugs>;
  private seq = 0;

  constructor(
    readonly vm: GpuVm,
    readonly options: VmBindOptions,
  ) {
    const sim = vm.sim;
    this.sim = sim;
    this.pattern = options.pattern;
    this.bugs = options.bugs ?? {};
    this.vmLock = options.vmLock ?? new Mutex(sim, `${vm.name}->lock`, { lockClass: 'gpu_vm->lock' });
    this.pt = new DevicePageTable(sim, `${vm.name}.pt`, options.ptEntriesPerPage ?? 4);
    if (this.pattern === 'run-job' && !(vm.immediateMode && vm.features.deferredVmBo)) {
      throw new Error('the run-job pattern needs DRM_GPUVM_IMMEDIATE_MODE and features.deferredVmBo');
    }
    primeDmaResvLockdep(sim);
  }

  /** Creates a bind queue and its scheduler thread (call from a program's setup). */
  createQueue(name: string): BindQueue {
    const q = new BindQueue(this, name);
    this.queues.push(q);
    return q;
  }

  /**
   * Setup helper: an existing mapping before any thread runs: a va in the tree, linked to its
   * vm_bo (on the extobj list when external), and its PTEs written.
   */
  prepopulateNow(addr: number, range: number, obj: GemObject | null, offset = 0): GpuVa {
    const va = new GpuVa(addr, range, obj, offset);
    const ret = this.vm.insert(va);
    if (ret) throw new Error(`prepopulateNow: insert ${va.toString()} failed (${ret})`);
    if (obj) {
      const bo = gpuvmBoObtainNow(this.vm, obj);
      gpuvaLinkNow(va, bo);
      gpuvmBoExtobjAddNow(bo);
      gpuvmBoPutNow(bo);
    }
    this.pt.mapNow(addr, range, obj, offset);
    return va;
  }

  /** Closes every queue (after the submitters finished). */
  *closeQueues(): Routine {
    for (const q of this.queues) yield* q.close();
  }

  private gfpFor(ops: readonly BindOp[]): Gfp {
    return (this.options.unbindNoFail ?? true) && ops.every((o) => o.op === 'unmap')
      ? 'GFP_NOFAIL'
      : 'GFP_KERNEL';
  }

  /**
   * The VM_BIND ioctl: validates, prepares the job in the calling thread (allocation and locking
   * allowed), pushes it to `queue`, and for a synchronous bind waits for it, which means waiting
   * for every job queued before it on that queue. Errors are returned synchronously and leave the
   * VM as it was.
   */
  *bind(queue: BindQueue, ops: readonly BindOp[], opts: BindOptions = {}): Routine<BindResult> {
    if (this.banned) return { ret: -ENOENT, job: null };
    for (const o of ops) {
      if (!isU64(o.addr) || !isU64(o.range) || o.range === 0) return { ret: -EINVAL, job: null };
      if (opts.sync && opts.inFences?.length) return { ret: -EINVAL, job: null };
    }
    for (const c of opts.userFences ?? []) yield* c.wait('memory fence: waited synchronously in the ioctl');
    const mem = yield* this.ledger.alloc(this.sim, 256, this.gfpFor(ops), 'vm_bind job');
    if (!mem) return { ret: -ENOMEM, job: null };
    const job = new BindJob(this, ++this.seq, queue, [...ops], [...(opts.inFences ?? [])], !!opts.sync, mem);
    const serialize = this.pattern === 'submit';
    if (serialize) yield* queue.submitLock.lock('submit + push in tree order');
    const ret = this.pattern === 'submit' ? yield* this.submitApply(job) : yield* this.submitPrealloc(job);
    if (ret) {
      if (serialize) yield* queue.submitLock.unlock();
      yield* this.ledger.free(mem, 'vm_bind job');
      return { ret, job: null };
    }
    if (opts.sync && this.bugs.syncBypassesQueue) {
      if (serialize) yield* queue.submitLock.unlock();
      yield* this.execJob(job);
      return { ret: 0, job };
    }
    yield* queue.push(job);
    if (serialize) yield* queue.submitLock.unlock();
    if (opts.sync) yield* job.done.wait('synchronous VM_BIND waits for its job');
    return { ret: 0, job };
  }

  // ---- submit pattern (nouveau / xe) -----------------------------------------------------------

  /** Applies one gpuva op to the tree with pre-allocated vas and records it. */
  private applyNow(job: BindJob, op: GpuvaOp): void {
    switch (op.op) {
      case GpuvaOpType.MAP: {
        const va = job.prealloc.takeVa();
        gpuvaMap(this.vm, va, op.map);
        job.applied.push({ kind: 'map', va, op });
        return;
      }
      case GpuvaOpType.REMAP: {
        const prev = op.remap.prev ? job.prealloc.takeVa() : null;
        const next = op.remap.next ? job.prealloc.takeVa() : null;
        gpuvaRemap(prev, next, op.remap);
        job.applied.push({ kind: 'remap', victim: op.remap.unmap.va, prev, next, op: op.remap });
        return;
      }
      case GpuvaOpType.UNMAP:
        gpuvaUnmap(op.unmap);
        job.applied.push({ kind: 'unmap', victim: op.unmap.va });
        return;
      default:
        return;
    }
  }

  /** Reverse-order unwind of everything applied (nouveau's `nouveau_uvmm_sm_unwind()`). */
  private *unwind(job: BindJob): Routine {
    const vm = this.vm;
    for (let i = job.applied.length - 1; i >= 0; i--) {
      const a = job.applied[i]!;
      if (a.kind === 'map') {
        vm.remove(a.va);
        yield* this.freeVa(a.va);
      } else if (a.kind === 'remap') {
        for (const piece of [a.next, a.prev]) {
          if (!piece) continue;
          vm.remove(piece);
          yield* this.freeVa(piece);
        }
        if (vm.insert(a.victim))
          this.sim.fail('model-error', `unwind could not re-insert ${a.victim.toString()}`);
      } else if (vm.insert(a.victim)) {
        this.sim.fail('model-error', `unwind could not re-insert ${a.victim.toString()}`);
      }
    }
    job.applied.length = 0;
  }

  private *freeVa(va: GpuVa): Routine {
    const mem = this.vaMem.get(va);
    if (!mem) return;
    this.vaMem.delete(va);
    yield* this.ledger.free(mem, 'va');
  }

  private *submitApply(job: BindJob): Routine<number> {
    const vm = this.vm;
    const gfp = this.gfpFor(job.ops);
    yield* this.vmLock.lock('gpu_vm->lock');
    let ret = 0;
    for (const u of job.ops) {
      const ops =
        u.op === 'map'
          ? yield* gpuvmSmMapOpsCreate(vm, mapReq(u.addr, u.range, u.obj ?? null, u.offset ?? 0))
          : yield* gpuvmSmUnmapOpsCreate(vm, u.addr, u.range);
      if (isErr(ops)) {
        ret = ops;
        break;
      }
      job.lists.push(ops);
      let need = 0;
      for (const op of ops) {
        if (op.op === GpuvaOpType.MAP) need++;
        if (op.op === GpuvaOpType.REMAP) need += (op.remap.prev ? 1 : 0) + (op.remap.next ? 1 : 0);
      }
      if (!(yield* job.prealloc.reserveVas(need, gfp))) {
        ret = -ENOMEM;
        break;
      }
      if (u.op === 'map' && !(yield* job.prealloc.reservePtPages(this.pt, u.addr, u.range, gfp))) {
        ret = -ENOMEM;
        break;
      }
      for (const op of ops) this.applyNow(job, op);
    }
    const obtained: GpuVmBo[] = [];
    if (!ret) {
      const exec = new DrmExec(
        this.sim,
        DrmExecFlags.IGNORE_DUPLICATES | DrmExecFlags.INTERRUPTIBLE_WAIT,
        `vm_bind#${job.seq}`,
      );
      ret = yield* exec.untilAllLocked(function* () {
        let r = yield* gpuvmPrepareVm(vm, exec, 1);
        if (r) return r;
        for (const a of job.applied) {
          const obj = a.kind === 'map' ? a.va.gem.obj : a.victim.gem.obj;
          if (!obj) continue;
          r = yield* exec.prepareObj(obj, 1);
          if (r) return r;
        }
        return 0;
      });
      // vm_bos for the new mappings (may allocate): under each object's resv, held by the exec.
      for (const a of ret ? [] : job.applied) {
        if (a.kind !== 'map' || !a.va.gem.obj) continue;
        const bo = yield* gpuvmBoObtain(vm, a.va.gem.obj);
        if (isErr(bo)) {
          ret = bo;
          break;
        }
        obtained.push(bo);
        yield* gpuvmBoExtobjAdd(bo);
      }
      if (!ret) {
        // Link and unlink: nothing can fail from here on.
        let i = 0;
        for (const a of job.applied) {
          if (a.kind === 'map') {
            if (a.va.gem.obj) yield* gpuvaLink(a.va, obtained[i++]!);
          } else if (a.kind === 'remap') {
            const bo = a.victim.vmBo;
            if (this.bugs.unlinkBeforeLink) yield* gpuvaUnlink(a.victim);
            if (bo && a.prev) yield* gpuvaLink(a.prev, bo);
            if (bo && a.next) yield* gpuvaLink(a.next, bo);
            if (!this.bugs.unlinkBeforeLink) yield* gpuvaUnlink(a.victim);
            job.removed.push(a.victim);
          } else {
            yield* gpuvaUnlink(a.victim);
            job.removed.push(a.victim);
          }
        }
        // Implicit dependencies: earlier unfinished jobs touching the same VA range.
        if (!this.bugs.noImplicitDeps) job.deps = this.overlapping(job).map((j) => j.done);
        this.inflight.push(job);
        yield* gpuvmResvAddFence(vm, exec, job.done, 'BOOKKEEP', 'BOOKKEEP');
      }
      for (const bo of obtained) yield* gpuvmBoPut(bo);
      yield* exec.fini();
    }
    if (ret && !this.bugs.noUnwind) yield* this.unwind(job);
    yield* this.vmLock.unlock();
    if (ret) yield* this.releaseJob(job);
    return ret;
  }

  private overlapping(job: BindJob): BindJob[] {
    const mine = job.ranges();
    return this.inflight.filter(
      (j) => j.queue !== job.queue && j.ranges().some(([a, e]) => mine.some(([b, f]) => a < f && b < e)),
    );
  }

  // ---- run-job pattern (panthor / PowerVR, IMMEDIATE_MODE) ------------------------------------

  private *submitPrealloc(job: BindJob): Routine<number> {
    const vm = this.vm;
    for (const u of job.ops) if (!vm.rangeValid(u.addr, u.range)) return -EINVAL;
    const gfp = this.gfpFor(job.ops);
    let ret = 0;
    for (const u of job.ops) {
      if (!(yield* job.prealloc.reserveVas(vasWorstCase(u.op), gfp))) {
        ret = -ENOMEM;
        break;
      }
      if (u.op === 'map' && !(yield* job.prealloc.reservePtPages(this.pt, u.addr, u.range, gfp))) {
        ret = -ENOMEM;
        break;
      }
      let bo: GpuVmBo | null = null;
      if (u.op === 'map' && u.obj) {
        const pre = yield* gpuvmBoCreate(vm, u.obj);
        if (!pre) {
          ret = -ENOMEM;
          break;
        }
        bo = yield* gpuvmBoObtainPrealloc(pre);
      }
      job.vmBos.push(bo);
    }
    if (!ret) {
      const exec = new DrmExec(
        this.sim,
        DrmExecFlags.IGNORE_DUPLICATES | DrmExecFlags.INTERRUPTIBLE_WAIT,
        `vm_bind#${job.seq}`,
      );
      ret = yield* exec.untilAllLocked(function* () {
        // An unbind-only job reserves its one fence slot with the job's allocation mode (NOFAIL
        // by default) so that unbinds never fail for resource reasons.
        let r = gfp === 'GFP_NOFAIL' ? yield* exec.lockObj(vm.rObj) : yield* gpuvmPrepareVm(vm, exec, 1);
        if (!r && gfp === 'GFP_NOFAIL') r = yield* dmaResvReserveFences(vm.resv, 1, gfp);
        if (r) return r;
        for (const u of job.ops) {
          if (u.op !== 'map' || !u.obj) continue;
          r = yield* exec.prepareObj(u.obj, 1);
          if (r) return r;
        }
        return 0;
      });
      if (!ret) {
        for (const bo of job.vmBos) if (bo) yield* gpuvmBoExtobjAdd(bo);
        this.inflight.push(job);
        yield* gpuvmResvAddFence(vm, exec, job.done, 'BOOKKEEP', 'BOOKKEEP');
      }
      yield* exec.fini();
    }
    if (ret) yield* this.releaseJob(job);
    return ret;
  }

  /** The `sm_step_*` callbacks `run_job` uses in the run-job pattern (op `k` of the job). */
  private immediateSteps(job: BindJob, k: number): SmSteps<BindJob> {
    const vm = this.vm;
    const pt = this.pt;
    const bugs = this.bugs;
    const unlinkVictim = function* (victim: GpuVa): Routine {
      const obj = victim.gem.obj;
      if (!obj) return;
      if (bugs.putInRunJob) {
        yield* obj.gpuva.lock.lock();
        yield* gpuvaUnlink(victim);
        yield* obj.gpuva.lock.unlock();
      } else {
        yield* gpuvaUnlinkDefer(victim);
      }
    };
    return {
      *smStepMap(op) {
        if (op.op !== GpuvaOpType.MAP) return 0;
        const m = op.map;
        const va = job.prealloc.takeVa();
        gpuvaMap(vm, va, m);
        const obj = m.gem.obj;
        if (obj) {
          yield* obj.gpuva.lock.lock('link');
          yield* gpuvaLink(va, job.vmBos[k]!);
          yield* obj.gpuva.lock.unlock();
        }
        yield* pt.map(m.va.addr, m.va.range, obj, m.gem.offset, job.prealloc.takePtPage);
        return 0;
      },
      *smStepRemap(op) {
        if (op.op !== GpuvaOpType.REMAP) return 0;
        const r = op.remap;
        const victim = r.unmap.va;
        const prev = r.prev ? job.prealloc.takeVa() : null;
        const next = r.next ? job.prealloc.takeVa() : null;
        gpuvaRemap(prev, next, r);
        const obj = victim.gem.obj;
        if (obj) {
          const bo = victim.vmBo;
          if (bugs.unlinkBeforeLink) yield* unlinkVictim(victim);
          yield* obj.gpuva.lock.lock('link split pieces');
          if (prev && bo) yield* gpuvaLink(prev, bo);
          if (next && bo) yield* gpuvaLink(next, bo);
          yield* obj.gpuva.lock.unlock();
          if (!bugs.unlinkBeforeLink) yield* unlinkVictim(victim);
        }
        const hole = opRemapToUnmapRange(r);
        if (hole.range) yield* pt.unmap(hole.start, hole.range);
        job.removed.push(victim);
        return 0;
      },
      *smStepUnmap(op) {
        if (op.op !== GpuvaOpType.UNMAP) return 0;
        const victim = op.unmap.va;
        yield* unlinkVictim(victim);
        gpuvaUnmap(op.unmap);
        yield* pt.unmap(victim.va.addr, victim.va.range);
        job.removed.push(victim);
        return 0;
      },
    };
  }

  // ---- run_job and free_job -------------------------------------------------------------------

  /**
   * Runs a job on the calling thread (the queue's scheduler, or the ioctl for the
   * `syncBypassesQueue` bug): `run_job` inside `dma_fence_begin/end_signalling()`, the done fence
   * signalled, then `free_job`.
   */
  *execJob(job: BindJob): Routine {
    const sim = this.sim;
    yield* dmaFenceBeginSignalling(sim, `run_job(job${job.seq})`);
    job.ran = true;
    for (const f of job.inFences) {
      if (!f.signaled) sim.fail('vm-bind-order', `job${job.seq} ran before its in-fence ${f.name} signalled`);
    }
    const err = this.options.runJobError?.(job) ?? 0;
    if (err) {
      this.banned = true;
      job.done.error = err;
    } else {
      yield* this.runJob(job);
    }
    yield* job.done.signal(`job${job.seq} done`);
    job.queue.completed.push(job.seq);
    yield* dmaFenceEndSignalling(sim, `run_job(job${job.seq})`);
    yield* this.freeJob(job);
  }

  /** `run_job`: only pre-allocated memory, only signalling-safe locks. */
  private *runJob(job: BindJob): Routine {
    const sim = this.sim;
    const vm = this.vm;
    if (this.bugs.allocInRunJob) yield* kmalloc(sim, 96, 'GFP_KERNEL', 'va allocated in run_job');
    if (this.bugs.resvLockInRunJob) {
      yield* vm.resv.lock(null, 'run_job');
      yield* vm.resv.unlock();
    }
    if (this.pattern === 'submit') {
      if (this.bugs.lockTreeInRunJob) yield* this.vmLock.lock('run_job');
      for (const a of job.applied) {
        if (a.kind === 'map') {
          const m = a.op.map;
          yield* this.pt.map(m.va.addr, m.va.range, m.gem.obj, m.gem.offset, job.prealloc.takePtPage);
        } else if (a.kind === 'remap') {
          const hole = opRemapToUnmapRange(a.op);
          if (hole.range) yield* this.pt.unmap(hole.start, hole.range);
        } else {
          yield* this.pt.unmap(a.victim.va.addr, a.victim.va.range);
        }
      }
      if (this.bugs.lockTreeInRunJob) yield* this.vmLock.unlock();
      return;
    }
    yield* this.vmLock.lock('op_lock');
    for (const [k, u] of job.ops.entries()) {
      const steps = this.immediateSteps(job, k);
      const ret =
        u.op === 'map'
          ? yield* smMapWith(vm, steps, job, mapReq(u.addr, u.range, u.obj ?? null, u.offset ?? 0))
          : yield* smUnmapWith(vm, steps, job, u.addr, u.range);
      if (ret) {
        this.banned = true;
        job.done.error = ret;
        break;
      }
    }
    yield* this.vmLock.unlock();
  }

  /** `free_job`, outside the signalling section: free removed vas, op lists, unused pre-allocation. */
  private *freeJob(job: BindJob): Routine {
    for (const va of job.removed) yield* this.freeVa(va);
    job.removed.length = 0;
    yield* this.releaseJob(job);
    const i = this.inflight.indexOf(job);
    if (i >= 0) this.inflight.splice(i, 1);
    yield* this.ledger.free(job.mem, 'vm_bind job');
  }

  /** Frees op lists and unused pre-allocation, and drops the job's vm_bo references. */
  private *releaseJob(job: BindJob): Routine {
    for (const ops of job.lists) yield* gpuvaOpsFree(this.vm, ops);
    job.lists.length = 0;
    yield* job.prealloc.release();
    if (this.pattern === 'run-job') {
      for (const bo of job.vmBos) if (bo) yield* gpuvmBoPutDeferred(bo);
      job.vmBos.length = 0;
      yield* gpuvmBoDeferredCleanup(this.vm);
    }
  }

  // ---- checks ---------------------------------------------------------------------------------

  /** Every unit mapped by the tree has the matching PTE and nothing else is mapped; null if so. */
  pageTableMatchesTree(): string | null {
    const expected = new Map<number, string>();
    for (const e of this.vm.layout()) {
      for (let i = 0; i < e.range; i++) expected.set(e.addr + i, `${e.obj?.name ?? '-'}@${e.offset + i}`);
    }
    for (const [unit, want] of expected) {
      const pte = this.pt.entries.get(unit);
      const got = pte ? `${pte.obj?.name ?? '-'}@${pte.offset}` : 'none';
      if (got !== want) return `unit ${unit}: the tree maps ${want}, the device page table ${got}`;
    }
    for (const unit of this.pt.entries.keys()) {
      if (!expected.has(unit)) return `unit ${unit} is mapped by the device but by no va`;
    }
    return null;
  }

  /** Named checks for a program: `{ invariant: vmb.invariants(), properties: vmb.checks() }`. */
  checks(): Record<string, Check> {
    return {
      'device page table matches the VA tree': () => this.banned || (this.pageTableMatchesTree() ?? true),
      'each queue completes in submission order': () => {
        for (const q of this.queues) {
          const order = q.completed.join(',');
          if (order !== q.submitted.filter((s) => q.completed.includes(s)).join(',')) {
            return `${q.name} completed ${order}, submitted ${q.submitted.join(',')}`;
          }
        }
        return true;
      },
      'no job left': () => this.inflight.length === 0 || `${this.inflight.length} jobs not freed`,
      'nothing leaked': () => {
        let vasInTree = 0;
        for (const va of this.vm.vas()) if (this.vaMem.has(va)) vasInTree++;
        let pages = 0;
        for (const mem of this.pt.pages.values()) if (mem) pages++;
        const expected = vasInTree + pages;
        if (this.vaMem.size !== vasInTree)
          return `${this.vaMem.size - vasInTree} vas allocated but not in the tree`;
        if (this.ledger.live.size !== expected)
          return `model allocations: ${this.ledger.liveNames().join(', ')}`;
        let bos = 0;
        for (const bo of this.vm.vmBos) if (bo.mem) bos++;
        if (this.vm.ledger.live.size !== bos)
          return `gpuvm allocations: ${this.vm.ledger.liveNames().join(', ')}`;
        return true;
      },
    };
  }

  /** Invariants to check after every step. */
  invariants(): Record<string, Check> {
    return { 'gpuvm invariants (§7)': () => checkGpuvm(this.vm) ?? true };
  }
}

/**
 * Creates a VM set up the way each pattern's upstream users do, with its VM lock registered as
 * the VA-tree lock: `'submit'` like nouveau (no flags), `'run-job'` like panthor
 * (RESV_PROTECTED | IMMEDIATE_MODE, deferred vm_bo cleanup).
 */
export function createVmBind(
  sim: Sim,
  options: VmBindOptions & { vm?: Partial<GpuVmInit>; flags?: number },
): { vm: GpuVm; vmb: VmBind } {
  const vmLock =
    options.vmLock ?? new Mutex(sim, `${options.vm?.name ?? 'vm'}->lock`, { lockClass: 'gpu_vm->lock' });
  const immediate = options.pattern === 'run-job';
  const flags = options.flags ?? (immediate ? GpuvmFlags.RESV_PROTECTED | GpuvmFlags.IMMEDIATE_MODE : 0);
  const vm = new GpuVm(sim, {
    name: 'vm',
    rObj: options.vm?.rObj ?? new GemObject(sim, 'vm->r_obj'),
    start: 0,
    range: 64,
    ops: { vmFree: () => {} },
    ...options.vm,
    flags,
    vaLock: vmLock,
    features: {
      ...(options.vm?.features ?? {}),
      deferredVmBo: immediate || options.vm?.features?.deferredVmBo,
    },
  });
  return { vm, vmb: new VmBind(vm, { ...options, vmLock }) };
}
