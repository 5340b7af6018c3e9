/**
 * Per-device state and device memory, after `struct dmirror_device` and `struct dmirror_chunk` of
 * lib/test_hmm.c: the memory type of the device, its chunks of ZONE_DEVICE pages (each with a page
 * map whose owner cookie is the device), the page allocator over them and its counters.
 *
 * Model mapping:
 * - A chunk is `DEVMEM_CHUNK_SIZE` in the kernel (256 MiB); here `chunkPages` pages (default
 *   {@link DEVMEM_CHUNK_PAGES}), added on demand like `dmirror_allocate_chunk()`.
 * - The kernel backs each device-private page with a system page (`zone_device_data`) because the
 *   test device has no memory of its own. The model's device folios carry their own contents, so
 *   the backing page is the device page itself (`BACKING_PAGE(page)` is `page` for both types).
 *   `zone_device_data` keeps the other half of its job: it names the open file that migrated the
 *   page (`rpage->zone_device_data = dmirror`), which `migrate_to_ram` needs.
 * - The free-page list (`mdevice->free_pages`) is the page map's free pool in `PhysMem`; `calloc`
 *   and `cfree` count allocations and frees as the kernel does.
 */
import type { Folio, Pgmap, PgmapType, System, VmFault } from '@hmmkit/mm';
import { Mutex, type Routine, type Sim, Spinlock } from '@hmmkit/sim';
import type { Dmirror } from './dmirror.js';
import { HMM_DMIRROR_MEMORY_DEVICE_COHERENT, HMM_DMIRROR_MEMORY_DEVICE_PRIVATE } from './uapi.js';

/** Pages per device-memory chunk in the model (the kernel's chunk is 256 MiB). */
export const DEVMEM_CHUNK_PAGES = 1024;
/** `DMIRROR_NDEVICES`: two device-private and two device-coherent devices. */
export const DMIRROR_NDEVICES = 4;

/** `struct dmirror_chunk`: one ZONE_DEVICE range. */
export interface DmirrorChunk {
  readonly pgmap: Pgmap;
  /** Set by RELEASE: pages freed from now on do not go back to the allocator. */
  remove: boolean;
}

/**
 * `struct dmirror_device`. The device object is also the owner cookie of its page maps
 * (`pagemap.owner = mdevice`) and the `dev_private_owner` / `pgmap_owner` of its requests.
 */
export class DmirrorDevice {
  /** `devmem_lock`: protects the chunk array. */
  readonly devmemLock: Mutex;
  /** `lock`: protects the allocator and its counters. */
  readonly lock: Spinlock;
  /** `devmem_chunks[0 .. devmem_count)`. */
  chunks: DmirrorChunk[] = [];
  /** Device pages handed out (`calloc`). */
  calloc = 0;
  /** Device pages freed (`cfree`). */
  cfree = 0;
  /** `zone_device_data` of device pages: the open file that migrated the page there. */
  readonly zoneDeviceData = new Map<Folio, Dmirror>();
  readonly name: string;
  /** `dmirror_devmem_ops.migrate_to_ram` (wired by the module to `dmirror_devmem_fault()`). */
  devmemFault: ((device: DmirrorDevice, vmf: VmFault) => Routine<number>) | null = null;

  constructor(
    readonly sim: Sim,
    readonly system: System,
    /** Minor number: `/dev/hmm_dmirror<index>`. */
    readonly index: number,
    /** `zone_device_type`: HMM_DMIRROR_MEMORY_DEVICE_PRIVATE or _COHERENT. */
    readonly zoneDeviceType: number,
    readonly chunkPages: number = DEVMEM_CHUNK_PAGES,
  ) {
    this.name = `hmm_dmirror${index}`;
    this.devmemLock = new Mutex(sim, `${this.name}->devmem_lock`, {
      lockClass: 'dmirror_device.devmem_lock',
    });
    this.lock = new Spinlock(sim, `${this.name}->lock`, { lockClass: 'dmirror_device.lock' });
  }

  /** `dmirror_is_private_zone()`. */
  get isPrivate(): boolean {
    return this.zoneDeviceType === HMM_DMIRROR_MEMORY_DEVICE_PRIVATE;
  }

  /** The ZONE_DEVICE type of the device's page maps. */
  get pgmapType(): PgmapType {
    return this.isPrivate ? 'device-private' : 'device-coherent';
  }

  /** Whether `folio` is device memory of this device (`dmirror_page_to_device(page) == mdevice`). */
  owns(folio: Folio): boolean {
    return folio.pgmap?.owner === this;
  }

  toString(): string {
    return this.name;
  }
}

/**
 * The page map of a new chunk, owned by `device` (`memremap_pages()` of
 * `dmirror_allocate_chunk()`): a plain function, run inside a step on the physical memory.
 */
export function addChunk(device: DmirrorDevice): DmirrorChunk {
  const mem = device.system.mem;
  const pgmap = mem.addPgmap(
    device.pgmapType,
    device,
    device.chunkPages,
    {
      migrateToRam: (vmf) => device.devmemFault!(device, vmf),
      // models dmirror_devmem_free(): the page goes back to the allocator (the pool) unless its
      // chunk is being removed; the backing page is the page itself.
      pageFree: (folio) => {
        device.cfree++;
        device.zoneDeviceData.delete(folio);
      },
    },
    `${device.name} chunk${device.chunks.length}`,
  );
  const chunk: DmirrorChunk = { pgmap, remove: false };
  device.chunks.push(chunk);
  return chunk;
}

/** The memory type constant of a device index in the default module layout. */
export function defaultZoneType(index: number): number {
  return index < 2 ? HMM_DMIRROR_MEMORY_DEVICE_PRIVATE : HMM_DMIRROR_MEMORY_DEVICE_COHERENT;
}
