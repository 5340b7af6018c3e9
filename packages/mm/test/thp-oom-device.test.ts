import { EAGAIN } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  cpuRead,
  cpuWrite,
  type Folio,
  fork,
  HPAGE_PMD_NR,
  invalidateRangeEnd,
  invalidateRangeStart,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  type Mm,
  madvise,
  migratePage,
  mmput,
  munmap,
  oomReap,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  peekPte,
  splitHugePmd,
  swapOutPage,
  VM_FAULT_SIGBUS,
  type VmFault,
} from '../src/index.js';
import {
  MMU_NOTIFIER_RANGE_BLOCKABLE,
  MmuNotifier,
  MmuNotifierRange,
  MmuNotifyEvent,
  mmuNotifierRegister,
} from '../src/notifier/index.js';
import { runThread } from './helpers.js';

const RW = PROT_READ | PROT_WRITE;
const THP = { memoryPages: 2048, thp: 'madvise' as const };

describe('transparent huge pages', () => {
  it('a fault in a MADV_HUGEPAGE area maps a PMD-sized folio', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PMD_SIZE, prot: RW });
      return function* () {
        yield* madvise(mm, a, PMD_SIZE, MADV_HUGEPAGE);
        yield* cpuWrite(mm, a + 5 * PAGE_SIZE, 'in thp');
        yield* cpuWrite(mm, a + PMD_SIZE, 'base');
        const h = peekPte(mm, a + 5 * PAGE_SIZE);
        const b = peekPte(mm, a + PMD_SIZE);
        return { h, b, r: yield* cpuRead(mm, a + 5 * PAGE_SIZE), z: yield* cpuRead(mm, a), rss: mm.rss.anon };
      };
    }, THP);
    expect(result.h.level).toBe('pmd');
    expect(result.h.folio?.order).toBe(9);
    expect(result.h.index).toBe(5);
    expect(result.b.level).toBe('pte');
    expect(result.r).toEqual({ ok: true, value: 'in thp' });
    expect(result.z).toEqual({ ok: true, value: 0 });
    expect(result.rss).toBe(HPAGE_PMD_NR + 1);
  });

  it('a partial munmap splits the PMD; the rest of the THP stays mapped through PTEs', () => {
    const { result, sys } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PMD_SIZE, prot: RW, vmFlags: 0x20000000 });
      return function* () {
        yield* cpuWrite(mm, a + PAGE_SIZE, 'one');
        yield* munmap(mm, a, PAGE_SIZE);
        const info = peekPte(mm, a + PAGE_SIZE);
        const r = yield* cpuRead(mm, a + PAGE_SIZE);
        return { info, r, refs: info.folio!.refcount, map0: info.folio!.mapcount[0] };
      };
    }, THP);
    expect(result.info.level).toBe('pte');
    expect(result.info.folio?.order).toBe(9);
    expect(result.r).toEqual({ ok: true, value: 'one' });
    expect(result.refs).toBe(HPAGE_PMD_NR - 1);
    expect(result.map0).toBe(0);
    expect(sys.mem.stats().liveFolios).toBe(1);
  });

  it('COW of a THP after fork splits the PMD and copies one page', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PMD_SIZE, prot: RW, vmFlags: 0x20000000 });
      return function* () {
        yield* cpuWrite(mm, a, 'p');
        yield* cpuWrite(mm, a + PAGE_SIZE, 'q');
        const child = (yield* fork(mm)) as Mm;
        yield* cpuWrite(child, a, 'c');
        const out = {
          child: [yield* cpuRead(child, a), yield* cpuRead(child, a + PAGE_SIZE)],
          parent: [yield* cpuRead(mm, a), yield* cpuRead(mm, a + PAGE_SIZE)],
          childLevel: peekPte(child, a + PAGE_SIZE).level,
          parentLevel: peekPte(mm, a).level,
        };
        yield* mmput(child);
        yield* mmput(mm);
        return out;
      };
    }, THP);
    expect(result.child.map((r) => r.ok && r.value)).toEqual(['c', 'q']);
    expect(result.parent.map((r) => r.ok && r.value)).toEqual(['p', 'q']);
    expect(result.childLevel).toBe('pte');
    expect(result.parentLevel).toBe('pmd');
  });

  it('explicit split_huge_pmd, then swap-out and migration of a page split the folio itself', () => {
    const { result, sys } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PMD_SIZE, prot: RW, vmFlags: 0x20000000 });
      return function* () {
        yield* cpuWrite(mm, a + 2 * PAGE_SIZE, 'two');
        yield* cpuWrite(mm, a + 3 * PAGE_SIZE, 'three');
        const vma = mm.vmas[0]!;
        yield* mm.mmapLock.downRead();
        yield* splitHugePmd(vma, a);
        yield* mm.mmapLock.upRead();
        const afterSplit = peekPte(mm, a).folio!.order;
        const s = yield* swapOutPage(mm, a + 2 * PAGE_SIZE);
        const orders = [peekPte(mm, a).folio!.order, peekPte(mm, a + 3 * PAGE_SIZE).folio!.order];
        const m = yield* migratePage(mm, a + 3 * PAGE_SIZE);
        return {
          afterSplit,
          s,
          orders,
          m,
          v: [yield* cpuRead(mm, a + 2 * PAGE_SIZE), yield* cpuRead(mm, a + 3 * PAGE_SIZE)],
        };
      };
    }, THP);
    expect(result.afterSplit).toBe(9);
    expect(result.s).toBe(0);
    expect(result.orders).toEqual([0, 0]);
    expect(result.m).toBe(0);
    expect(result.v.map((r) => r.ok && r.value)).toEqual(['two', 'three']);
    // Page 2 went to swap and came back on the read; page 3 moved: still one folio per page.
    expect(sys.mem.stats().liveFolios).toBe(HPAGE_PMD_NR);
  });
});

