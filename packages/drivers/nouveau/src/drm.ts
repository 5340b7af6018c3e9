/**
 * The device and the client: `struct nouveau_drm` (one GPU, with its SVM fault buffer and its
 * device memory) and `struct nouveau_cli` (one open DRM file, with its mutex, its SVM VMM or its
 * VM_BIND uvmm, its scheduler and its channels). SVM and VM_BIND are alternative modes of one
 * client, as in the driver: SVM_INIT disables VM_INIT, a client with a uvmm cannot init SVM.
 */
import type { Mm, System } from '@hmmkit/mm';
import { Mutex, type Routine, type Sim } from '@hmmkit/sim';
import { NouveauDmem, nouveauDmemFini } from './dmem.js';
import { NvChannel, NvFaultBuffer } from './gpu.js';
import { NvifVmm } from './nvif.js';
import { type NouveauSched, nouveauSchedDestroy } from './sched.js';
import { type NouveauSvmm, nouveauSvmmFini, nouveauSvmmJoin, nouveauSvmmPart } from './svm.js';
import { nouveauSvmFini, nouveauSvmInit } from './svm-fault.js';
import { type NouveauUvmm, nouveauUvmmFini } from './uvmm.js';
import type { NouveauMutationName } from './variants.js';

/**
 * `HMM_RANGE_DEFAULT_TIMEOUT` is 1000 ms of jiffies. The model reads no clock: a fault loop makes
 * at most this many attempts (read_begin + hmm_range_fault or make_device_exclusive + read_retry)
 * before it gives up with -EBUSY, as the driver does when its deadline passes. A correct driver
 * needs one attempt per invalidation that races it (and one for its own COW break), so in a finite
 * scenario running out of attempts means the loop is not converging.
 */
export const NOUVEAU_FAULT_RETRIES = 16;

/** Knobs of the model (the kernel has none of them). */
export interface NouveauOptions {
  /** A bug variant (or a benign mutation), null for the driver as upstream has it. */
  variant?: NouveauMutationName | null;
  /** Attempts of a fault loop before -EBUSY (see {@link NOUVEAU_FAULT_RETRIES}). */
  faultRetries?: number;
  /**
   * What running out of attempts does: -EBUSY, as the kernel (default), or also a `livelock`
   * report (the conformance adapter: -EBUSY alone would make a loop that never converges look
   * like a cancelled fault).
   */
  onRetriesExhausted?: 'ebusy' | 'livelock';
  /**
   * Proposed fixes for the two code-reading observations of reference drivers.md §1.11, off by
   * default (upstream behaviour): reset `atomic` for every fault group of a batch; sort WRITE and
   * ATOMIC faults before READ/PREFETCH at the same address; or (the complete fix for the second)
   * test each following fault's own access in the duplicate skip.
   */
  proposedFixes?: { resetAtomicPerGroup?: boolean; sortWritesFirst?: boolean; skipChecksEachFault?: boolean };
  /** Entries of the replayable fault buffer (hardware ring). */
  faultBufferEntries?: number;
  /** Pages per device-memory chunk (DMEM_CHUNK_SIZE is 2 MiB: 512). */
  dmemChunkPages?: number;
  /** Name in traces. */
  name?: string;
}

/** Per-run name counters (names must replay identically). */
export function nouveauIds(sim: Sim): { drm: number; cli: number; svmm: number; job: number } {
  return sim.singleton('nouveau:ids', () => ({ drm: 0, cli: 0, svmm: 0, job: 0 }));
}

/** `struct nouveau_drm`: one GPU. */
export class NouveauDrm {
  /** `drm->dev`: the owner cookie of its pgmaps, device-exclusive entries and migrations. */
  readonly dev: { readonly name: string };
  readonly name: string;
  readonly variant: NouveauMutationName | null;
  readonly options: Readonly<Required<Omit<NouveauOptions, 'variant' | 'proposedFixes' | 'name'>>> & {
    proposedFixes: NonNullable<NouveauOptions['proposedFixes']>;
  };
  /** The replayable fault buffer and the channels' hardware state. */
  readonly hw: NvFaultBuffer;
  /** `drm->svm` (null on GPUs newer than Pascal, where SVM is refused). */
  svm: import('./svm.js').NouveauSvm | null = null;
  /** `drm->dmem`. */
  dmem: NouveauDmem | null = null;
  /** Fault loops that ran out of attempts (tests). */
  exhausted = 0;
  private chanSeq = 0;

  constructor(
    readonly sim: Sim,
    readonly system: System,
    options: NouveauOptions = {},
  ) {
    this.name = options.name ?? `nouveau${nouveauIds(sim).drm++}`;
    this.dev = { name: `${this.name}->dev` };
    this.variant = options.variant ?? null;
    this.options = {
      faultRetries: options.faultRetries ?? NOUVEAU_FAULT_RETRIES,
      onRetriesExhausted: options.onRetriesExhausted ?? 'ebusy',
      faultBufferEntries: options.faultBufferEntries ?? 16,
      dmemChunkPages: options.dmemChunkPages ?? 512,
      proposedFixes: options.proposedFixes ?? {},
    };
    this.hw = new NvFaultBuffer(sim, `${this.name}.fault_buffer`, this.options.faultBufferEntries);
  }

