/**
 * The conformance-kit adapter: `dmirrorDriver`, a `DriverModel` (packages/conformance/src/
 * contract.ts) built from the dmirror model. One instance is one open file of one device, bound to
 * the scenario's process. The kit types are imported as types only: the driver has no runtime
 * dependency on the kit.
 */
import type {
  AccessResult,
  DeviceMapping,
  DriverContext,
  DriverInstance,
  DriverModel,
  Intent,
} from '@hmmkit/conformance';
import { PAGE_SIZE, type PageValue } from '@hmmkit/mm';
import { EBUSY, EINVAL, type Routine } from '@hmmkit/sim';
import { deviceWritePage } from './access.js';
import { dmirrorDeviceRemoveChunks } from './devmem.js';
import { type Dmirror, dmirrorFopsOpen, dmirrorFopsRelease } from './dmirror.js';
import { dmirrorExclusive } from './exclusive.js';
import { dmirrorMigrateToDevice, dmirrorMigrateToSystem } from './migrate.js';
import { DmirrorModule } from './module.js';
import { DPT_XA_TAG_ATOMIC, DPT_XA_TAG_WRITE } from './pt.js';
import { dmirrorRead, dmirrorWrite } from './read-write.js';
import type { HmmDmirrorCmd } from './uapi.js';
import { type DmirrorVariantName, dmirrorVariant, dmirrorVariants } from './variants.js';

/** The module of a run (all instances of one run share the devices, as one loaded module). */
function moduleOf(ctx: DriverContext): DmirrorModule {
  return ctx.sim.singleton(`dmirror:module`, () => new DmirrorModule(ctx.system));
}

function cmdFor(addr: number, npages: number, ptr: PageValue[] = new Array(npages).fill(0)): HmmDmirrorCmd {
  return { addr, ptr, npages, cpages: 0, faults: 0 };
}

/** The device-side half of an atomic access: EXCLUSIVE, then a read-modify-write through the atomic entry. */
function* atomicAccess(dmirror: Dmirror, addr: number, value: PageValue | undefined): Routine<AccessResult> {
  const cmd = cmdFor(addr, 1);
  const ret = yield* dmirrorExclusive(dmirror, cmd);
  if (ret) return { ret };
  const old = (cmd.ptr as PageValue[])[0]!;
  if (value === undefined) return { ret: 0, value: old };
  yield* dmirror.mutex.lock('mutex_lock');
  const entry = yield* dmirror.pt.load(addr / PAGE_SIZE, 'atomic access');
  let r = 0;
  if (entry && entry.tag === DPT_XA_TAG_ATOMIC) {
    yield* deviceWritePage(dmirror.mm.system.mem, entry, value, dmirror.name, addr);
  } else {
    r = -EBUSY; // the CPU took the page back in between
  }
  yield* dmirror.mutex.unlock('mutex_unlock');
  return r ? { ret: r } : { ret: 0, value: old };
}

function createInstance(ctx: DriverContext): DriverInstance {
  // A kit variant, or a benign mutation (accepted too, so the kit can be pointed at it by name).
  const variant = ctx.variant === null ? null : (dmirrorVariant(ctx.variant).name as DmirrorVariantName);
  const module = moduleOf(ctx);
  // Instances 0 and 1 use the device-private devices, 2 and 3 the device-coherent ones.
  const device = module.device(ctx.index % 4)!;
  let dmirror: Dmirror | null = null;
  return {
    *open() {
      const r = yield* dmirrorFopsOpen(device, ctx.mm, { variant });
      if (typeof r === 'number') return r;
      dmirror = r;
      return 0;
    },
    *access(addr: number, intent: Intent, value?: PageValue) {
      if (!dmirror) return { ret: -EINVAL };
      if (intent === 'atomic') return yield* atomicAccess(dmirror, addr, value);
      if (intent === 'write') {
        const cmd = cmdFor(addr, 1, [value ?? 0]);
        return { ret: yield* dmirrorWrite(dmirror, cmd) };
      }
      const cmd = cmdFor(addr, 1);
      const ret = yield* dmirrorRead(dmirror, cmd);
      return ret ? { ret } : { ret, value: (cmd.ptr as PageValue[])[0]! };
    },
    *migrateToDevice(addr: number, npages: number) {
      if (!dmirror) return -EINVAL;
      return yield* dmirrorMigrateToDevice(dmirror, cmdFor(addr, npages));
    },
    *migrateToSystem(addr: number, npages: number) {
      if (!dmirror) return -EINVAL;
      return yield* dmirrorMigrateToSystem(dmirror, cmdFor(addr, npages));
    },
    *close() {
      if (!dmirror) return;
      // HMM_DMIRROR_RELEASE (evict device memory), then dmirror_fops_release().
      yield* dmirrorDeviceRemoveChunks(dmirror.device);
      yield* dmirrorFopsRelease(dmirror);
    },
    mappings(): Iterable<DeviceMapping> {
      const out: DeviceMapping[] = [];
      // A file being released is no longer used by the device.
      if (!dmirror || dmirror.releasing) return out;
      for (const [vpfn, e] of dmirror.pt.entries) {
        out.push({
          addr: vpfn * PAGE_SIZE,
          frame: e.frame,
          write: e.tag === DPT_XA_TAG_WRITE,
          atomic: e.tag === DPT_XA_TAG_ATOMIC,
        });
      }
      return out;
    },
    liveSubscriptions() {
      return dmirror?.subscribed ? 1 : 0;
    },
  };
}

/** The dmirror driver model for the conformance kit. */
export const dmirrorDriver: DriverModel = {
  name: 'dmirror',
  description:
    "Model of the kernel's HMM test driver (lib/test_hmm.c): mirrors a process through hmm_range_fault() and an interval notifier, atomics through make_device_exclusive(), migration to device-private or device-coherent memory",
  supports: { mirror: true, atomics: true, migration: true, nonBlocking: 'trylock' },
  variants: dmirrorVariants,
  create: createInstance,
};