describe('OOM reaper (__oom_reap_task_mm)', () => {
  it('unmaps private memory; later anonymous faults get SIGBUS', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 1);
        const ok = yield* oomReap(mm);
        return {
          ok,
          live: sys.mem.stats().liveFolios,
          r: yield* cpuRead(mm, a),
          w: yield* cpuWrite(mm, a, 2),
        };
      };
    });
    expect(result.ok).toBe(true);
    expect(result.live).toBe(0);
    expect(result.r.ok).toBe(false);
    expect(result.w).toMatchObject({ ok: false, signal: 'SIGBUS', fault: VM_FAULT_SIGBUS });
  });

  it('a notifier that cannot proceed without blocking makes it skip the VMA (-EAGAIN) and report failure', () => {
    const { result } = runThread(
      ({ sys }) => {
        const mm = sys.createMm();
        const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
        const busy = new MmuNotifier('busy', {
          *invalidateRangeStart(_sub, range) {
            // A real driver would trylock here; this one always needs to sleep.
            yield* [];
            return range.flags & MMU_NOTIFIER_RANGE_BLOCKABLE ? 0 : -EAGAIN;
          },
        });
        return function* () {
          yield* cpuWrite(mm, a, 1);
          yield* mmuNotifierRegister(busy, mm);
          const ok = yield* oomReap(mm);
          return { ok, entry: peekPte(mm, a).entry.kind };
        };
      },
      { accounting: true },
    );
    expect(result).toEqual({ ok: false, entry: 'present' });
  });
});

