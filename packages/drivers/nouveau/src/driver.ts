/**
 * The conformance-kit adapter: `nouveauDriver`, a `DriverModel` (packages/conformance/src/
 * contract.ts). One instance is one GPU (a `nouveau_drm`) with one client (`nouveau_cli`) opened by
 * the scenario's process. The client picks its mode on first use, as a real client does: a device
 * access or a migration makes it an SVM client (SVM_INIT + a channel), a bind a VM_BIND client
 * (VM_INIT + its scheduler). The kit's types are imported as types only.
 */
import type {
  AccessResult,
  DeviceMapping,
  DriverContext,
  DriverInstance,
  DriverModel,
  Intent,
} from '@hmmkit/conformance';
import { mmgetNotZero, mmput, PAGE_SIZE, type PageValue } from '@hmmkit/mm';
import { EINVAL, type Routine } from '@hmmkit/sim';
import {
  NouveauCli,
  type NouveauDrm,
  type NouveauOptions,
  nouveauChannelDel,
  nouveauChannelNew,
  nouveauCliFini,
  nouveauDrmLoad,
  nouveauDrmUnload,
} from './drm.js';
import {
  FAULT_ACCESS_ATOMIC,
  FAULT_ACCESS_READ,
  FAULT_ACCESS_WRITE,
  type NvChannel,
  nvGpuAccess,
} from './gpu.js';
import { nouveauSvmmBind, nouveauSvmmInit } from './svm.js';
import { nouveauUvmmBindBo, nouveauUvmmUnbindRange, nouveauUvmmVmInit } from './uvmm-ioctl.js';
import { nouveauMutation, nouveauVariants } from './variants.js';

/**
 * The unmanaged window the adapter's SVM_INIT passes: just below the kit's mapping (which starts
 * at 2 MiB), so whole-address-space invalidations exercise the split around it.
 */
/** `ESRCH`: the calling process is gone. */
const ESRCH = 3;

export const KIT_UNMANAGED = { addr: 0x100000, size: 0x100000 } as const;

/** A client of one GPU, driven by the kit (exported for tests that want the same wiring). */
export class NouveauKitInstance implements DriverInstance {
  readonly drm: NouveauDrm;
  readonly cli: NouveauCli;
  private mode: 'none' | 'svm' | 'vm_bind' = 'none';
  private chan: NvChannel | null = null;
  private closed = false;

  constructor(ctx: DriverContext, options: NouveauOptions = {}) {
    const variant = ctx.variant === null ? null : nouveauMutation(ctx.variant);
    this.drm = nouveauDrmLoad(ctx.sim, ctx.system, {
      variant,
      onRetriesExhausted: 'livelock',
      name: `nouveau${ctx.index}`,
      ...options,
    });
    this.cli = new NouveauCli(this.drm, ctx.mm);
  }

  /** `pgmap->owner` and the device-exclusive owner: `drm->dev`. */
  get owner(): unknown {
    return this.drm.dev;
  }

  // biome-ignore lint/correctness/useYield: the client is opened lazily, on first use
  *open(): Routine<number> {
    return 0;
  }

  /** SVM_INIT on first use, and a live channel (a cancelled fault kills the channel: make a new one). */
  private *svm(): Routine<number> {
    if (this.mode === 'vm_bind') return -EINVAL;
    if (this.mode === 'none') {
      // The ioctl comes from the process itself: once it has exited, nothing can call it.
      const mm = this.cli.mm;
      if (!(yield* mmgetNotZero(mm))) return -ESRCH;
      const ret = yield* nouveauSvmmInit(this.cli, KIT_UNMANAGED.addr, KIT_UNMANAGED.size);
      yield* mmput(mm);
      if (ret) return ret;
      this.mode = 'svm';
    }
    if (this.chan?.killed) {
      yield* nouveauChannelDel(this.cli, this.chan);
      this.chan = null;
    }
    if (!this.chan) {
      const c = yield* nouveauChannelNew(this.cli);
      if (typeof c === 'number') return c;
      this.chan = c;
    }
    return 0;
  }

  *access(addr: number, intent: Intent, value?: PageValue): Routine<AccessResult> {
    const ret = yield* this.svm();
    if (ret) return { ret };
    const code =
      intent === 'read' ? FAULT_ACCESS_READ : intent === 'write' ? FAULT_ACCESS_WRITE : FAULT_ACCESS_ATOMIC;
    const r = yield* nvGpuAccess(this.drm.system.mem, this.drm.hw, this.chan!, addr, code, value);
    if (r.ret) return { ret: r.ret };
    return intent === 'write' ? { ret: 0 } : { ret: 0, value: r.value! };
  }

  /** DRM_NOUVEAU_SVM_BIND with COMMAND__MIGRATE, TARGET__GPU_VRAM. */
  *migrateToDevice(addr: number, npages: number): Routine<number> {
    const ret = yield* this.svm();
    if (ret) return ret;
    return yield* nouveauSvmmBind(this.cli, addr, addr + npages * PAGE_SIZE);
  }

  /**
   * SVM_BIND refuses every target but GPU VRAM (a FIXME upstream): pages come back to system
   * memory only on a CPU fault or when the driver unloads.
   */
  // biome-ignore lint/correctness/useYield: refused before any work, as upstream
  *migrateToSystem(_addr: number, _npages: number): Routine<number> {
    return -EINVAL;
  }

  /** VM_BIND (sync) of a new BO at `[addr, addr + len)` of the GPU VA space. */
  *bind(addr: number, len: number): Routine<number> {
    if (this.mode === 'svm') return -EINVAL;
    if (this.mode === 'none') {
      const ret = yield* nouveauUvmmVmInit(this.cli, 0, 0);
      if (ret) return ret;
      this.mode = 'vm_bind';
    }
    return yield* nouveauUvmmBindBo(this.cli, addr, len);
  }

  /** VM_BIND (sync) UNMAP of `[addr, addr + len)`. */
  *unbind(addr: number, len: number): Routine<number> {
    if (this.mode !== 'vm_bind') return -EINVAL;
    return yield* nouveauUvmmUnbindRange(this.cli, addr, len);
  }

  *close(): Routine<void> {
    if (this.closed) return;
    this.closed = true;
    yield* nouveauCliFini(this.cli);
    yield* nouveauDrmUnload(this.drm);
  }

  /** The SVM VMM's entries (VM_BIND mappings map BOs, not the process, and are not listed). */
  mappings(): DeviceMapping[] {
    const out: DeviceMapping[] = [];
    const vmm = this.cli.svm.vmm;
    if (!vmm) return out;
    for (const [vpn, pte] of vmm.ptes) {
      if (pte.kind === 'pfn')
        out.push({ addr: vpn * PAGE_SIZE, frame: pte.frame, write: pte.write, atomic: pte.atomic });
    }
    return out;
  }

  liveSubscriptions(): number {
    let n = 0;
    const svmm = this.cli.svm.svmm;
    if (svmm?.notifier.hashed) n++;
    return n;
  }
}

export const nouveauDriver: DriverModel = {
  name: 'nouveau',
  description:
    'nouveau (Pascal): SVM with replayable GPU faults (mm-wide notifier + per-fault interval notifier, device-exclusive atomics), device-private VRAM (dmem) and asynchronous VM_BIND on drm_gpuvm',
  supports: {
    mirror: true,
    atomics: true,
    migration: true,
    userptr: false,
    vmBind: 'async',
    odp: false,
    nonBlocking: 'refuse',
  },
  variants: nouveauVariants,
  create(ctx: DriverContext): DriverInstance {
    return new NouveauKitInstance(ctx);
  },
};

export default nouveauDriver;
