import { dfs, EAGAIN, EBUSY, type Thread } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  cpuRead,
  cpuWrite,
  type Folio,
  fork,
  MAP_PRIVATE,
  MAP_SHARED,
  migratePage,
  mmput,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  peekPte,
  swapOutPage,
  type UserAccess,
} from '../src/index.js';
import { exploreOk, makeProgram, runThread } from './helpers.js';

const RW = PROT_READ | PROT_WRITE;

describe('swap-out (shrink_folio_list, try_to_unmap) and swap-in (do_swap_page)', () => {
  it('swap-out then read gives back the same content; the frame is freed, then reallocated', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 'precious');
        const live = sys.mem.stats().liveFolios;
        const r = yield* swapOutPage(mm, a);
        const mid = { entry: peekPte(mm, a).entry, live: sys.mem.stats().liveFolios, rss: { ...mm.rss } };
        const back = yield* cpuRead(mm, a);
        const w = yield* cpuWrite(mm, a, 'again');
        return { live, r, mid, back, w, slots: sys.swap.usedSlots(), entry: peekPte(mm, a).entry };
      };
    });
    expect(result.live).toBe(1);
    expect(result.r).toBe(0);
    expect(result.mid.entry).toMatchObject({ kind: 'swap', exclusive: true });
    expect(result.mid.live).toBe(0);
    expect(result.mid.rss).toMatchObject({ anon: 0, swap: 1 });
    expect(result.back).toEqual({ ok: true, value: 'precious' });
    expect(result.w.ok).toBe(true);
    expect(result.slots).toBe(0);
    // Exclusive swap entry: mapped writable on the read fault already.
    expect(result.entry).toMatchObject({ kind: 'present', write: true });
  });

  it('a swap entry shared by fork: both sides read the content; writes stay private', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 'shared');
        yield* swapOutPage(mm, a);
        const child = (yield* fork(mm)) as import('../src/index.js').Mm;
        const count = sys.swap.slots[0]!.count;
        const rc = yield* cpuRead(child, a);
        yield* cpuWrite(mm, a, 'parent');
        const rc2 = yield* cpuRead(child, a);
        const rp = yield* cpuRead(mm, a);
        yield* mmput(child);
        return { count, rc, rc2, rp, slots: sys.swap.usedSlots() };
      };
    });
    expect(result.count).toBe(2);
    expect(result.rc).toEqual({ ok: true, value: 'shared' });
    expect(result.rc2).toEqual({ ok: true, value: 'shared' });
    expect(result.rp).toEqual({ ok: true, value: 'parent' });
    expect(result.slots).toBe(0);
  });

  it('a page referenced by someone else (a device pin) stays in the swap cache: -EBUSY, content kept', () => {
    let pinned: Folio | null = null;
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 'v');
        pinned = peekPte(mm, a).folio!;
        yield* pinned.get('device reference');
        const r = yield* swapOutPage(mm, a);
        const mid = { entry: peekPte(mm, a).entry, cached: pinned.swapSlot !== null };
        const back = yield* cpuRead(mm, a);
        const same = peekPte(mm, a).folio === pinned;
        yield* pinned.putTestZero('device put');
        return { r, mid, back, same };
      };
    }, {});
    expect(result.r).toBe(-EBUSY);
    expect(result.mid).toMatchObject({ entry: { kind: 'swap' }, cached: true });
    expect(result.back).toEqual({ ok: true, value: 'v' });
    expect(result.same).toBe(true);
  });

  it('page-cache folios are written back and dropped; a shared mapping refaults the new content', () => {
    const { result } = runThread(({ sys }) => {
      const file = sys.createFile('f', ['a']);
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW, flags: MAP_SHARED, file });
      return function* () {
        yield* cpuWrite(mm, a, 'b');
        const r = yield* swapOutPage(mm, a);
        const store = [...file.store];
        return { r, store, cached: file.pageCache.size, back: yield* cpuRead(mm, a) };
      };
    });
    expect(result).toEqual({ r: 0, store: ['b'], cached: 0, back: { ok: true, value: 'b' } });
  });
});

