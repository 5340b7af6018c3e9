/**
 * nouveau_sched.c: the client's job queue on the DRM GPU scheduler. One scheduler entity per
 * client; `sched->mutex` is held from the job's `submit()` callback to the push, so jobs enter the
 * entity in the order they changed the VA space; the entity runs them in order, each job's
 * `run()` inside the fence-signalling critical section, its `free()` later, outside it. A
 * synchronous job is pushed like an asynchronous one and then waited for, so it waits behind
 * every job submitted before it.
 *
 * The model's scheduler thread is drm_sched's run-job and free-job work in one: pop the next job,
 * wait for its dependencies (in-fences), run it between dma_fence_begin/end_signalling(), signal
 * its finished fence, free it.
 */
import {
  Completion,
  DmaFence,
  dmaFenceBeginSignalling,
  dmaFenceEndSignalling,
  EINVAL,
  Mutex,
  type Routine,
  type Sim,
  Spinlock,
  type Thread,
  Var,
  WaitQueue,
} from '@hmmkit/sim';
import type { NouveauCli } from './drm.js';

/** `enum nouveau_job_state`. */
export type NouveauJobState =
  | 'UNINITIALIZED'
  | 'INITIALIZED'
  | 'SUBMIT_SUCCESS'
  | 'SUBMIT_FAILED'
  | 'RUN_SUCCESS'
  | 'RUN_FAILED';

/** `struct nouveau_job_ops`. */
export interface NouveauJobOps {
  /** Called under sched->mutex; must not fail once it returned 0. */
  submit(job: NouveauJob): Routine<number>;
  /** After the job was armed: add its fence to the resvs, unlock them. */
  armedSubmit(job: NouveauJob): Routine;
  /** In the fence-signalling path: no allocation, no resv lock, no fence wait. 0 or -errno. */
  run(job: NouveauJob): Routine<number>;
  /** Outside the signalling path, after the job's fence signalled. */
  free(job: NouveauJob): Routine;
}

/** `struct nouveau_job_args`. */
export interface NouveauJobArgs {
  sched: NouveauSched;
  cli: NouveauCli;
  sync: boolean;
  inSync: readonly DmaFence[];
  outSync: readonly DmaFence[];
  ops: NouveauJobOps;
  name: string;
}

/** `struct nouveau_job`. */
export class NouveauJob {
  readonly sched: NouveauSched;
  readonly cli: NouveauCli;
  readonly sync: boolean;
  readonly inSync: readonly DmaFence[];
  readonly outSync: readonly DmaFence[];
  readonly ops: NouveauJobOps;
  readonly name: string;
  state: NouveauJobState = 'UNINITIALIZED';
  /** `job->done_fence`: the scheduler fence's finished fence (set when armed). */
  doneFence: DmaFence | null = null;
  /** Submission order on the entity (set when armed). */
  seq = 0;
  /** drm_exec of the submit, unlocked by armed_submit (or on failure). */
  exec: import('@hmmkit/gpuva').DrmExec | null = null;

  constructor(args: NouveauJobArgs) {
    this.sched = args.sched;
    this.cli = args.cli;
    this.sync = args.sync;
    this.inSync = args.inSync;
    this.outSync = args.outSync;
    this.ops = args.ops;
    this.name = args.name;
  }
}

/** `struct nouveau_sched`: the entity, its submit mutex and its job list. */
export class NouveauSched {
  /** `sched->mutex`. */
  readonly mutex: Mutex;
  /** `sched->job.list`: submitted jobs not yet done, newest first, under `sched->job.list.lock`. */
  readonly jobList: NouveauJob[] = [];
  readonly jobListLock: Spinlock;
  /** `sched->job.wq`: woken when a job leaves the list. */
  readonly jobWq: WaitQueue;
  /** The entity's queue (drm_sched_entity_push_job). */
  readonly queue: Var<NouveauJob[]>;
  private readonly avail: Completion;
  private readonly stopping: Var<boolean>;
  private thread: Thread | null = null;
  private nextSeq = 1;
  /** Sequence numbers of jobs whose run() started, in order (model checker). */
  readonly ran: number[] = [];
  /** Called when the job list empties (model checker hook). */
  onIdle: (() => void) | null = null;

  constructor(
    readonly sim: Sim,
    readonly name: string,
  ) {
    this.mutex = new Mutex(sim, `${name}->mutex`, { lockClass: 'nouveau_sched.mutex' });
    this.jobListLock = new Spinlock(sim, `${name}->job.list.lock`, {
      lockClass: 'nouveau_sched.job.list.lock',
    });
    this.jobWq = new WaitQueue(sim, `${name}->job.wq`);
    this.queue = new Var<NouveauJob[]>(sim, `${name}.entity`, []);
    this.avail = new Completion(sim, `${name}.entity.avail`);
    this.stopping = new Var(sim, `${name}.stop`, false);
  }

  /** Starts drm_sched's work (the model's scheduler thread). */
  start(): void {
    const self = this;
    this.thread = this.sim.spawn(`${this.name} drm_sched`, function* () {
      for (;;) {
        yield* self.avail.wait('drm_sched: wait for a job');
        const q = yield* self.queue.update((l) => l.slice(1), 'drm_sched_entity_pop_job');
        const job = q[0];
        if (!job) {
          if (yield* self.stopping.read()) return;
          continue;
        }
        for (const f of job.inSync) yield* f.wait(`${job.name} dependency`);
        yield* nouveauSchedRunAndFree(job);
      }
    });
  }

