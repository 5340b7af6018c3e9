/**
 * Invariant 12 (reference/core-mm.md §7): every present→other or permission-reducing PTE change
 * is bracketed by invalidate_range_start/end, with the kernel's event for each CPU operation
 * (§2.7). Checked through the observer hub the CPU operations report to, independently of what the
 * notifier layer does with the calls.
 */
import { runOnce } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  cpuRead,
  cpuWrite,
  fork,
  MADV_DONTNEED,
  MADV_FREE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  type Mm,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  madvise,
  migratePage,
  mmap,
  mmObservers,
  mmput,
  mprotect,
  mremap,
  munmap,
  oomReap,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type PteTable,
  System,
  splitHugePmd,
  swapOutPage,
  ULONG_MAX,
  watchNotifierBrackets,
} from '../src/index.js';
import { MMU_NOTIFIER_RANGE_BLOCKABLE, type MmuNotifierRange } from '../src/notifier/index.js';
import { runThread } from './helpers.js';

const RW = PROT_READ | PROT_WRITE;

interface Seen {
  what: 'start' | 'end' | 'release';
  event?: string;
  start?: number;
  end?: number;
  blockable?: boolean;
}

/** Runs `op` after `prepare` and returns the invalidations `op` raised (relative addresses). */
function eventsOf(
  prepare: (mm: Mm, a: number, sys: System) => Generator<unknown, void, unknown>,
  op: (mm: Mm, a: number, sys: System) => Generator<unknown, unknown, unknown>,
  opts: { len?: number; thp?: boolean } = {},
): Seen[] {
  const seen: Seen[] = [];
  runThread(
    ({ sim, sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, {
        len: opts.len ?? 2 * PAGE_SIZE,
        prot: RW,
        vmFlags: opts.thp ? 0x20000000 : 0,
      });
      let recording = false;
      const rel = (x: number) => (x === ULONG_MAX ? x : x - a);
      mmObservers(sim).add({
        invalidateRangeStart(r: MmuNotifierRange) {
          if (recording) {
            seen.push({
              what: 'start',
              event: r.event,
              start: rel(r.start),
              end: rel(r.end),
              blockable: !!(r.flags & MMU_NOTIFIER_RANGE_BLOCKABLE),
            });
          }
        },
        invalidateRangeEnd(r: MmuNotifierRange) {
          if (recording) seen.push({ what: 'end', event: r.event });
        },
        release() {
          if (recording) seen.push({ what: 'release' });
        },
      });
      return function* () {
        yield* prepare(mm, a, sys) as Generator<never, void, unknown>;
        recording = true;
        yield* op(mm, a, sys) as Generator<never, unknown, unknown>;
        recording = false;
      };
    },
    { memoryPages: opts.thp ? 2048 : 256, accounting: false },
  );
  return seen;
}

function* write2(mm: Mm, a: number) {
  yield* cpuWrite(mm, a, 1);
  yield* cpuWrite(mm, a + PAGE_SIZE, 2);
}

const starts = (s: Seen[]) => s.filter((x) => x.what === 'start').map((x) => x.event);

