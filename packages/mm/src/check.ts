/**
 * Checkers over the address-space model: structural page-table invariants that hold at every
 * step, exact reference/map/swap accounting at quiescent points, leak detection after teardown,
 * and invariant 12 of reference/core-mm.md §7 (every present→other or permission-reducing entry
 * change is bracketed by invalidate_range_start/end), checked live through the observer hub.
 */
import type { Sim, Thread } from '@hmmkit/sim';
import { hex, PAGE_SIZE, PMD_SIZE } from './constants.js';
import { mmObservers, type PteChange } from './events.js';
import type { Folio } from './folio.js';
import type { Mm } from './mm.js';
import type { MmuNotifierRange } from './notifier/index.js';
import { type Pmd, type Pte, pteText } from './pgtable.js';
import type { System } from './system.js';

function* entries(mm: Mm): Generator<{ addr: number; level: 'pte' | 'pmd'; e: Pte | Pmd }> {
  for (const pmdSlot of mm.pageTable.allPmds()) {
    const pmd = pmdSlot.entry;
    if (pmd.kind === 'huge') yield { addr: pmdSlot.addr, level: 'pmd', e: pmd };
    else if (pmd.kind === 'table')
      for (const s of pmd.table.used()) yield { addr: s.addr, level: 'pte', e: s.entry };
  }
}

/**
 * Invariants that hold after every step: each entry refers to a live folio of the right kind
 * (present PTEs never map device-private memory; migration entries point to locked folios), swap
 * entries to used slots. Returns a message, or undefined.
 */
export function checkPageTables(sys: System): string | undefined {
  const mem = sys.mem;
  for (const mm of sys.mms) {
    for (const { addr, level, e } of entries(mm)) {
      const where = `${mm.name} ${level}@${hex(addr)} ${pteText(e)}`;
      switch (e.kind) {
        case 'huge':
        case 'present': {
          if (e.kind === 'present' && (e.zero || e.special)) break;
          const f = mem.folioAt(e.pfn);
          if (!f || f.dead) return `${where}: maps a freed pfn`;
          if (f.zone === 'device-private') return `${where}: a present entry maps device-private ${f.name}`;
          if (e.kind === 'huge' && (f.order !== 9 || f.pfn !== e.pfn))
            return `${where}: huge PMD does not map a whole THP`;
          break;
        }
        case 'migration': {
          const f = mem.folioAt(e.pfn);
          if (!f) return `${where}: migration entry to a free pfn`;
          if (!f.locked && !f.dead) return `${where}: migration entry for unlocked ${f.name}`;
          break;
        }
        case 'device-private': {
          const f = mem.folioAt(e.pfn);
          if (f?.zone !== 'device-private')
            return `${where}: device-private entry to a non-device-private pfn`;
          break;
        }
        case 'device-exclusive': {
          const f = mem.folioAt(e.pfn);
          if (!f || f.dead) return `${where}: device-exclusive entry to a freed pfn`;
          if (!f.anon) return `${where}: device-exclusive entry for a non-anonymous folio`;
          break;
        }
        case 'swap': {
          const s = sys.swap.slots[e.slot];
          if (!s?.used) return `${where}: swap entry to a free slot`;
          break;
        }
        default:
          break;
      }
    }
  }
  return undefined;
}

/** Options of {@link checkAccounting}. */
export interface AccountingOptions {
  /** References held outside page tables and caches (device pins, test-held references). */
  extraRefs?: ReadonlyMap<Folio, number>;
}

/**
 * Exact accounting, valid when no operation is half done (end of a run): for every live folio,
 * per-page mapcount = PTE entries mapping the page, entire mapcount = huge PMDs, refcount = mappings
 * + swap/page-cache reference + `extraRefs`; swap counts = swap entries; RSS counters match; no
 * migration entry is left; no live folio is unreferenced. Returns a message, or undefined.
 */