describe('device entries', () => {
  it('a CPU fault on a device-private entry calls pgmap->ops->migrate_to_ram', () => {
    const calls: number[] = [];
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW, flags: MAP_PRIVATE | MAP_ANONYMOUS });
      const pgmap = sys.mem.addPgmap('device-private', 'gpu0', 4, {
        *migrateToRam(vmf: VmFault) {
          // A toy migrate_to_ram: put a system page with the device's data back in place.
          calls.push(vmf.address);
          const dev = vmf.page!;
          const n = (yield* sys.mem.alloc(0))!;
          n.data[0] = dev.data[0]!;
          n.anon = true;
          n.anonVma = vmf.vma.anonVma;
          n.index = vmf.vma.linearPageIndex(vmf.address);
          n.mapcount[0] = 1;
          n.anonExclusive[0] = true;
          const range = new MmuNotifierRange({
            mm: vmf.vma.mm,
            start: vmf.address,
            end: vmf.address + PAGE_SIZE,
            event: MmuNotifyEvent.MIGRATE,
            owner: 'gpu0',
          });
          yield* invalidateRangeStart(range);
          yield* vmf.table!.ptl.lock();
          yield* vmf.slot!.set({ kind: 'present', pfn: n.pfn, write: true, dirty: true, young: true });
          yield* dev.update('folio_remove_rmap_pte', (f) => {
            f.mapcount[0]!--;
            f.refcount--;
          });
          yield* vmf.table!.ptl.unlock();
          yield* invalidateRangeEnd(range);
          return 0;
        },
      });
      let dev: Folio;
      return function* () {
        yield* cpuWrite(mm, a, 'cpu');
        // Stand in for migrate_vma: move the page to the device by hand.
        const f = peekPte(mm, a).folio!;
        dev = (yield* sys.mem.allocDevice(pgmap))!;
        dev.data[0] = 'on device';
        dev.anon = true;
        dev.anonVma = f.anonVma;
        dev.index = f.index;
        dev.mapcount[0] = 1;
        const pmd = mm.pageTable.peekPmd(a) as { table: import('../src/index.js').PteTable };
        const range = new MmuNotifierRange({
          mm,
          start: a,
          end: a + PAGE_SIZE,
          event: MmuNotifyEvent.MIGRATE,
          owner: 'gpu0',
        });
        yield* invalidateRangeStart(range);
        yield* pmd.table.ptl.lock();
        yield* pmd.table.slot(a).set({ kind: 'device-private', pfn: dev.pfn, write: true });
        yield* f.update('unmap', (x) => {
          x.mapcount[0] = 0;
          x.refcount = 0;
        });
        yield* pmd.table.ptl.unlock();
        yield* invalidateRangeEnd(range);
        yield* sys.mem.free(f);
        const r = yield* cpuRead(mm, a);
        return { r, devFreed: dev.dead };
      };
    });
    expect(calls.length).toBe(1);
    expect(result).toEqual({ r: { ok: true, value: 'on device' }, devFreed: true });
  });

  it('a device-exclusive entry is restored on CPU access (CLEAR notification); fork restores it or fails', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 'x');
        yield* cpuWrite(mm, a + PAGE_SIZE, 'y');
        const pmd = mm.pageTable.peekPmd(a) as { table: import('../src/index.js').PteTable };
        const excl = function* (addr: number) {
          // Stand in for make_device_exclusive(): EXCLUSIVE notification with the caller as owner.
          const f = peekPte(mm, addr).folio!;
          const range = new MmuNotifierRange({
            mm,
            start: addr,
            end: addr + PAGE_SIZE,
            event: MmuNotifyEvent.EXCLUSIVE,
            owner: 'gpu0',
          });
          yield* invalidateRangeStart(range);
          yield* pmd.table.ptl.lock();
          yield* pmd.table.slot(addr).set({ kind: 'device-exclusive', pfn: f.pfn, owner: 'gpu0' });
          yield* pmd.table.ptl.unlock();
          yield* invalidateRangeEnd(range);
          return f;
        };
        yield* excl(a);
        const r = yield* cpuRead(mm, a);
        const restored = peekPte(mm, a).entry;
        const f = yield* excl(a + PAGE_SIZE);
        yield* f.lock('held by the driver');
        const failed = yield* fork(mm);
        yield* f.unlock();
        const child = (yield* fork(mm)) as Mm;
        const childRead = yield* cpuRead(child, a + PAGE_SIZE);
        yield* mmput(child);
        return { r, restored, failed, childRead, parentEntry: peekPte(mm, a + PAGE_SIZE).entry.kind };
      };
    });
    expect(result.r).toEqual({ ok: true, value: 'x' });
    expect(result.restored).toMatchObject({ kind: 'present', write: true });
    expect(result.failed).toBe(-12);
    expect(result.childRead).toEqual({ ok: true, value: 'y' });
    expect(result.parentEntry).toBe('present');
  });
});
