/**
 * The device's own memory accesses (the test driver's `memcpy_from_page()` / `memcpy_to_page()`
 * on the page its page table names), and `WARN_ON` for the driver.
 *
 * An access touches the frame a device entry names. If that frame was freed since the entry was
 * stored (the entry went stale: the notifier did not clear it in time), the access is reported as
 * `use-after-free`, whether or not the pfn has been reused.
 */
import {
  type Folio,
  type FrameRef,
  hex,
  NotifierViolation,
  notifierDebug,
  type PageValue,
  type PhysMem,
} from '@hmmkit/mm';
import { Access, Op, type Routine, type Sim } from '@hmmkit/sim';
import type { DptEntry } from './pt.js';

/** `WARN_ON(cond)` in the driver: recorded with the notifier layer's warnings. */
export function dmirrorWarnOn(sim: Sim, cond: boolean, message: string): boolean {
  if (!cond) return false;
  const d = notifierDebug(sim);
  d.warnings.push(`dmirror: ${message}`);
  if (d.panicOnWarn) sim.fail(NotifierViolation.Warn, `WARNING: dmirror: ${message}`);
  return true;
}

/** A device-held reference to the page at `pfn` as it is now (the freed generation if none). */
export function frameOf(mem: PhysMem, pfn: number): { frame: FrameRef; folio: Folio | null; index: number } {
  const folio = mem.folioAt(pfn);
  if (!folio) return { frame: { pfn, gen: mem.genOf(pfn) - 1 }, folio: null, index: 0 };
  return { frame: mem.frameRef(folio, pfn - folio.pfn), folio, index: pfn - folio.pfn };
}

/** The object an access to `frame` is announced on: the live folio at the pfn, or the stored one. */
function target(mem: PhysMem, entry: DptEntry): Folio | PhysMem {
  return mem.folioAt(entry.frame.pfn) ?? entry.folio ?? mem;
}

function resolveOrFail(mem: PhysMem, entry: DptEntry, who: string, what: string, va: number) {
  const r = mem.resolve(entry.frame);
  if (!r) {
    mem.sim.fail(
      'use-after-free',
      `${who} ${what} ${hex(va)} through its page table: frame ${hex(entry.frame.pfn)} (${entry.folio?.name ?? 'gone'}) was freed`,
      { objects: entry.folio ? [entry.folio.name] : [] },
    );
  }
  return r;
}

/** models memcpy_from_page(): the device reads the page an entry names. */
export function* deviceReadPage(mem: PhysMem, entry: DptEntry, who: string, va: number): Routine<PageValue> {
  const obj = target(mem, entry);
  return (yield new Op(
    'memcpy_from_page',
    obj,
    Access.Read,
    0,
    () => {
      const r = resolveOrFail(mem, entry, who, 'reads', va);
      return r.folio.data[r.index]!;
    },
    `${who} reads ${hex(va)}`,
  )) as PageValue;
}

/** models memcpy_to_page(): the device writes the page an entry names. */
export function* deviceWritePage(
  mem: PhysMem,
  entry: DptEntry,
  value: PageValue,
  who: string,
  va: number,
): Routine {
  const obj = target(mem, entry);
  // Announced as a read-modify-write of the frame; Folio's own checks would report a dead folio
  // before ours, with the same kind.
  yield new Op(
    'memcpy_to_page',
    obj,
    Access.Write,
    0,
    () => {
      const r = resolveOrFail(mem, entry, who, 'writes', va);
      if (r.folio.zero) mem.sim.fail('bad-access', `${who} writes the zero page at ${hex(va)}`);
      r.folio.data[r.index] = value;
      return undefined;
    },
    `${who} writes ${hex(va)}`,
  );
}

/**
 * Whether migrate entry `v` has flag `f`. Entries are `pfn << MIGRATE_PFN_SHIFT | flags` and may
 * exceed 32 bits, so no bitwise operator on the whole entry (the flags are below bit 6).
 */
export function mpfnHas(v: number, f: number): boolean {
  return ((v % 64) & f) !== 0;
}