export function checkAccounting(sys: System, opts: AccountingOptions = {}): string | undefined {
  const mem = sys.mem;
  const pageMaps = new Map<Folio, number[]>();
  const entire = new Map<Folio, number>();
  const swapCounts = new Map<number, number>();
  /** References held by entries that are not mappings (old device-exclusive entries). */
  const entryRefs = new Map<Folio, number>();
  const pages = (f: Folio) => {
    let a = pageMaps.get(f);
    if (!a) {
      a = new Array<number>(f.nr).fill(0);
      pageMaps.set(f, a);
    }
    return a;
  };
  for (const mm of sys.mms) {
    const rss = { anon: 0, file: 0, shmem: 0, swap: 0 };
    const count = (f: Folio, n: number) => {
      if (f.anon) rss.anon += n;
      else if (f.mapping?.shmem) rss.shmem += n;
      else rss.file += n;
    };
    for (const { addr, e } of entries(mm)) {
      if (e.kind === 'huge') {
        const f = mem.folioAt(e.pfn)!;
        entire.set(f, (entire.get(f) ?? 0) + 1);
        count(f, f.nr);
      } else if (
        (e.kind === 'present' && !e.zero && !e.special) ||
        e.kind === 'device-private' ||
        e.kind === 'device-exclusive'
      ) {
        const f = mem.folioAt(e.pfn);
        if (!f) return `${mm.name} pte@${hex(addr)}: ${pteText(e)} maps a free pfn`;
        // An old-API (v5.14-v6.14) device-exclusive entry holds a reference but no mapcount.
        if (e.kind === 'device-exclusive' && e.old) entryRefs.set(f, (entryRefs.get(f) ?? 0) + 1);
        else pages(f)[e.pfn - f.pfn]!++;
        count(f, 1);
      } else if (e.kind === 'swap') {
        swapCounts.set(e.slot, (swapCounts.get(e.slot) ?? 0) + 1);
        rss.swap++;
      } else if (e.kind === 'migration') {
        return `${mm.name} pte@${hex(addr)}: migration entry left behind`;
      }
    }
    for (const k of ['anon', 'file', 'shmem', 'swap'] as const) {
      if (mm.rss[k] !== rss[k]) return `${mm.name}: rss ${k} is ${mm.rss[k]}, page tables say ${rss[k]}`;
    }
  }
  for (const f of mem.liveFolios()) {
    const maps = pageMaps.get(f) ?? new Array<number>(f.nr).fill(0);
    for (let i = 0; i < f.nr; i++) {
      if (f.mapcount[i] !== maps[i])
        return `${f.name}: page ${i} mapcount ${f.mapcount[i]}, mapped by ${maps[i]} entries`;
    }
    const ent = entire.get(f) ?? 0;
    if (f.entireMapcount !== ent)
      return `${f.name}: entire mapcount ${f.entireMapcount}, mapped by ${ent} PMDs`;
    let expected =
      ent + maps.reduce((a, b) => a + b, 0) + (entryRefs.get(f) ?? 0) + (opts.extraRefs?.get(f) ?? 0);
    if (f.swapSlot !== null) {
      if (sys.swap.slots[f.swapSlot]?.cache !== f)
        return `${f.name}: claims swap slot ${f.swapSlot}, not in its cache`;
      expected++;
    }
    if (f.mapping) {
      if (f.mapping.pageCache.get(f.index) !== f)
        return `${f.name}: claims page cache index ${f.index}, not in it`;
      expected++;
    }
    if (f.refcount !== expected)
      return `${f.name}: refcount ${f.refcount}, expected ${expected} (mappings + caches + extra)`;
    if (expected === 0) return `${f.name}: leaked (live with no mapping and no cache)`;
    if (f.locked) return `${f.name}: left locked`;
  }
  for (let i = 0; i < sys.swap.slots.length; i++) {
    const s = sys.swap.slots[i]!;
    const n = swapCounts.get(i) ?? 0;
    if (s.count !== n) return `swap slot ${i}: count ${s.count}, referenced by ${n} entries`;
    if (s.used !== (n > 0 || s.cache !== null)) return `swap slot ${i}: used=${s.used} with ${n} entries`;
    if (s.cache && (s.cache.dead || s.cache.swapSlot !== i)) return `swap slot ${i}: stale cache folio`;
  }
  for (const file of sys.files) {
    for (const [index, f] of file.pageCache) {
      if (f.dead || f.mapping !== file || f.index !== index)
        return `${file.name}: stale page cache entry ${index}`;
    }
  }
  return undefined;
}

