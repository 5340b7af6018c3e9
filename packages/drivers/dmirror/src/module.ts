/**
 * Module load (`hmm_dmirror_init()` / `dmirror_device_init()`): the devices, each with its first
 * chunk of device memory, and opening a device file (`open("/dev/hmm_dmirror<n>")`).
 */
import type { Mm, System } from '@hmmkit/mm';
import type { Routine } from '@hmmkit/sim';
import { addChunk, DEVMEM_CHUNK_PAGES, DMIRROR_NDEVICES, DmirrorDevice, defaultZoneType } from './device.js';
import { type Dmirror, type DmirrorFileOptions, dmirrorFopsOpen } from './dmirror.js';
import { dmirrorDevmemFault } from './migrate.js';

/** `-ENODEV`: no such device (a coherent device without special-purpose memory). */
export const ENODEV = 19;

export interface DmirrorModuleOptions {
  /**
   * Whether the two device-coherent devices exist (the kernel needs the `spm_addr_dev0/1` module
   * parameters for them; the model has the memory). Default true.
   */
  coherent?: boolean;
  /** Pages per device-memory chunk (default {@link DEVMEM_CHUNK_PAGES}). */
  chunkPages?: number;
}

/** The loaded module: `dmirror_devices[]`. */
export class DmirrorModule {
  readonly devices: (DmirrorDevice | null)[] = [];

  constructor(
    readonly system: System,
    options: DmirrorModuleOptions = {},
  ) {
    const ndevices = options.coherent === false ? 2 : DMIRROR_NDEVICES;
    for (let id = 0; id < DMIRROR_NDEVICES; id++) {
      if (id >= ndevices) {
        this.devices.push(null);
        continue;
      }
      const device = new DmirrorDevice(system.sim, system, id, defaultZoneType(id), options.chunkPages);
      device.devmemFault = dmirrorDevmemFault;
      // models dmirror_device_init() -> dmirror_allocate_chunk(mdevice, NULL)
      addChunk(device);
      this.devices.push(device);
    }
  }

  /** `/dev/hmm_dmirror<unit>`, or null if there is no such device. */
  device(unit: number): DmirrorDevice | null {
    return this.devices[unit] ?? null;
  }
}

/** models hmm_dmirror_init(): loads the module on `system` (setup time, no thread). */
export function hmmDmirrorInit(system: System, options: DmirrorModuleOptions = {}): DmirrorModule {
  return new DmirrorModule(system, options);
}

/** `open("/dev/hmm_dmirror<unit>", O_RDWR)` by a task of `mm`: the open file, or -ENODEV / -errno. */
export function* dmirrorOpen(
  module: DmirrorModule,
  unit: number,
  mm: Mm,
  options: DmirrorFileOptions = {},
): Routine<Dmirror | number> {
  const device = module.device(unit);
  if (!device) return -ENODEV;
  return yield* dmirrorFopsOpen(device, mm, options);
}
