import { dfs, EINVAL, type Program, type Routine } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  checkAccounting,
  checkPageTables,
  cpuRead,
  cpuWrite,
  FOLL_GET,
  FOLL_WRITE,
  type Folio,
  folioPut,
  fork,
  getUserPageVmaRemote,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  type Mm,
  mmObservers,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  peekPte,
  System,
  VM_HUGEPAGE,
  VM_PFNMAP,
  watchNotifierBrackets,
} from '../../src/index.js';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_SHIFT,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  type MigrateVma,
  migrateDeviceFinalize,
  migrateDevicePages,
  migrateDeviceRange,
  migratePfn,
  migratePfnToPfn,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
} from '../../src/migrate-device/index.js';
import { exploreOk, runThread } from '../helpers.js';
import { HmmMirror, mirrorInvariant, ToyDevice } from '../hmmkit-helpers.js';

const RW = PROT_READ | PROT_WRITE;
const A = 0x200000;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;

function* fill(mm: Mm, start: number, n: number, tag = 'p'): Routine<void> {
  for (let i = 0; i < n; i++) yield* cpuWrite(mm, start + i * PAGE_SIZE, `${tag}${i}`);
}

function* readAll(mm: Mm, start: number, n: number): Routine<unknown[]> {
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const r = yield* cpuRead(mm, start + i * PAGE_SIZE);
    out.push(r.ok ? r.value : r.signal);
  }
  return out;
}

describe('migrate_vma flags and helpers', () => {
  it('has the kernel values', () => {
    expect([
      MIGRATE_PFN_VALID,
      MIGRATE_PFN_MIGRATE,
      MIGRATE_PFN_WRITE,
      MIGRATE_PFN_COMPOUND,
      MIGRATE_PFN_SHIFT,
    ]).toEqual([1, 2, 8, 16, 6]);
    expect([
      MIGRATE_VMA_SELECT_SYSTEM,
      MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
      MIGRATE_VMA_SELECT_DEVICE_COHERENT,
      MIGRATE_VMA_SELECT_COMPOUND,
    ]).toEqual([1, 2, 4, 8]);
    expect(migratePfn(0x1234)).toBe((0x1234 << 6) | 1);
    expect(migratePfnToPfn(migratePfn(0x1234) | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE)).toBe(0x1234);
  });
});