describe('which event each CPU operation raises (core-mm.md §2.7)', () => {
  it('munmap: UNMAP over the range', () => {
    const s = eventsOf(write2, (mm, a) => munmap(mm, a, PAGE_SIZE));
    expect(s).toEqual([
      { what: 'start', event: 'MMU_NOTIFY_UNMAP', start: 0, end: PAGE_SIZE, blockable: true },
      { what: 'end', event: 'MMU_NOTIFY_UNMAP' },
    ]);
  });

  it('mprotect: PROTECTION_VMA', () => {
    expect(starts(eventsOf(write2, (mm, a) => mprotect(mm, a, 2 * PAGE_SIZE, PROT_READ)))).toEqual([
      'MMU_NOTIFY_PROTECTION_VMA',
    ]);
  });

  it('madvise(DONTNEED) and MADV_FREE: CLEAR', () => {
    expect(starts(eventsOf(write2, (mm, a) => madvise(mm, a, PAGE_SIZE, MADV_DONTNEED)))).toEqual([
      'MMU_NOTIFY_CLEAR',
    ]);
    expect(starts(eventsOf(write2, (mm, a) => madvise(mm, a, PAGE_SIZE, MADV_FREE)))).toEqual([
      'MMU_NOTIFY_CLEAR',
    ]);
  });

  it('fork: PROTECTION_PAGE on the parent COW range', () => {
    const s = eventsOf(write2, function* (mm) {
      const c = yield* fork(mm);
      return c;
    });
    expect(s[0]).toMatchObject({ event: 'MMU_NOTIFY_PROTECTION_PAGE', start: 0, end: 2 * PAGE_SIZE });
  });

  it('COW write fault: CLEAR over one page', () => {
    const s = eventsOf(
      function* (mm, a) {
        yield* write2(mm, a);
        yield* fork(mm);
      },
      (mm, a) => cpuWrite(mm, a + PAGE_SIZE, 3),
    );
    expect(s[0]).toEqual({
      what: 'start',
      event: 'MMU_NOTIFY_CLEAR',
      start: PAGE_SIZE,
      end: 2 * PAGE_SIZE,
      blockable: true,
    });
  });

  it('swap-out and migration: CLEAR per mapping (try_to_unmap_one / try_to_migrate_one)', () => {
    expect(starts(eventsOf(write2, (mm, a) => swapOutPage(mm, a)))).toEqual(['MMU_NOTIFY_CLEAR']);
    expect(starts(eventsOf(write2, (mm, a) => migratePage(mm, a)))).toEqual(['MMU_NOTIFY_CLEAR']);
  });

  it('mremap move: UNMAP over the old range (and over the target it replaces)', () => {
    const s = eventsOf(write2, (mm, a) =>
      mremap(mm, a, 2 * PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, a + 0x100000),
    );
    expect(starts(s).every((e) => e === 'MMU_NOTIFY_UNMAP')).toBe(true);
    expect(s.find((x) => x.what === 'start' && x.start === 0)).toBeTruthy();
  });

  it('MAP_FIXED over a mapping: UNMAP', () => {
    expect(
      starts(
        eventsOf(write2, (mm, a) => mmap(mm, a, PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)),
      ),
    ).toEqual(['MMU_NOTIFY_UNMAP']);
  });

  it('exit: release first, then UNMAP over [0, ULONG_MAX)', () => {
    const s = eventsOf(write2, (mm) => mmput(mm));
    expect(s[0]).toEqual({ what: 'release' });
    expect(s[1]).toMatchObject({ what: 'start', event: 'MMU_NOTIFY_UNMAP', end: ULONG_MAX, blockable: true });
    // Relative to the mapping: the range starts at address 0.
    expect(s[1]!.start).toBe(-0x10000);
  });

  it('OOM reaper: a non-blockable range per reaped VMA', () => {
    const s = eventsOf(write2, (mm) => oomReap(mm));
    expect(s[0]).toMatchObject({
      what: 'start',
      event: 'MMU_NOTIFY_CLEAR',
      start: 0,
      end: 2 * PAGE_SIZE,
      blockable: false,
    });
  });

  it('THP split: CLEAR over the PMD', () => {
    const s = eventsOf(
      function* (mm, a) {
        yield* cpuWrite(mm, a, 1);
      },
      function* (mm, a) {
        yield* mm.mmapLock.downRead();
        yield* splitHugePmd(mm.vmas[0]!, a);
        yield* mm.mmapLock.upRead();
      },
      { len: PMD_SIZE, thp: true },
    );
    expect(s[0]).toEqual({
      what: 'start',
      event: 'MMU_NOTIFY_CLEAR',
      start: 0,
      end: PMD_SIZE,
      blockable: true,
    });
  });

  it('faults that only populate (none → present) or add permission raise nothing', () => {
    expect(
      eventsOf(
        function* () {},
        (mm, a) => cpuRead(mm, a),
      ),
    ).toEqual([]);
    expect(
      eventsOf(
        function* () {},
        (mm, a) => cpuWrite(mm, a, 1),
      ),
    ).toEqual([]);
    const swapped = function* (mm: Mm, a: number) {
      yield* write2(mm, a);
      yield* swapOutPage(mm, a);
    };
    // Swap-in: a swap entry becomes present, nothing to invalidate.
    expect(eventsOf(swapped, (mm, a) => cpuRead(mm, a))).toEqual([]);
  });
});

describe('the bracket checker itself', () => {
  it('reports an entry change made outside any invalidation window', () => {
    const r = runOnce(
      {
        name: 'rogue',
        setup(sim) {
          const sys = new System(sim);
          watchNotifierBrackets(sim);
          const mm = sys.createMm();
          const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
          sim.spawn('rogue', function* () {
            yield* cpuWrite(mm, a, 1);
            const table = (mm.pageTable.peekPmd(a) as { table: PteTable }).table;
            yield* table.ptl.lock();
            // Write-protect without telling the secondary MMUs.
            yield* table.slot(a).modify((o) => (o.kind === 'present' ? { ...o, write: false } : null));
            yield* table.ptl.unlock();
          });
        },
      },
      [],
    );
    expect(r.violation?.kind).toBe('unnotified-pte-change');
    expect(r.violation?.message).toMatch(/present\(0x1000,W,D\) -> present\(0x1000,D\)/);
  });
});
