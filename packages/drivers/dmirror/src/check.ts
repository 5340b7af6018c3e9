/**
 * Checkers for dmirror runs: the mirror invariant over a device page table (reference core-mm.md
 * §7, invariants 7 and 8, as the device sees them). The conformance kit has its own; these let the
 * package's tests check the driver without the kit.
 */
import { type FrameRef, hex, type Mm, PAGE_SIZE, PMD_SIZE, peekPte } from '@hmmkit/mm';
import type { Check, Sim } from '@hmmkit/sim';
import type { Dmirror } from './dmirror.js';
import { DPT_XA_TAG_WRITE } from './pt.js';

/** Violation kind of a device entry that outlived the CPU mapping it mirrored (the kit's name). */
export const STALE_MAPPING = 'stale-mapping';

/** A device entry as the mirror check sees it (the shape of the kit's `DeviceMapping`). */
export interface MirrorEntry {
  addr: number;
  frame: FrameRef;
  write: boolean;
}

/**
 * The mirror invariant: outside every invalidation window of `mm`, each device entry names the
 * frame the CPU maps at that address, with no more permission. Entries over CPU migration entries
 * are not judged (the page is locked and being moved; the migrating driver owns both copies until
 * `migrate_vma_finalize()`). Returns a message when it does not hold.
 */
export function mirrorViolation(mm: Mm, entries: Iterable<MirrorEntry>, who: string): string | undefined {
  if (mm.exited) return undefined;
  const subs = mm.notifierSubscriptions;
  if (subs && subs.activeInvalidateRanges > 0) return undefined;
  const mem = mm.system.mem;
  for (const e of entries) {
    const cpu = peekPte(mm, e.addr).entry;
    if (cpu.kind === 'migration') continue;
    const where = `${who} maps ${hex(e.addr)} -> ${hex(e.frame.pfn)}`;
    let pfn: number | null = null;
    let write = false;
    if (cpu.kind === 'huge') {
      pfn = cpu.protnone ? null : cpu.pfn + Math.floor((e.addr % PMD_SIZE) / PAGE_SIZE);
      write = cpu.write;
    } else if (cpu.kind === 'present') {
      pfn = cpu.protnone ? null : cpu.pfn;
      write = cpu.write;
    } else if (cpu.kind === 'device-private') {
      pfn = cpu.pfn;
      write = cpu.write;
    } else if (cpu.kind === 'device-exclusive') {
      pfn = cpu.pfn;
      write = true;
    }
    if (pfn === null) return `${where} but the CPU maps nothing accessible there (${cpu.kind})`;
    if (pfn !== e.frame.pfn) return `${where} but the CPU maps ${hex(pfn)}`;
    if (!mem.resolve(e.frame)) return `${where} but that frame was freed (and reused)`;
    if (e.write && !write) return `${where} writable but the CPU maps it read-only`;
  }
  return undefined;
}

/** The entries of an open file's device page table. */
export function dmirrorEntries(dmirror: Dmirror): MirrorEntry[] {
  const out: MirrorEntry[] = [];
  for (const [vpfn, e] of dmirror.pt.entries) {
    out.push({ addr: vpfn * PAGE_SIZE, frame: e.frame, write: e.tag === DPT_XA_TAG_WRITE });
  }
  return out;
}

/** The mirror invariant of one open file (a message, or undefined). */
export function dmirrorMirrorInvariant(dmirror: Dmirror): string | undefined {
  if (!dmirror.subscribed || dmirror.releasing) return undefined;
  return mirrorViolation(dmirror.mm, dmirrorEntries(dmirror), dmirror.name);
}

/**
 * A per-step check reporting a broken mirror invariant as a `stale-mapping` violation for every
 * open file `files()` returns.
 */
export function mirrorCheck(sim: Sim, files: () => Iterable<Dmirror>): Check {
  return () => {
    for (const f of files()) {
      const m = dmirrorMirrorInvariant(f);
      if (m) sim.fail(STALE_MAPPING, m, { objects: [f.pt.name] });
    }
    return undefined;
  };
}