describe('migrate_vma to and from device-private memory', () => {
  it('moves anonymous pages, holes and the zero page to the device; a CPU access brings a page back through migrate_to_ram', () => {
    const { result, sys } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: 4 * PAGE_SIZE, prot: RW, flags: FIXED });
      const dev = new ToyDevice(sys, 'gpu', 8);
      return function* () {
        yield* fill(mm, A, 2);
        yield* cpuRead(mm, A + 2 * PAGE_SIZE); // zero page; page 3 stays none
        const args = yield* dev.toDevice(mm, A, A + 4 * PAGE_SIZE);
        const kinds = [0, 1, 2, 3].map((i) => peekPte(mm, A + i * PAGE_SIZE).entry.kind);
        const zones = [0, 1, 2, 3].map((i) => peekPte(mm, A + i * PAGE_SIZE).folio?.zone);
        const src = args.src.map((s) => [!!(s & MIGRATE_PFN_VALID), !!(s & MIGRATE_PFN_MIGRATE)]);
        const acc = checkAccounting(sys) ?? 'ok';
        const back = yield* readAll(mm, A, 4);
        return {
          cpages: args.cpages,
          npages: args.npages,
          kinds,
          zones,
          src,
          acc,
          back,
          calls: dev.toRamCalls,
          after: peekPte(mm, A).entry.kind,
        };
      };
    });
    expect(result).toMatchObject({ cpages: 4, npages: 4, acc: 'ok', calls: 4, after: 'present' });
    expect(result.kinds).toEqual(['device-private', 'device-private', 'device-private', 'device-private']);
    expect(result.zones).toEqual(['device-private', 'device-private', 'device-private', 'device-private']);
    expect(result.src).toEqual([
      [true, true],
      [true, true],
      [false, true],
      [false, true],
    ]);
    expect(result.back).toEqual(['p0', 'p1', 0, 0]);
    expect(sys.mem.liveFolios().filter((f) => f.zone !== 'normal')).toEqual([]);
  });

  it('migrate_to_ram that declines its page: the fault gets SIGBUS and the page stays on the device', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
      const dev = new ToyDevice(sys, 'gpu', 2);
      return function* () {
        yield* fill(mm, A, 1);
        yield* dev.toDevice(mm, A, A + PAGE_SIZE);
        dev.failToRam = true;
        const r = yield* cpuRead(mm, A);
        dev.failToRam = false;
        const kind = peekPte(mm, A).entry.kind;
        return { r: r.ok ? r.value : r.signal, kind, again: yield* cpuRead(mm, A) };
      };
    });
    expect(result).toEqual({ r: 'SIGBUS', kind: 'device-private', again: { ok: true, value: 'p0' } });
  });

  it('migrate_vma_setup validates its arguments (-EINVAL)', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: 2 * PAGE_SIZE, prot: RW, flags: FIXED });
      const io = sys.mmapSetup(mm, {
        addr: A + 4 * PAGE_SIZE,
        len: PAGE_SIZE,
        prot: RW,
        flags: FIXED,
        vmFlags: VM_PFNMAP,
      });
      const dev = new ToyDevice(sys, 'gpu', 2);
      return function* () {
        yield* cpuWrite(mm, A, 'x');
        const f = peekPte(mm, A).folio as Folio;
        yield* mm.mmapLock.downRead();
        const out: number[] = [];
        for (const a of [
          dev.args(mm, A, A, MIGRATE_VMA_SELECT_SYSTEM), // empty
          { ...dev.args(mm, A, A + 3 * PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM) }, // beyond the VMA
          dev.args(mm, io, io + PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM), // VM_SPECIAL
          dev.args(mm, A, A + PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM, f), // fault page not device-private
        ]) {
          out.push(yield* migrateVmaSetup(a as MigrateVma));
        }
        yield* mm.mmapLock.upRead();
        return out;
      };
    });
    expect(result).toEqual([-EINVAL, -EINVAL, -EINVAL, -EINVAL]);
  });

  it('§7.22 device-private pages are never mapped by present PTEs and never returned by GUP (GUP faults them back)', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
      const dev = new ToyDevice(sys, 'gpu', 2);
      return function* () {
        yield* fill(mm, A, 1);
        yield* dev.toDevice(mm, A, A + PAGE_SIZE);
        const before = peekPte(mm, A).entry.kind;
        yield* mm.mmapLock.downRead();
        const g = yield* getUserPageVmaRemote(mm, A, FOLL_GET | FOLL_WRITE);
        yield* mm.mmapLock.upRead();
        if (typeof g === 'number') return { before, g };
        const out = {
          before,
          zone: g.folio.zone,
          data: g.folio.data[g.index],
          after: peekPte(mm, A).entry.kind,
        };
        yield* folioPut(sys.mem, g.folio);
        return out;
      };
    });
    // checkPageTables ran after every step (runThread): no present PTE ever mapped the device page.
    expect(result).toEqual({ before: 'device-private', zone: 'normal', data: 'p0', after: 'present' });
  });

  it('§7.24 best effort: pinned, locked-elsewhere and declined pages keep their mapping; an entry migrated iff MIGRATE survives migrate_vma_pages', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: 4 * PAGE_SIZE, prot: RW, flags: FIXED });
      const dev = new ToyDevice(sys, 'gpu', 8);
      return function* () {
        yield* fill(mm, A, 4);
        const folios = [0, 1, 2, 3].map((i) => peekPte(mm, A + i * PAGE_SIZE).folio!);
        yield* folios[1]!.get('device pin'); // an extra reference: migrate_vma_check_page fails
        yield* folios[2]!.lock('held by someone else'); // collect's trylock fails
        yield* mm.mmapLock.downRead();
        const args = dev.args(mm, A, A + 4 * PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
        yield* migrateVmaSetup(args);
        const afterSetup = args.src.map((s) => !!(s & MIGRATE_PFN_MIGRATE));
        yield* dev.allocAndCopy(args, 'device');
        // The driver declines page 3.
        const declined = args.dst[3]!;
        args.dst[3] = 0;
        yield* migrateVmaPages(args);
        const migrated = args.src.map((s) => !!(s & MIGRATE_PFN_MIGRATE));
        yield* migrateVmaFinalize(args);
        yield* mm.mmapLock.upRead();
        const d3 = sys.mem.folioAt(migratePfnToPfn(declined))!;
        yield* d3.unlock();
        yield* folioPut(sys.mem, d3);
        yield* folios[2]!.unlock();
        yield* folioPut(sys.mem, folios[1]!);
        const same = [0, 1, 2, 3].map((i) => peekPte(mm, A + i * PAGE_SIZE).folio === folios[i]);
        const kinds = [0, 1, 2, 3].map((i) => peekPte(mm, A + i * PAGE_SIZE).entry.kind);
        return { afterSetup, migrated, same, kinds, data: yield* readAll(mm, A, 4) };
      };
    });
    expect(result.afterSetup).toEqual([true, false, false, true]);
    expect(result.migrated).toEqual([true, false, false, false]);
    expect(result.kinds).toEqual(['device-private', 'present', 'present', 'present']);
    expect(result.same).toEqual([false, true, true, true]);
    expect(result.data).toEqual(['p0', 'p1', 'p2', 'p3']);
  });

  it('§7.25 every MMU_NOTIFY_MIGRATE carries owner = pgmap_owner; a driver that skips its own must invalidate its mirror itself', () => {
    // Mirror a page, then migrate it with the mirror's own owner: the mirror skips the MIGRATE
    // event, so its entry goes stale unless the driver clears it itself.
    const program = (clearsItself: boolean): Program => ({
      name: `own MIGRATE skipped, ${clearsItself ? 'mirror cleared by the driver' : 'mirror left'}`,
      setup(sim) {
        const sys = new System(sim, { memoryPages: 16 });
        const mm = sys.createMm();
        sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
        const dev = new ToyDevice(sys, 'gpu', 2);
        const mirror = new HmmMirror(sim, mm, 'gpu', { filterOwn: true, owner: dev.owner });
        const owners: unknown[] = [];
        mmObservers(sim).add({
          invalidateRangeStart(r) {
            if (r.event === 'MMU_NOTIFY_MIGRATE') owners.push(r.owner);
          },
        });
        sim.spawn('driver', function* () {
          yield* fill(mm, A, 1);
          yield* mirror.insert(A, PAGE_SIZE);
          yield* mirror.fault(A, 1, true);
          yield* mm.mmapLock.downRead();
          const args = dev.args(mm, A, A + PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
          yield* migrateVmaSetup(args);
          if (clearsItself) {
            yield* mirror.lock.lock();
            yield* mirror.pt.clear(A, A + PAGE_SIZE);
            yield* mirror.lock.unlock();
          }
          yield* dev.allocAndCopy(args, 'device');
          yield* migrateVmaPages(args);
          yield* migrateVmaFinalize(args);
          yield* mm.mmapLock.upRead();
        });
        return {
          invariant: { mirror: () => mirrorInvariant(mirror), 'page tables': () => checkPageTables(sys) },
          properties: { owners: () => owners.length > 0 && owners.every((o) => o === dev.owner) },
        };
      },
    });
    exploreOk(program(true), { strategy: dfs() });
    expect(() => exploreOk(program(false), { strategy: dfs() })).toThrow(/mirror/);
  });

  it('a MIGRATE event of another owner invalidates the mirror (it may not be skipped)', () => {
    const { result } = runThread(({ sys, sim }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
      const other = new ToyDevice(sys, 'other', 2);
      const mirror = new HmmMirror(sim, mm, 'gpu', { filterOwn: true });
      return function* () {
        yield* fill(mm, A, 1);
        yield* mirror.insert(A, PAGE_SIZE);
        yield* mirror.fault(A, 1, false);
        const had = mirror.pt.entries.size;
        yield* other.toDevice(mm, A, A + PAGE_SIZE);
        return { had, has: mirror.pt.entries.size, bad: mirrorInvariant(mirror) ?? 'ok' };
      };
    });
    expect(result).toEqual({ had: 1, has: 0, bad: 'ok' });
  });

  // Device-coherent memory (the CPU then writes the new page directly) is explored exhaustively;
  // device-private memory (the CPU write then goes through migrate_to_ram) up to 2 preemptions.
  for (const [type, bound] of [
    ['device-coherent', undefined],
    ['device-private', 2],
  ] as const) {
    it(`§7.23 between setup and finalize the pages are locked, unmapped and stable, CPU accesses wait; finalize leaves no migration entry (${type}, ${bound ? `up to ${bound} preemptions` : 'all interleavings'})`, () => {
      let checkedWindow = 0;
      const program: Program = {
        name: `migrate_vma (${type}) vs CPU write`,
        setup(sim) {
          const sys = new System(sim, { memoryPages: 16 });
          watchNotifierBrackets(sim);
          const mm = sys.createMm();
          sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
          const dev = new ToyDevice(sys, 'gpu', 2, type);
          let window: { folios: Folio[]; data: unknown[] } | null = null;
          let wrote: unknown = null;
          sim.spawn('setup', function* () {
            yield* fill(mm, A, 1);
            sim.spawn('driver', function* () {
              yield* mm.mmapLock.downRead();
              const args = dev.args(mm, A, A + PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
              yield* migrateVmaSetup(args);
              const folios = args.src
                .filter((s) => s & MIGRATE_PFN_VALID && s & MIGRATE_PFN_MIGRATE)
                .map((s) => sys.mem.folioAt(migratePfnToPfn(s))!);
              window = { folios, data: folios.map((f) => f.data[0]) };
              yield* dev.allocAndCopy(args, 'device');
              yield* migrateVmaPages(args);
              window = null;
              yield* migrateVmaFinalize(args);
              yield* mm.mmapLock.upRead();
            });
            sim.spawn('CPU', function* () {
              wrote = yield* cpuWrite(mm, A, 'cpu');
            });
          });
          return {
            invariant: {
              'page tables': () => checkPageTables(sys),
              'migration window': () => {
                if (!window) return undefined;
                checkedWindow++;
                for (const [k, f] of window.folios.entries()) {
                  if (!f.locked) return `${f.name} unlocked during the migration`;
                  if (f.mapped) return `${f.name} still mapped during the migration`;
                  if (f.data[0] !== window.data[k]) return `${f.name} changed during the migration`;
                }
                return undefined;
              },
            },
            properties: {
              'write landed': () => JSON.stringify(wrote) === JSON.stringify({ ok: true, value: undefined }),
              accounting: () => checkAccounting(sys),
              locked: () => sys.mem.liveFolios().every((f) => !f.locked) || 'a folio was left locked',
            },
          };
        },
      };
      const r = exploreOk(program, {
        strategy: dfs(bound ? { preemptionBound: bound } : {}),
        budgets: { maxRuns: 20_000, maxTimeMs: 20_000 },
      });
      expect(r.endedBy).toBe('exhausted');
      expect(checkedWindow).toBeGreaterThan(0);
      console.log(
        `migrate_vma (${type}) vs CPU write: ${r.completedRuns} runs, ${r.elapsedMs.toFixed(0)} ms`,
      );
    });
  }

  it('pages shared after fork are unmapped from both processes and both map the device page (try_to_migrate)', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
      const dev = new ToyDevice(sys, 'gpu', 2);
      return function* () {
        yield* fill(mm, A, 1);
        const child = (yield* fork(mm)) as Mm;
        const args = yield* dev.toDevice(mm, A, A + PAGE_SIZE);
        const kinds = [peekPte(mm, A).entry.kind, peekPte(child, A).entry.kind];
        const childRead = yield* cpuRead(child, A);
        yield* cpuWrite(mm, A, 'parent');
        return {
          migrated: !!(args.src[0]! & MIGRATE_PFN_MIGRATE),
          kinds,
          childRead,
          parentRead: yield* cpuRead(mm, A),
          childAgain: yield* cpuRead(child, A),
        };
      };
    });
    expect(result.migrated).toBe(true);
    expect(result.kinds).toEqual(['device-private', 'device-private']);
    expect(result.childRead).toEqual({ ok: true, value: 'p0' });
    expect(result.parentRead).toEqual({ ok: true, value: 'parent' });
    expect(result.childAgain).toEqual({ ok: true, value: 'p0' });
  });

  it('a file-backed (shared) page is collected but refused for device memory; a shared anonymous range has nothing to populate', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const file = sys.createFile('f', ['file'], { writable: true });
      sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: MAP_SHARED | MAP_FIXED, file });
      sys.mmapSetup(mm, {
        addr: A + PAGE_SIZE,
        len: PAGE_SIZE,
        prot: RW,
        flags: MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
      });
      const dev = new ToyDevice(sys, 'gpu', 2);
      return function* () {
        yield* cpuRead(mm, A);
        const f = yield* dev.toDevice(mm, A, A + PAGE_SIZE);
        const s = yield* dev.toDevice(mm, A + PAGE_SIZE, A + 2 * PAGE_SIZE);
        return {
          file: [f.cpages, !!(f.src[0]! & MIGRATE_PFN_MIGRATE), peekPte(mm, A).entry.kind],
          shm: [s.cpages, s.src[0]],
        };
      };
    });
    expect(result).toEqual({ file: [1, false, 'present'], shm: [0, 0] });
  });
});

