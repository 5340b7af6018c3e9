/**
 * The device page table of one open file: the kernel keeps it in an xarray (`dmirror->pt`) indexed
 * by virtual pfn, whose entries are page pointers tagged `DPT_XA_TAG_WRITE` (writable),
 * `DPT_XA_TAG_ATOMIC` (mapped for atomics through a device-exclusive entry) or untagged
 * (read-only). The table holds no page references: it relies on the notifier to clear entries
 * before the pages they name are freed.
 *
 * In the model every entry names its frame as a `FrameRef` (pfn + allocation generation), so a
 * device access through an entry whose frame was freed is detected (`PhysMem.resolve()` fails).
 * The table is a sim object: loads, stores and erases are steps the explorer sees.
 */
import { type Folio, type FrameRef, hex, PAGE_SIZE } from '@hmmkit/mm';
import { Access, Op, type Routine, type Sim, SimObject } from '@hmmkit/sim';

/** `DPT_XA_TAG_ATOMIC`. */
export const DPT_XA_TAG_ATOMIC = 1;
/** `DPT_XA_TAG_WRITE`. */
export const DPT_XA_TAG_WRITE = 3;
/** Untagged: read-only. */
export const DPT_XA_TAG_NONE = 0;

export type DptTag = typeof DPT_XA_TAG_NONE | typeof DPT_XA_TAG_ATOMIC | typeof DPT_XA_TAG_WRITE;

/** One entry: the page (as the folio and page index it was when stored) and its tag. */
export interface DptEntry {
  /** The frame as stored: it stops resolving once the page is freed. */
  readonly frame: FrameRef;
  /** The folio the frame belonged to when stored (null if it was already freed then). */
  readonly folio: Folio | null;
  /** Page of `folio`. */
  readonly index: number;
  readonly tag: DptTag;
}

export class DmirrorPt extends SimObject {
  /** Virtual pfn to entry. Checkers may read it; threads go through the operations. */
  readonly entries = new Map<number, DptEntry>();

  constructor(sim: Sim, name: string) {
    super(sim, name);
  }

  /** `xa_load(&dmirror->pt, pfn)`. */
  *load(pfn: number, label?: string): Routine<DptEntry | null> {
    return (yield new Op('xa_load', this, Access.Read, 0, pfn, label)) as DptEntry | null;
  }

  /** `xa_store(&dmirror->pt, pfn, entry, GFP_ATOMIC)` (never fails in the model). */
  *store(pfn: number, entry: DptEntry, label?: string): Routine {
    yield new Op('xa_store', this, Access.Write, 0, [pfn, entry], label);
  }

  /** `xa_erase(&dmirror->pt, pfn)`. */
  *erase(pfn: number, label?: string): Routine {
    yield new Op('xa_erase', this, Access.Write, 0, pfn, label);
  }

  /**
   * `xa_for_each_range(&dmirror->pt, pfn, entry, first, last) xa_erase(...)`: every entry in the
   * inclusive pfn range, in one step (the callers hold the driver mutex, as every writer but the
   * migrate_to_ram path does, and that one erases single entries).
   */
  *eraseRange(first: number, last: number, label?: string): Routine {
    yield new Op('xa_erase_range', this, Access.Write, 0, [first, last], label);
  }

  /** Whether any entry in `[first, last]` carries `tag` (one read step). */
  *anyTagged(first: number, last: number, tag: DptTag, label?: string): Routine<boolean> {
    return (yield new Op('xa_pointer_tag', this, Access.Read, 0, [first, last, tag], label)) as boolean;
  }

  /** `xa_destroy()`. */
  *destroy(label?: string): Routine {
    yield new Op('xa_destroy', this, Access.Write, 0, undefined, label);
  }

  override exec(op: Op): unknown {
    switch (op.kind) {
      case 'xa_load':
        return this.entries.get(op.arg as number) ?? null;
      case 'xa_store': {
        const [pfn, e] = op.arg as [number, DptEntry];
        this.entries.set(pfn, e);
        return undefined;
      }
      case 'xa_erase':
        this.entries.delete(op.arg as number);
        return undefined;
      case 'xa_erase_range': {
        const [first, last] = op.arg as [number, number];
        if (last - first < this.entries.size) {
          for (let p = first; p <= last; p++) this.entries.delete(p);
        } else {
          for (const p of [...this.entries.keys()]) if (p >= first && p <= last) this.entries.delete(p);
        }
        return undefined;
      }
      case 'xa_pointer_tag': {
        const [first, last, tag] = op.arg as [number, number, DptTag];
        for (const [p, e] of this.entries) if (p >= first && p <= last && e.tag === tag) return true;
        return false;
      }
      default:
        this.entries.clear();
        return undefined;
    }
  }

  override describe(op: Op): string {
    switch (op.kind) {
      case 'xa_load':
      case 'xa_erase':
        return `${op.kind}(${this.name}, ${hex((op.arg as number) * PAGE_SIZE)})`;
      case 'xa_store': {
        const [pfn, e] = op.arg as [number, DptEntry];
        const tag = e.tag === DPT_XA_TAG_WRITE ? ' WRITE' : e.tag === DPT_XA_TAG_ATOMIC ? ' ATOMIC' : '';
        return `xa_store(${this.name}, ${hex(pfn * PAGE_SIZE)} -> ${hex(e.frame.pfn)}${tag})`;
      }
      case 'xa_erase_range': {
        const [first, last] = op.arg as [number, number];
        return `xa_erase(${this.name}, [${hex(first * PAGE_SIZE)}, ${hex(last * PAGE_SIZE)}])`;
      }
      default:
        return `${op.kind}(${this.name})`;
    }
  }
}