  /** `drm_sched_entity_push_job()`. */
  *push(job: NouveauJob): Routine {
    yield* this.queue.update((l) => [...l, job], `drm_sched_entity_push_job(${job.name})`);
    yield* this.avail.complete('wake drm_sched');
  }

  /** Arms a job: its finished fence and its place in the entity's order. */
  arm(job: NouveauJob): void {
    job.seq = this.nextSeq++;
    job.doneFence = new DmaFence(this.sim, `${job.name}.finished`);
  }

  /** Model only: stops the scheduler thread once its queue is empty. */
  *stop(): Routine {
    if (!this.thread) return;
    yield* this.stopping.write(true);
    yield* this.avail.complete('stop drm_sched');
    yield* this.sim.join(this.thread);
    this.thread = null;
  }

  /** Jobs armed before `job` that have not run yet (the entity is FIFO). */
  overtaken(job: NouveauJob): number[] {
    const out: number[] = [];
    for (let s = 1; s < job.seq; s++) if (!this.ran.includes(s)) out.push(s);
    return out;
  }
}

/** models drm_sched's run_job (nouveau_sched_run_job → nouveau_job_run) and free_job. */
export function* nouveauSchedRunAndFree(job: NouveauJob): Routine {
  const sched = job.sched;
  const sim = sched.sim;
  yield* dmaFenceBeginSignalling(sim, `run_job(${job.name})`);
  // The entity runs jobs in the order they were armed (model checker of the FIFO guarantee).
  const earlier = sched.overtaken(job);
  if (earlier.length) {
    sim.fail(
      'vm-bind-order',
      `${job.name} (#${job.seq}) runs before job(s) #${earlier.join(', #')} submitted earlier on ${sched.name}`,
    );
  }
  sched.ran.push(job.seq);
  const ret = yield* job.ops.run(job);
  job.state = ret ? 'RUN_FAILED' : 'RUN_SUCCESS';
  if (ret) job.doneFence!.error = ret;
  yield* job.doneFence!.signal(`${job.name} finished`);
  for (const f of job.outSync) yield* f.signal(`${job.name} out-sync`);
  yield* dmaFenceEndSignalling(sim, `run_job(${job.name})`);
  // nouveau_sched_free_job() → nouveau_job_fini() → ops->free()
  yield* job.ops.free(job);
}

/** models nouveau_job_init(): a sync job must not carry syncobjs. */
export function nouveauJobInit(job: NouveauJob): number {
  if (job.sync && (job.inSync.length || job.outSync.length)) return -EINVAL;
  job.state = 'INITIALIZED';
  return 0;
}

/** models nouveau_job_done(): the job leaves the list; waiters on the list are woken. */
export function* nouveauJobDone(job: NouveauJob): Routine {
  const sched = job.sched;
  yield* sched.jobListLock.lock('spin_lock(&sched->job.list.lock)');
  const i = sched.jobList.indexOf(job);
  if (i >= 0) sched.jobList.splice(i, 1);
  const idle = sched.jobList.length === 0;
  yield* sched.jobListLock.unlock('spin_unlock(&sched->job.list.lock)');
  yield* sched.jobWq.wakeUpAll('wake_up(&sched->job.wq)');
  if (idle) sched.onIdle?.();
}

/**
 * models nouveau_job_submit(): under sched->mutex, `submit()` (which must not fail afterwards),
 * the job onto the list, arm, `armed_submit()`, push; then a sync job waits for its fence.
 */
export function* nouveauJobSubmit(job: NouveauJob): Routine<number> {
  const sched = job.sched;
  // nouveau_job_add_deps() / nouveau_job_fence_attach_prepare(): the syncobjs are the fences here.
  yield* sched.mutex.lock('mutex_lock(&sched->mutex)');
  const ret = yield* job.ops.submit(job);
  if (ret) {
    yield* sched.mutex.unlock('mutex_unlock(&sched->mutex)');
    job.state = 'SUBMIT_FAILED';
    return ret;
  }
  yield* sched.jobListLock.lock('spin_lock(&sched->job.list.lock)');
  sched.jobList.unshift(job);
  yield* sched.jobListLock.unlock('spin_unlock(&sched->job.list.lock)');
  sched.arm(job);
  const done = job.sync ? job.doneFence : null;
  yield* job.ops.armedSubmit(job);
  job.state = 'SUBMIT_SUCCESS';
  if (job.sync && job.cli.drm.variant === 'sync-bind-bypasses-queue') {
    // The mistake: a sync job is run inline by the ioctl instead of through the entity, so it
    // does not wait behind the jobs submitted before it.
    yield* sched.mutex.unlock('mutex_unlock(&sched->mutex)');
    yield* nouveauSchedRunAndFree(job);
    return 0;
  }
  yield* sched.push(job);
  yield* sched.mutex.unlock('mutex_unlock(&sched->mutex)');
  if (done) yield* done.wait('dma_fence_wait(done_fence)');
  return 0;
}

/** models nouveau_sched_destroy(): waits until every job left the list, then tears the entity down. */
export function* nouveauSchedDestroy(sched: NouveauSched): Routine {
  yield* sched.jobWq.waitEvent(() => sched.jobList.length === 0, 'wait_event(sched->job.wq, list_empty)');
  yield* sched.stop();
}

/** models nouveau_sched_create(): the entity and its scheduler (setup-less: may run on a thread). */
export function nouveauSchedCreate(sim: Sim, name: string): NouveauSched {
  const sched = new NouveauSched(sim, name);
  sched.start();
  return sched;
}
