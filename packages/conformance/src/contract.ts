/**
 * The contract between the conformance kit and a driver model. A driver package exports a
 * {@link DriverModel}; the kit builds a fresh instance inside every explored run, starts the
 * device-side threads a scenario asks for, and reads the device page table through
 * {@link DriverInstance.mappings} to check it against the CPU's.
 *
 * Bump {@link KIT_VERSION} (and INTERPRETING.md) whenever the meaning of anything here changes.
 */
import type { FrameRef, Mm, PageValue, System } from '@hmmkit/mm';
import type { Routine, Sim, ViolationKind } from '@hmmkit/sim';

/** Version of the contract and of what each checker means. */
export const KIT_VERSION = 1;

/** What a driver can do; scenarios declare what they need and are skipped otherwise. */
export interface Capabilities {
  /** Mirrors CPU page tables on device faults (`hmm_range_fault` with an interval notifier). */
  mirror: boolean;
  /** Atomic device access through device-exclusive entries (`make_device_exclusive`). */
  atomics: boolean;
  /** Migrates pages to its device memory and back (`migrate_vma_*`, `migrate_to_ram`). */
  migration: boolean;
  /** Pins or mirrors a user range registered up front (userptr). */
  userptr: boolean;
  /** GPU VA binding: synchronous, through an asynchronous queue, or none. */
  vmBind: false | 'sync' | 'async';
  /** RDMA on-demand-paging style registration of a range (an ODP memory region). */
  odp: boolean;
  /**
   * What the invalidate callback does on a non-blockable range (OOM reaper): `trylock` and
   * return false when contended, `refuse` every non-blockable range, or `blocks` (a bug the kit
   * reports as blocking in a non-blockable section).
   */
  nonBlocking: 'trylock' | 'refuse' | 'blocks';
}

/** Capability names, for `requires` lists. */
export type Capability = keyof Capabilities;

/** What a device access wants. */
export type Intent = 'read' | 'write' | 'atomic';

/** Result of a device access. */
export interface AccessResult {
  /** 0, or a negative errno (`-EFAULT` for an address the CPU cannot access, `-EBUSY` ...). */
  ret: number;
  /** The value read (reads and atomics), through the device's own mapping. */
  value?: PageValue;
}

/** One device page-table entry as the checkers see it. */
export interface DeviceMapping {
  /** Page-aligned virtual address. */
  addr: number;
  /** The frame the device entry points at (system or device memory). */
  frame: FrameRef;
  write: boolean;
  /** Mapped for atomic access through a device-exclusive entry. */
  atomic: boolean;
}

/** Handed to {@link DriverModel.create}. */
export interface DriverContext {
  sim: Sim;
  system: System;
  /** The process whose address space the device mirrors or binds. */
  mm: Mm;
  /** Name of the variant to build, or null for the correct driver. */
  variant: string | null;
  /** Index of this device when a scenario creates several (0, 1, ...). */
  index: number;
}

/** One driver instance: the device-side threads the kit can start, and read-only views. */
export interface DriverInstance {
  /** Opens the device for `mm`: registers notifiers, allocates what it needs. 0 or -errno. */
  open(): Routine<number>;
  /** Device access at `addr`: fault in as needed, then read or write through the device mapping. */
  access(addr: number, intent: Intent, value?: PageValue): Routine<AccessResult>;
  /** Migrates `npages` pages at `addr` to device memory. 0 or -errno. */
  migrateToDevice?(addr: number, npages: number): Routine<number>;
  /** Migrates `npages` pages at `addr` back to system memory. 0 or -errno. */
  migrateToSystem?(addr: number, npages: number): Routine<number>;
  /** Registers a range (userptr, ODP memory region). 0 or -errno. */
  registerRange?(addr: number, len: number): Routine<number>;
  /** Unregisters a range registered with {@link registerRange}. */
  unregisterRange?(addr: number, len: number): Routine<number>;
  /** Binds `[addr, addr+len)` of the GPU VA space to the CPU range at the same address. */
  bind?(addr: number, len: number): Routine<number>;
  /** Unbinds a range bound with {@link bind}. */
  unbind?(addr: number, len: number): Routine<number>;
  /** Tears the device down: unregisters notifiers, evicts device memory, frees everything. */
  close(): Routine<void>;
  /** The device page table now (no steps; called by checkers between steps). */
  mappings(): Iterable<DeviceMapping>;
  /** Notifier subscriptions this instance still holds (0 after a clean close). */
  liveSubscriptions(): number;
  /**
   * The cookie this instance passes as `pgmap->owner` and as the owner of
   * `make_device_exclusive()` / `migrate_vma` ranges. The mirror invariant accepts a
   * device-private or device-exclusive CPU entry only when its owner is this value; without it
   * the kit can only check that the frames match, so drivers with `migration` or `atomics`
   * should set it. (Added after KIT_VERSION 1 was drafted; additive and optional.)
   */
  readonly owner?: unknown;
}

/** A named version of the driver with one known bug. */
export interface DriverVariant {
  name: string;
  /** One line: the mistake it models. */
  description: string;
  /** Where the mistake comes from: a kernel commit, a mailing-list thread, a code comment. */
  source: string;
  /** The violation kinds the kit is expected to report for it (any one of them counts). */
  expect: readonly ViolationKind[];
}

/** What a driver package exports. */
export interface DriverModel {
  name: string;
  description: string;
  supports: Partial<Capabilities>;
  variants: readonly DriverVariant[];
  /** Builds a fresh instance inside a run (called from a scenario's setup). */
  create(ctx: DriverContext): DriverInstance;
}