/**
 * After every mm has exited: no anonymous memory is left, swap is empty, and the only live folios
 * are page-cache folios holding just the cache's reference.
 */
export function checkNoLeaks(sys: System): string | undefined {
  for (const mm of sys.mms) if (!mm.exited) return `${mm.name} has not exited`;
  const acc = checkAccounting(sys);
  if (acc) return acc;
  for (const f of sys.mem.liveFolios()) {
    if (!f.mapping) return `${f.name}: leaked (anon=${f.anon}, refcount ${f.refcount})`;
  }
  const used = sys.swap.usedSlots();
  if (used) return `${used} swap slots still in use`;
  return undefined;
}

/** Whether an entry change needs an invalidation (invariant 12, plus device entries' removal). */
export function needsInvalidation(c: Pick<PteChange, 'old' | 'new' | 'level'>): boolean {
  const { old, new: n } = c;
  if (old.kind === 'huge') {
    return !(
      n.kind === 'huge' &&
      n.pfn === old.pfn &&
      (n.write || !old.write) &&
      (!n.protnone || old.protnone)
    );
  }
  if (old.kind === 'present') {
    if (n.kind !== 'present' || n.pfn !== old.pfn) return true;
    if (old.write && !n.write) return true;
    return !old.protnone && !!n.protnone;
  }
  if (old.kind === 'device-exclusive') return !(n.kind === 'device-exclusive' && n.pfn === old.pfn);
  if (old.kind === 'device-private')
    return !(n.kind === 'device-private' && n.pfn === old.pfn && (n.write || !old.write));
  return false;
}

/**
 * Checks invariant 12 live: every entry change that removes or reduces a present mapping (or
 * removes a device entry) must happen in a thread between a successful `invalidate_range_start`
 * and the matching `invalidate_range_end` on a range of the same mm covering the entry. Violations
 * are reported as `unnotified-pte-change`. Returns a function that stops the check.
 */
export function watchNotifierBrackets(sim: Sim): () => void {
  const open = new Map<Thread, MmuNotifierRange[]>();
  return mmObservers(sim).add({
    invalidateRangeStart(range, t, ret) {
      if (!t || ret !== 0) return;
      let l = open.get(t);
      if (!l) {
        l = [];
        open.set(t, l);
      }
      l.push(range);
    },
    invalidateRangeEnd(range, t) {
      if (!t) return;
      const l = open.get(t);
      const i = l ? l.lastIndexOf(range) : -1;
      if (!l || i < 0) {
        sim.fail('unbalanced-invalidate', `${t.name}: invalidate_range_end without a matching start`);
      }
      l.splice(i, 1);
    },
    pteChange(c) {
      if (!c.thread || !needsInvalidation(c)) return;
      const size = c.level === 'pmd' ? PMD_SIZE : PAGE_SIZE;
      const ranges = open.get(c.thread) ?? [];
      if (ranges.some((r) => r.mm === c.mm && r.start <= c.addr && c.addr + size <= r.end)) return;
      sim.fail(
        'unnotified-pte-change',
        `${c.thread.name}: ${c.mm.name} ${c.level}@${hex(c.addr)} ${pteText(c.old)} -> ${pteText(c.new)} outside an invalidate_range_start/end bracket`,
      );
    },
  });
}