describe('device-coherent memory', () => {
  it('is mapped by ordinary present PTEs the CPU reads directly; SELECT_DEVICE_COHERENT brings it back', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
      const dev = new ToyDevice(sys, 'cxl', 2, 'device-coherent');
      return function* () {
        yield* fill(mm, A, 1);
        yield* dev.toDevice(mm, A, A + PAGE_SIZE);
        const on = peekPte(mm, A);
        const read = yield* cpuRead(mm, A);
        const back = yield* dev.toSystem(mm, A, A + PAGE_SIZE, MIGRATE_VMA_SELECT_DEVICE_COHERENT);
        return {
          kind: on.entry.kind,
          zone: on.folio?.zone,
          read,
          calls: dev.toRamCalls,
          back: back.cpages,
          zoneAfter: peekPte(mm, A).folio?.zone,
        };
      };
    });
    expect(result).toEqual({
      kind: 'present',
      zone: 'device-coherent',
      read: { ok: true, value: 'p0' },
      calls: 0,
      back: 1,
      zoneAfter: 'normal',
    });
  });
});

describe('migrate_device_range (eviction without a VMA)', () => {
  it('evicts every in-use page of a device back to system memory, wherever it is mapped', () => {
    const { result, sys } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: 3 * PAGE_SIZE, prot: RW, flags: FIXED });
      const dev = new ToyDevice(sys, 'gpu', 4);
      return function* () {
        yield* fill(mm, A, 3);
        yield* dev.toDevice(mm, A, A + 3 * PAGE_SIZE);
        const n = dev.pgmap.nrPages;
        const src = new Array<number>(n).fill(0);
        const dst = new Array<number>(n).fill(0);
        yield* migrateDeviceRange(src, dev.pgmap.pfnStart, n);
        const selected = src.filter((s) => s & MIGRATE_PFN_MIGRATE).length;
        for (let i = 0; i < n; i++) {
          if (!(src[i]! & MIGRATE_PFN_MIGRATE)) continue;
          const s = sys.mem.folioAt(migratePfnToPfn(src[i]!))!;
          const d = (yield* sys.mem.alloc(0))!;
          d.locked = true;
          d.data[0] = s.data[0]!;
          dst[i] = migratePfn(d.pfn);
        }
        yield* migrateDevicePages(src, dst, n);
        yield* migrateDeviceFinalize(src, dst, n);
        const kinds = [0, 1, 2].map((i) => peekPte(mm, A + i * PAGE_SIZE).entry.kind);
        return { selected, kinds, data: yield* readAll(mm, A, 3), calls: dev.toRamCalls };
      };
    });
    expect(result).toEqual({
      selected: 3,
      kinds: ['present', 'present', 'present'],
      data: ['p0', 'p1', 'p2'],
      calls: 0,
    });
    expect(sys.mem.liveFolios().filter((f) => f.zone !== 'normal')).toEqual([]);
  });
});