describe('migration (migrate_pages, try_to_migrate)', () => {
  it('preserves the content and moves the page to a new frame', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const file = sys.createFile('f', ['file']);
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      const b = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: PROT_READ, flags: MAP_PRIVATE, file });
      return function* () {
        yield* cpuWrite(mm, a, 'data');
        yield* cpuRead(mm, b);
        const before = [peekPte(mm, a).folio!.pfn, peekPte(mm, b).folio!.pfn];
        const r = [yield* migratePage(mm, a), yield* migratePage(mm, b)];
        const after = [peekPte(mm, a).folio!.pfn, peekPte(mm, b).folio!.pfn];
        return {
          r,
          moved: before.map((p, i) => p !== after[i]),
          v: [yield* cpuRead(mm, a), yield* cpuRead(mm, b)],
          writable: (peekPte(mm, a).entry as { write: boolean }).write,
          cache: file.pageCache.get(0) === peekPte(mm, b).folio,
        };
      };
    });
    expect(result.r).toEqual([0, 0]);
    expect(result.moved).toEqual([true, true]);
    expect(result.v).toEqual([
      { ok: true, value: 'data' },
      { ok: true, value: 'file' },
    ]);
    expect(result.writable).toBe(true);
    expect(result.cache).toBe(true);
  });

  it('fails with -EAGAIN and restores the mapping while someone else holds a reference', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 'x');
        const f = peekPte(mm, a).folio!;
        yield* f.get('pin');
        const r = yield* migratePage(mm, a);
        const entry = peekPte(mm, a).entry;
        yield* f.putTestZero('unpin');
        return { r, entry, same: peekPte(mm, a).folio === f, v: yield* cpuRead(mm, a) };
      };
    });
    expect(result.r).toBe(-EAGAIN);
    expect(result.entry).toMatchObject({ kind: 'present', write: true });
    expect(result.same).toBe(true);
    expect(result.v).toEqual({ ok: true, value: 'x' });
  });

  it('a CPU access racing with migration waits on the migration entry and sees the data (all interleavings)', () => {
    let sawWait = false;
    let runs = 0;
    const program = makeProgram('migrate-vs-access', ({ sim, sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      const setup = sim.spawn('setup', function* () {
        yield* cpuWrite(mm, a, 'v1');
      });
      let read: UserAccess | null = null;
      let written: UserAccess | null = null;
      const waitFor = (t: Thread) => sim.join(t);
      sim.spawn('CPU0 (migrate)', function* () {
        yield* waitFor(setup);
        return yield* migratePage(mm, a);
      });
      const reader = sim.spawn('CPU1 (access)', function* () {
        yield* waitFor(setup);
        read = yield* cpuRead(mm, a);
        written = yield* cpuWrite(mm, a, 'v2');
      });
      return {
        step: () => {
          if (reader.pending.kind === 'folio_wait_locked') sawWait = true;
        },
        check: () => {
          runs++;
          if (JSON.stringify(read) !== JSON.stringify({ ok: true, value: 'v1' }))
            return `read ${JSON.stringify(read)}`;
          if (!written?.ok) return 'write failed';
          const e = peekPte(mm, a);
          if (e.entry.kind !== 'present' || e.folio?.data[0] !== 'v2')
            return `lost write: ${JSON.stringify(e.entry)}`;
          return undefined;
        },
      };
    });
    const r = exploreOk(program, { strategy: dfs(), budgets: { maxRuns: 20_000, maxTimeMs: 60_000 } });
    expect(r.exhausted).toBe(true);
    expect(runs).toBeGreaterThan(10);
    // Some interleaving had the access fault on the migration entry and sleep until it was gone.
    expect(sawWait).toBe(true);
  });
});
