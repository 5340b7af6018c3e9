/**
 * The hardware side, as nouveau sees it on Pascal: channels (identified by their instance
 * pointer), the MMU's replayable fault buffer (`MAXWELL_FAULT_BUFFER_A`: a ring of 32-byte
 * entries with GET/PUT registers and an interrupt), and the replay / cancel methods of the VMM.
 *
 * A GPU access is a thread of its own (a warp, in effect): it translates through the channel's
 * VMM; on a miss it writes a fault entry at PUT, raises the fault interrupt and stalls until the
 * driver issues a replay (then it retries the access, and may fault again) or cancels the fault
 * (the engine is reset and the channel killed: the access fails).
 */
import { hex, PAGE_SIZE, type PageValue, type PhysMem } from '@hmmkit/mm';
import { Access, EFAULT, Op, type Routine, type Sim, SimObject, WaitQueue } from '@hmmkit/sim';
import type { GpuPte, NvifVmm } from './nvif.js';

/** `FAULT_ACCESS_READ` (fault buffer entry, info bits 19:16). */
export const FAULT_ACCESS_READ = 0;
/** `FAULT_ACCESS_WRITE`. */
export const FAULT_ACCESS_WRITE = 1;
/** `FAULT_ACCESS_ATOMIC`. */
export const FAULT_ACCESS_ATOMIC = 2;
/** `FAULT_ACCESS_PREFETCH`. */
export const FAULT_ACCESS_PREFETCH = 3;

export type FaultAccess =
  | typeof FAULT_ACCESS_READ
  | typeof FAULT_ACCESS_WRITE
  | typeof FAULT_ACCESS_ATOMIC
  | typeof FAULT_ACCESS_PREFETCH;

export const faultAccessName = ['READ', 'WRITE', 'ATOMIC', 'PREFETCH'] as const;

/** One fault buffer entry as the hardware writes it (the fields the driver decodes). */
export interface HwFault {
  inst: number;
  addr: number;
  access: FaultAccess;
  hub: number;
  gpc: number;
  client: number;
  /** Info bit 31: set by the GPU, cleared by the driver once read. */
  valid: boolean;
}

/** A GPU channel: its instance pointer is what fault entries carry. */
export class NvChannel {
  /** Killed by a cancelled fault (engine reset): every later access fails. */
  killed = false;
  constructor(
    readonly inst: number,
    readonly name: string,
    /** The VMM the channel runs on. */
    readonly vmm: NvifVmm,
  ) {}
}

/**
 * The fault buffer (entries + GET/PUT), the replay counter and the channels' killed state, as one
 * hardware object. The interrupt handler is installed by nouveau_svm (`nvif_event`).
 */
export class NvFaultBuffer extends SimObject {
  readonly ring: (HwFault | null)[];
  /** PUT: advanced by the GPU. */
  put = 0;
  /** GET: written back by the driver. */
  get = 0;
  /** Replays issued so far; a stalled access retries once this moves. */
  replays = 0;
  /** Channels by instance pointer. */
  readonly channels = new Map<number, NvChannel>();
  /** `nvif_event` handler and whether the event is allowed (`nvif_event_allow/block`). */
  handler: (() => Routine) | null = null;
  allowed = false;
  /** Wakes stalled accesses after a replay or a cancel. */
  readonly wq: WaitQueue;
  /** Model counters for tests. */
  faults = 0;
  cancels = 0;

  constructor(
    sim: Sim,
    name: string,
    /** `buffer->entries`. */
    readonly entries: number,
  ) {
    super(sim, name);
    this.ring = new Array<HwFault | null>(entries).fill(null);
    this.wq = new WaitQueue(sim, `${name}.stall`);
  }

  /** The GPU writes a fault at PUT and advances it (stalls while the ring is full). Returns the replay count. */
  *gpuWriteFault(f: Omit<HwFault, 'valid'>): Routine<number> {
    return (yield new Op('gpu_fault_write', this, Access.Write, 0, f)) as number;
  }

  /** `nvif_rd32(device, buffer->putaddr)` / `getaddr`. */
  *rdPutGet(): Routine<{ put: number; get: number }> {
    return (yield new Op('nvif_rd32(put, get)', this, Access.Read)) as { put: number; get: number };
  }

  /** Reads the entry at `get` (eight `nvif_rd32`) and clears its valid bit (`nvif_mask`). */
  *readEntry(get: number): Routine<HwFault | null> {
    return (yield new Op('fault_entry_read', this, Access.Write, 0, get)) as HwFault | null;
  }

  /** `nvif_wr32(device, buffer->getaddr, get)`. */
  *wrGet(get: number): Routine {
    yield new Op('nvif_wr32(get)', this, Access.Write, 0, get);
  }

  /** `GP100_VMM_VN_FAULT_REPLAY`: every stalled access retries. */
  *replay(): Routine {
    yield new Op('GP100_VMM_VN_FAULT_REPLAY', this, Access.Write);
    yield* this.wq.wakeUpAll('replay');
  }

  /** `GP100_VMM_VN_FAULT_CANCEL`: resets the engine, killing the channel with instance `inst`. */
  *cancel(inst: number, hub: number, gpc: number, client: number): Routine {
    yield new Op('GP100_VMM_VN_FAULT_CANCEL', this, Access.Write, 0, { inst, hub, gpc, client });
    yield* this.wq.wakeUpAll('cancel');
  }

  /** `nvif_event_allow()` / `nvif_event_block()` of the fault event. */
  *setAllowed(allowed: boolean): Routine {
    yield new Op(allowed ? 'nvif_event_allow' : 'nvif_event_block', this, Access.Write, 0, allowed);
  }