describe('THP migration (v6.19) and its split fallback', () => {
  const THP = { memoryPages: 4096, thp: 'madvise' as const, quick: true };
  function thpMm(sys: System, n = 1): Mm {
    const mm = sys.createMm();
    sys.mmapSetup(mm, { addr: PMD_SIZE, len: n * PMD_SIZE, prot: RW, flags: FIXED, vmFlags: VM_HUGEPAGE });
    return mm;
  }

  it('SELECT_COMPOUND collects a PMD-mapped THP as one compound entry; a compound destination migrates it whole, and back', () => {
    const { result } = runThread(({ sys }) => {
      const mm = thpMm(sys);
      const dev = new ToyDevice(sys, 'gpu', 1024);
      return function* () {
        yield* cpuWrite(mm, PMD_SIZE + 7 * PAGE_SIZE, 'seven');
        const to = yield* dev.toDevice(
          mm,
          PMD_SIZE,
          2 * PMD_SIZE,
          MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND,
        );
        const onDev = peekPte(mm, PMD_SIZE + 7 * PAGE_SIZE);
        const back = yield* dev.toSystem(
          mm,
          PMD_SIZE,
          2 * PMD_SIZE,
          MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_COMPOUND,
        );
        const after = peekPte(mm, PMD_SIZE + 7 * PAGE_SIZE);
        return {
          src0: [!!(to.src[0]! & MIGRATE_PFN_COMPOUND), !!(to.src[0]! & MIGRATE_PFN_MIGRATE)],
          rest: to.src.slice(1).every((s) => s === 0),
          cpages: to.cpages,
          onDev: [onDev.entry.kind, onDev.folio?.order, onDev.folio?.zone],
          back: [back.cpages, !!(back.src[0]! & MIGRATE_PFN_COMPOUND)],
          after: [after.entry.kind, after.folio?.order, after.folio?.zone],
          read: yield* cpuRead(mm, PMD_SIZE + 7 * PAGE_SIZE),
        };
      };
    }, THP);
    expect(result).toEqual({
      src0: [true, true],
      rest: true,
      cpages: 1,
      onDev: ['device-private', 9, 'device-private'],
      back: [1, true],
      after: ['present', 9, 'normal'],
      read: { ok: true, value: 'seven' },
    });
  });

  it('a compound entry answered with base pages splits the THP; a CPU fault on one page of a device THP splits it too', () => {
    const B = 2 * PMD_SIZE;
    const { result } = runThread(({ sys }) => {
      const mm = thpMm(sys, 2);
      const dev = new ToyDevice(sys, 'gpu', 1100);
      return function* () {
        yield* cpuWrite(mm, PMD_SIZE + 3 * PAGE_SIZE, 'three');
        yield* cpuWrite(mm, B + 3 * PAGE_SIZE, 'b3');
        // THP 1: the driver answers with base pages.
        const to = yield* dev.toDevice(
          mm,
          PMD_SIZE,
          2 * PMD_SIZE,
          MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND,
          false,
        );
        const split = peekPte(mm, PMD_SIZE + 3 * PAGE_SIZE);
        const migrated = to.src.filter((s) => s & MIGRATE_PFN_MIGRATE).length;
        // THP 2: a device THP, then a CPU fault on one of its pages.
        yield* dev.toDevice(mm, B, B + PMD_SIZE, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND);
        const devThp = peekPte(mm, B + 3 * PAGE_SIZE).folio!.order;
        const read = yield* cpuRead(mm, B + 3 * PAGE_SIZE);
        const after = peekPte(mm, B + 3 * PAGE_SIZE);
        const neighbour = peekPte(mm, B + 4 * PAGE_SIZE);
        return {
          migrated,
          split: [split.entry.kind, split.folio?.order],
          splitRead: yield* cpuRead(mm, PMD_SIZE + 3 * PAGE_SIZE),
          devThp,
          read,
          after: [after.entry.kind, after.folio?.order],
          neighbour: [neighbour.entry.kind, neighbour.folio?.order],
        };
      };
    }, THP);
    expect(result).toEqual({
      migrated: 512,
      split: ['device-private', 0],
      splitRead: { ok: true, value: 'three' },
      devThp: 9,
      read: { ok: true, value: 'b3' },
      after: ['present', 0],
      neighbour: ['device-private', 0],
    });
  });

  it('without SELECT_COMPOUND a THP is split at collect time and migrated page by page; a hole is populated page by page', () => {
    const { result } = runThread(({ sys }) => {
      const mm = thpMm(sys);
      const dev = new ToyDevice(sys, 'gpu', 1024);
      return function* () {
        yield* cpuWrite(mm, PMD_SIZE, 'zero');
        const to = yield* dev.toDevice(mm, PMD_SIZE, PMD_SIZE + 4 * PAGE_SIZE);
        return {
          cpages: to.cpages,
          kinds: [0, 4]
            .map((i) => peekPte(mm, PMD_SIZE + i * PAGE_SIZE))
            .map((p) => [p.entry.kind, p.folio?.order]),
          read: yield* cpuRead(mm, PMD_SIZE),
        };
      };
    }, THP);
    expect(result).toEqual({
      cpages: 4,
      kinds: [
        ['device-private', 0],
        ['present', 0],
      ],
      read: { ok: true, value: 'zero' },
    });
  });
});