  /** A fresh channel instance pointer. */
  nextInst(): number {
    return 0x10000 * ++this.chanSeq;
  }

  toString(): string {
    return this.name;
  }
}

/**
 * Driver load (setup time, no thread): `nouveau_svm_init()` (fault buffer, fault work) and
 * `nouveau_dmem_init()` (no chunk yet: chunks are allocated on demand).
 */
export function nouveauDrmLoad(sim: Sim, system: System, options: NouveauOptions = {}): NouveauDrm {
  const drm = new NouveauDrm(sim, system, options);
  nouveauSvmInit(drm);
  drm.dmem = new NouveauDmem(drm);
  return drm;
}

/** Driver unload: `nouveau_svm_fini()` then `nouveau_dmem_fini()` (evicts every chunk). */
export function* nouveauDrmUnload(drm: NouveauDrm): Routine {
  yield* nouveauSvmFini(drm);
  yield* nouveauDmemFini(drm);
}

/** `struct nouveau_vmm`: the client's VMM (cli->svm for SVM, uvmm->vmm for VM_BIND). */
export class NouveauVmm {
  /** `vmm->cli`: set once the VMM is in use. */
  cli: NouveauCli | null = null;
  /** `vmm->vmm`: the nvif object (null before its constructor / after its destructor). */
  vmm: NvifVmm | null = null;
  /** `vmm->svmm`. */
  svmm: NouveauSvmm | null = null;
}

/** `struct nouveau_cli`: one open file of the device, bound to the process `mm`. */
export class NouveauCli {
  readonly name: string;
  /** `cli->mutex`. */
  readonly mutex: Mutex;
  /** `cli->svm`: the SVM-capable VMM, once SVM_INIT made one. */
  readonly svm = new NouveauVmm();
  /** `cli->uvmm`. */
  readonly uvmm: { ptr: NouveauUvmm | null; disabled: boolean } = { ptr: null, disabled: false };
  /** `cli->sched`: the VM_BIND scheduler entity. */
  sched: NouveauSched | null = null;
  /** The client's channels (abi16). */
  readonly channels: NvChannel[] = [];

  constructor(
    readonly drm: NouveauDrm,
    /** `current->mm` of the opener. */
    readonly mm: Mm,
  ) {
    this.name = `${drm.name}:cli${nouveauIds(drm.sim).cli++}`;
    this.mutex = new Mutex(drm.sim, `${this.name}->mutex`, { lockClass: 'nouveau_cli.mutex' });
  }

  toString(): string {
    return this.name;
  }
}

/**
 * models nouveau_abi16 channel creation for an SVM client: a new channel on `cli->svm`'s VMM,
 * linked to the svmm (`nouveau_svmm_join()`). Returns the channel or -errno.
 */
export function* nouveauChannelNew(cli: NouveauCli): Routine<NvChannel | number> {
  const drm = cli.drm;
  const vmm = cli.svm.vmm;
  if (!vmm) return -22;
  const inst = drm.nextInst();
  const chan = new NvChannel(inst, `${cli.name}:ch${inst.toString(16)}`, vmm);
  const ret = yield* nouveauSvmmJoin(cli.svm.svmm, inst);
  if (ret) return ret;
  drm.hw.channels.set(inst, chan);
  cli.channels.push(chan);
  return chan;
}

/** models nouveau_channel_del() for an SVM client: unlinks the instance (`nouveau_svmm_part()`). */
export function* nouveauChannelDel(cli: NouveauCli, chan: NvChannel): Routine {
  yield* nouveauSvmmPart(cli.svm.svmm, chan.inst);
  cli.drm.hw.channels.delete(chan.inst);
  const i = cli.channels.indexOf(chan);
  if (i >= 0) cli.channels.splice(i, 1);
}

/** A MANAGED VMM for SVM (`nvif_vmm_ctor(..., MANAGED, ...)` with fault replay enabled). */
export function newSvmVmm(cli: NouveauCli): NvifVmm {
  return new NvifVmm(cli.drm.sim, `${cli.name}->svm.vmm`, 'MANAGED');
}

/** models nouveau_vmm_fini(): the svmm first, then the nvif VMM (every PTE goes with it). */
export function* nouveauVmmFini(vmm: NouveauVmm): Routine {
  yield* nouveauSvmmFini(vmm);
  if (vmm.vmm) yield* vmm.vmm.dtor();
  vmm.vmm = null;
  vmm.cli = null;
}

/**
 * Closing the file: the channels go first (abi16 close, nouveau_svmm_part()), then
 * nouveau_cli_fini(): the scheduler (after its jobs), the uvmm, the SVM VMM.
 */
export function* nouveauCliFini(cli: NouveauCli): Routine {
  for (const chan of [...cli.channels]) yield* nouveauChannelDel(cli, chan);
  if (cli.sched) {
    yield* nouveauSchedDestroy(cli.sched);
    cli.sched = null;
  }
  if (cli.uvmm.ptr) yield* nouveauUvmmFini(cli.uvmm.ptr);
  yield* nouveauVmmFini(cli.svm);
}