  /** The fault interrupt: runs the driver's event handler if the event is allowed. */
  *raise(): Routine {
    const h = (yield new Op('fault_irq', this, Access.Read)) as (() => Routine) | null;
    if (h) yield* h();
  }

  override enabled(op: Op): boolean {
    if (op.kind === 'gpu_fault_write') return (this.put + 1) % this.entries !== this.get;
    return true;
  }

  override exec(op: Op): unknown {
    switch (op.kind) {
      case 'gpu_fault_write': {
        this.ring[this.put] = { ...(op.arg as Omit<HwFault, 'valid'>), valid: true };
        this.put = (this.put + 1) % this.entries;
        this.faults++;
        return this.replays;
      }
      case 'nvif_rd32(put, get)':
        return { put: this.put, get: this.get };
      case 'fault_entry_read': {
        const e = this.ring[op.arg as number] ?? null;
        if (!e) return null;
        const copy = { ...e };
        e.valid = false;
        return copy;
      }
      case 'nvif_wr32(get)':
        this.get = op.arg as number;
        return undefined;
      case 'GP100_VMM_VN_FAULT_REPLAY':
        this.replays++;
        return undefined;
      case 'GP100_VMM_VN_FAULT_CANCEL': {
        const { inst } = op.arg as { inst: number };
        const chan = this.channels.get(inst);
        if (chan) chan.killed = true;
        this.cancels++;
        return undefined;
      }
      case 'fault_irq':
        return this.allowed ? this.handler : null;
      case 'nvif_event_allow':
      case 'nvif_event_block':
        this.allowed = op.arg as boolean;
        return undefined;
      default:
        return undefined;
    }
  }

  override describe(op: Op): string {
    switch (op.kind) {
      case 'gpu_fault_write': {
        const f = op.arg as HwFault;
        return `fault(${this.name}: inst ${hex(f.inst)} ${faultAccessName[f.access]} ${hex(f.addr)})`;
      }
      case 'GP100_VMM_VN_FAULT_CANCEL':
        return `GP100_VMM_VN_FAULT_CANCEL(inst ${hex((op.arg as { inst: number }).inst)})`;
      default:
        return `${op.kind}(${this.name})`;
    }
  }
}

/** What a GPU access did. */
export interface GpuAccessResult {
  /** 0, or -EFAULT (the fault was cancelled: channel killed). */
  ret: number;
  value?: PageValue;
  /** Replayable faults this access raised. */
  faults: number;
}

type Touch = { kind: 'ok'; value?: PageValue } | { kind: 'fault' } | { kind: 'killed' };

/** Whether entry `pte` lets the GPU perform `access` (atomics on VRAM need W, on HOST the A bit). */
export function gpuPteAllows(pte: GpuPte | null, access: FaultAccess): boolean {
  if (pte?.kind !== 'pfn') return false;
  switch (access) {
    case FAULT_ACCESS_WRITE:
      return pte.write;
    case FAULT_ACCESS_ATOMIC:
      return pte.vram ? pte.write : pte.atomic;
    default:
      return true;
  }
}

/**
 * One GPU access by a warp of `chan` at `addr` (read, write of `value`, or atomic exchange with
 * `value`, returning the old value). Faults are replayable: the access stalls until the driver
 * replays (retry) or cancels (fail). Memory is touched through the VMM's entry; an entry whose
 * frame was freed is reported as `use-after-free`.
 */
export function* nvGpuAccess(
  mem: PhysMem,
  hw: NvFaultBuffer,
  chan: NvChannel,
  addr: number,
  access: FaultAccess,
  value?: PageValue,
): Routine<GpuAccessResult> {
  const sim = hw.sim;
  let faults = 0;
  for (;;) {
    const r: Touch = yield* chan.vmm.gpuAccess(
      addr,
      (pte) => {
        if (chan.killed) return { kind: 'killed' };
        if (!gpuPteAllows(pte, access) || pte?.kind !== 'pfn') return { kind: 'fault' };
        const res = mem.resolve(pte.frame);
        if (!res) {
          return sim.fail(
            'use-after-free',
            `GPU channel ${chan.name} accesses ${hex(addr)} through its page table: frame ${hex(pte.frame.pfn)} was freed`,
            { objects: [chan.vmm.name] },
          );
        }
        const data = res.folio.data;
        const old = data[res.index]!;
        if (access === FAULT_ACCESS_WRITE || access === FAULT_ACCESS_ATOMIC) {
          if (res.folio.zero)
            sim.fail('bad-access', `GPU channel ${chan.name} writes the zero page at ${hex(addr)}`);
          data[res.index] = value ?? 0;
          res.folio.dirty = true;
        }
        return access === FAULT_ACCESS_WRITE ? { kind: 'ok' } : { kind: 'ok', value: old };
      },
      `${chan.name} ${faultAccessName[access]}`,
    );
    if (r.kind === 'ok')
      return r.value === undefined ? { ret: 0, faults } : { ret: 0, value: r.value, faults };
    if (r.kind === 'killed') return { ret: -EFAULT, faults };
    faults++;
    const page = addr - (addr % PAGE_SIZE);
    const seq = yield* hw.gpuWriteFault({ inst: chan.inst, addr: page, access, hub: 0, gpc: 0, client: 0 });
    yield* hw.raise();
    yield* hw.wq.waitEvent(
      () => hw.replays !== seq || chan.killed,
      `${chan.name} stalled on a replayable fault`,
    );
  }
}
