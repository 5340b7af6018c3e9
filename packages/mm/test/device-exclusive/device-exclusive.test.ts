import {
  type Chooser,
  dfs,
  EAGAIN,
  EBUSY,
  EFAULT,
  EOPNOTSUPP,
  explore,
  type Program,
  type Routine,
  Sim,
  Var,
} from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { makeDeviceExclusive, makeDeviceExclusiveRange } from '../../src/device-exclusive/index.js';
import {
  checkAccounting,
  checkPageTables,
  cpuRead,
  cpuWrite,
  type Folio,
  folioGetAt,
  folioMappings,
  folioPut,
  fork,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  type Mm,
  migratePage,
  mmObservers,
  mmput,
  munmap,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  peekPte,
  System,
  swapOutPage,
  VM_HUGEPAGE,
  watchNotifierBrackets,
} from '../../src/index.js';
import type { MmuNotifierRange } from '../../src/notifier/index.js';
import { exploreOk, runThread } from '../helpers.js';
import { atomicFault, HmmMirror, mirrorInvariant } from '../hmmkit-helpers.js';

const RW = PROT_READ | PROT_WRITE;
const A = 0x200000;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const OWNER = { name: 'gpu0' };

/** mmap_read_lock + make_device_exclusive + mmap_read_unlock. */
function* exclusive(mm: Mm, addr: number, owner: unknown = OWNER): Routine<Folio | number> {
  yield* mm.mmapLock.downRead();
  const r = yield* makeDeviceExclusive(mm, addr, owner);
  yield* mm.mmapLock.upRead();
  return r;
}

/** The old API over `[start, start + n pages)`. */
function* exclusiveOld(mm: Mm, start: number, n: number, pages: (Folio | null)[]): Routine<number> {
  yield* mm.mmapLock.downRead();
  const r = yield* makeDeviceExclusiveRange(mm, start, start + n * PAGE_SIZE, pages, OWNER);
  yield* mm.mmapLock.upRead();
  return r;
}

/** Unlocks and puts a folio returned to a caller. */
function* release(mm: Mm, f: Folio): Routine<void> {
  yield* f.unlock();
  yield* folioPut(mm.system.mem, f);
}

/** Records the invalidations raised on `mm` (event, owner). */
function recordEvents(sim: import('@hmmkit/sim').Sim): { event: string; owner: unknown; start: number }[] {
  const out: { event: string; owner: unknown; start: number }[] = [];
  mmObservers(sim).add({
    invalidateRangeStart(r: MmuNotifierRange) {
      out.push({ event: r.event, owner: r.owner, start: r.start });
    },
  });
  return out;
}

describe('make_device_exclusive (v6.15+)', () => {
  it('§7.19 on success the PTE is device-exclusive for that page, the folio is locked and referenced, no other PTE maps it writable (COW broken first)', () => {
    const { result } = runThread(({ sys, sim }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
      const events = recordEvents(sim);
      return function* () {
        yield* cpuWrite(mm, A, 'x');
        const child = (yield* fork(mm)) as Mm; // the page is now shared, read-only in both
        const shared = peekPte(mm, A).folio!;
        const f = (yield* exclusive(mm, A)) as Folio;
        const entry = peekPte(mm, A).entry;
        const st = {
          entry,
          sameAsShared: f === shared,
          locked: f.locked,
          refcount: f.refcount,
          mapcount: f.mapcount[0],
          otherWritable: folioMappings(sys, f).filter((m) => m.mm !== mm || m.addr !== A).length,
          events: events.filter((e) => e.event === 'MMU_NOTIFY_EXCLUSIVE').map((e) => e.owner),
          childSees: null as unknown,
        };
        yield* release(mm, f);
        st.childSees = yield* cpuRead(child, A);
        yield* mmput(child);
        return st;
      };
    });
    expect(result.entry).toMatchObject({ kind: 'device-exclusive', owner: OWNER });
    expect(result.entry).not.toHaveProperty('old');
    expect(result.sameAsShared).toBe(false); // GUP(FOLL_WRITE) broke COW: a private copy
    expect(result).toMatchObject({ locked: true, refcount: 2, mapcount: 1, otherWritable: 0 });
    expect(result.events).toEqual([OWNER]);
    expect(result.childSees).toEqual({ ok: true, value: 'x' });
  });

  it('a PMD-mapped THP is PTE-mapped first; the folio stays large and only that page becomes exclusive', () => {
    const { result } = runThread(
      ({ sys }) => {
        const mm = sys.createMm();
        sys.mmapSetup(mm, { addr: PMD_SIZE, len: PMD_SIZE, prot: RW, flags: FIXED, vmFlags: VM_HUGEPAGE });
        return function* () {
          yield* cpuWrite(mm, PMD_SIZE + 3 * PAGE_SIZE, 'in thp');
          const f = (yield* exclusive(mm, PMD_SIZE + 3 * PAGE_SIZE)) as Folio;
          const out = {
            order: f.order,
            entry: peekPte(mm, PMD_SIZE + 3 * PAGE_SIZE).entry.kind,
            neighbour: peekPte(mm, PMD_SIZE + 4 * PAGE_SIZE).entry.kind,
          };
          yield* release(mm, f);
          return { ...out, read: yield* cpuRead(mm, PMD_SIZE + 3 * PAGE_SIZE) };
        };
      },
      { memoryPages: 2048, thp: 'madvise' },
    );
    expect(result).toEqual({
      order: 9,
      entry: 'device-exclusive',
      neighbour: 'present',
      read: { ok: true, value: 'in thp' },
    });
  });

  it('errors: -EFAULT without a VMA or on a read-only VMA, -EOPNOTSUPP on a file page', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: PROT_READ, flags: FIXED });
      const file = sys.createFile('f', ['file data'], { writable: true });
      sys.mmapSetup(mm, {
        addr: A + 2 * PAGE_SIZE,
        len: PAGE_SIZE,
        prot: RW,
        flags: MAP_SHARED | MAP_FIXED,
        file,
      });
      return function* () {
        return {
          noVma: yield* exclusive(mm, A + PAGE_SIZE),
          readOnly: yield* exclusive(mm, A),
          file: yield* exclusive(mm, A + 2 * PAGE_SIZE),
        };
      };
    });
    expect(result).toEqual({ noVma: -EFAULT, readOnly: -EFAULT, file: -EOPNOTSUPP });
  });

  it('asserts mmap_lock is held (lockdep)', () => {
    expect(() =>
      runThread(({ sys }) => {
        const mm = sys.createMm();
        sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
        return () => makeDeviceExclusive(mm, A, OWNER);
      }),
    ).toThrow(/lockdep-assert/);
  });

  it('§7.20 CPU access restores the PTE under MMU_NOTIFY_CLEAR (owner NULL) before it becomes present; the owner drops its atomic mapping first (all interleavings)', () => {
    const program: Program = {
      name: 'device atomics vs CPU access',
      setup(sim) {
        const sys = new System(sim, { memoryPages: 16 });
        watchNotifierBrackets(sim);
        const mm = sys.createMm();
        sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
        const mirror = new HmmMirror(sim, mm, 'gpu', { filterOwn: true, owner: OWNER });
        const open = new Map<string, MmuNotifierRange[]>();
        let restoreOutsideClear: string | null = null;
        mmObservers(sim).add({
          invalidateRangeStart(r, t) {
            if (t) open.set(t.name, [...(open.get(t.name) ?? []), r]);
          },
          invalidateRangeEnd(r, t) {
            if (t)
              open.set(
                t.name,
                (open.get(t.name) ?? []).filter((x) => x !== r),
              );
          },
          pteChange(c) {
            if (c.old.kind !== 'device-exclusive' || c.new.kind !== 'present') return;
            const ok = (open.get(c.thread?.name ?? '') ?? []).some(
              (r) =>
                r.event === 'MMU_NOTIFY_CLEAR' && r.owner === null && r.start <= c.addr && c.addr < r.end,
            );
            if (!ok)
              restoreOutsideClear = `${c.thread?.name} restored 0x${c.addr.toString(16)} outside a CLEAR range`;
          },
        });
        let read: unknown = null;
        sim.spawn('setup', function* () {
          yield* cpuWrite(mm, A, 'x');
          yield* mirror.insert(A, PAGE_SIZE);
          sim.spawn('gpu atomic fault', () => atomicFault(mirror, A));
          sim.spawn('CPU', function* () {
            read = yield* cpuRead(mm, A);
          });
        });
        return {
          invariant: {
            'page tables': () => checkPageTables(sys),
            'no CPU access while the device holds atomics': () => mirrorInvariant(mirror),
            'restore bracketed by CLEAR': () => restoreOutsideClear ?? undefined,
          },
          properties: {
            'CPU read the data': () =>
              JSON.stringify(read) === JSON.stringify({ ok: true, value: 'x' }) || JSON.stringify(read),
            accounting: () => checkAccounting(sys),
          },
        };
      },
    };
    const r = exploreOk(program, { strategy: dfs(), budgets: { maxRuns: 20_000, maxTimeMs: 20_000 } });
    expect(r.exhausted).toBe(true);
  });

  it('§7.21 the entry keeps mapcount and reference: accounting, rss, swap-out, migration and munmap treat it as a mapping', () => {
    const { result, sys } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: 3 * PAGE_SIZE, prot: RW, flags: FIXED });
      return function* () {
        for (let i = 0; i < 3; i++) yield* cpuWrite(mm, A + i * PAGE_SIZE, `p${i}`);
        const out: Record<string, unknown> = {};
        for (let i = 0; i < 3; i++) yield* release(mm, (yield* exclusive(mm, A + i * PAGE_SIZE)) as Folio);
        out.accounting = checkAccounting(sys) ?? 'ok';
        out.rss = mm.rss.anon;
        out.swapOut = yield* swapOutPage(mm, A);
        out.afterSwap = peekPte(mm, A).entry.kind;
        out.migrate = yield* migratePage(mm, A + PAGE_SIZE);
        out.afterMigrate = peekPte(mm, A + PAGE_SIZE).entry.kind;
        out.reads = [yield* cpuRead(mm, A), yield* cpuRead(mm, A + PAGE_SIZE)];
        out.munmap = yield* munmap(mm, A + 2 * PAGE_SIZE, PAGE_SIZE);
        out.final = checkAccounting(sys) ?? 'ok';
        return out;
      };
    });
    expect(result).toEqual({
      accounting: 'ok',
      rss: 3,
      swapOut: 0,
      afterSwap: 'swap',
      migrate: 0,
      afterMigrate: 'present',
      reads: [
        { ok: true, value: 'p0' },
        { ok: true, value: 'p1' },
      ],
      munmap: 0,
      final: 'ok',
    });
    expect(sys.mem.stats().liveFolios).toBe(2);
  });

  it('fork restores the entry in the parent and copies the page; a folio locked by someone else makes fork fail (-ENOMEM)', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
      return function* () {
        yield* cpuWrite(mm, A, 'x');
        const f = (yield* exclusive(mm, A)) as Folio;
        const locked = yield* fork(mm); // the driver still holds the folio lock
        yield* release(mm, f);
        const child = (yield* fork(mm)) as Mm;
        const out = { locked, parent: peekPte(mm, A).entry.kind, child: yield* cpuRead(child, A) };
        yield* mmput(child);
        return out;
      };
    });
    expect(result).toEqual({ locked: -12, parent: 'present', child: { ok: true, value: 'x' } });
  });
});

describe('make_device_exclusive_range (old API, v5.14–v6.14)', () => {
  it('drops the mapcount (the §8.5 bug): swap-out fails with -EBUSY, migration with -EAGAIN, until a CPU access restores it (MMU_NOTIFY_EXCLUSIVE, owner NULL)', () => {
    const { result } = runThread(({ sys, sim }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: 2 * PAGE_SIZE, prot: RW, flags: FIXED });
      const events = recordEvents(sim);
      return function* () {
        yield* cpuWrite(mm, A, 'p0');
        yield* cpuWrite(mm, A + PAGE_SIZE, 'p1');
        const pages: (Folio | null)[] = [];
        const made = yield* exclusiveOld(mm, A, 2, pages);
        const st = {
          made,
          entry: peekPte(mm, A).entry,
          mapcount: pages[0]!.mapcount[0],
          refcount: pages[0]!.refcount,
          accounting: '' as unknown,
        };
        for (const p of pages) if (p) yield* release(mm, p);
        st.accounting = checkAccounting(sys) ?? 'ok';
        const swap = yield* swapOutPage(mm, A);
        const migrate = yield* migratePage(mm, A + PAGE_SIZE);
        const before = events.length;
        const read = yield* cpuRead(mm, A);
        const restore = events.slice(before).map((e) => [e.event, e.owner]);
        return { st, swap, migrate, read, restore, after: peekPte(mm, A).entry.kind };
      };
    });
    expect(result.st).toMatchObject({ made: 2, mapcount: 0, refcount: 2, accounting: 'ok' });
    expect(result.st.entry).toMatchObject({ kind: 'device-exclusive', old: { write: true } });
    expect(result.swap).toBe(-EBUSY);
    expect(result.migrate).toBe(-EAGAIN);
    expect(result.read).toEqual({ ok: true, value: 'p0' });
    expect(result.restore).toEqual([['MMU_NOTIFY_EXCLUSIVE', null]]);
    expect(result.after).toBe('present');
  });
});

/** One driver call (old or new form) racing one swap-out attempt of the same page. */
function swapRace(form: 'old' | 'new', outcomes: string[]): Program {
  return {
    name: `make_device_exclusive (${form}) vs swap-out`,
    setup(sim) {
      const sys = new System(sim, { memoryPages: 16, swapSlots: 4 });
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
      let got = 'not run';
      sim.spawn('setup', function* () {
        yield* cpuWrite(mm, A, 'x');
        sim.spawn('driver', function* () {
          if (form === 'new') {
            const r = yield* exclusive(mm, A);
            got = typeof r === 'number' ? `errno ${r}` : 'exclusive';
            if (typeof r !== 'number') yield* release(mm, r);
          } else {
            const pages: (Folio | null)[] = [];
            const n = yield* exclusiveOld(mm, A, 1, pages);
            got = n === 1 ? 'exclusive' : '-EBUSY';
            for (const p of pages) if (p) yield* release(mm, p);
          }
        });
        sim.spawn('kswapd', () => swapOutPage(mm, A));
      });
      return {
        invariant: { 'page tables': () => checkPageTables(sys) },
        properties: {
          'made exclusive': () => {
            outcomes.push(got);
            return got === 'exclusive' || got;
          },
          accounting: () => checkAccounting(sys),
        },
      };
    },
  };
}

/**
 * A driver retrying until it gets the page exclusive, racing a reclaim scanner that keeps
 * isolating and locking the folio, finding it recently referenced, and putting it back
 * (shrink_folio_list: folio_check_references() → keep), until the driver is done.
 */
function retryRace(form: 'old' | 'new', watch: { mm: Mm | null }): Program {
  return {
    name: `driver retry loop (${form}) vs reclaim scanning`,
    setup(sim) {
      const sys = new System(sim, { memoryPages: 16 });
      const mm = sys.createMm();
      watch.mm = mm;
      sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
      const done = new Var(sim, 'driver done', false);
      sim.spawn('setup', function* () {
        yield* cpuWrite(mm, A, 'x');
        sim.spawn('driver', function* () {
          for (;;) {
            if (form === 'new') {
              const r = yield* exclusive(mm, A);
              if (typeof r !== 'number') {
                yield* release(mm, r);
                break;
              }
            } else {
              const pages: (Folio | null)[] = [];
              const n = yield* exclusiveOld(mm, A, 1, pages);
              for (const p of pages) if (p) yield* release(mm, p);
              if (n === 1) break;
            }
            yield sim.relax('-EBUSY: retry');
          }
          yield* done.write(true);
        });
        sim.spawn('reclaim', function* () {
          while (!(yield* done.read())) {
            yield* mm.mmapLock.downRead();
            const got = yield* folioGetAt(mm, A);
            yield* mm.mmapLock.upRead();
            if (got) {
              if (yield* got.folio.trylock('folio_trylock'))
                yield* got.folio.unlock('folio_check_references: keep');
              yield* folioPut(sys.mem, got.folio);
            }
            yield sim.relax('next scan');
          }
        });
      });
      return { invariant: { 'page tables': () => checkPageTables(sys) } };
    },
  };
}

describe('forward progress: old (trylock, -EBUSY) vs new (folio_lock, silent retry) form (reference/core-mm.md §8.2)', () => {
  it('one concurrent swap-out makes the old form fail with -EBUSY in some interleavings; the new form succeeds in all', () => {
    const oldOutcomes: string[] = [];
    const old = explore(swapRace('old', oldOutcomes), {
      strategy: dfs(),
      budgets: { maxRuns: 20_000, maxTimeMs: 20_000 },
    });
    const newOutcomes: string[] = [];
    const fresh = exploreOk(swapRace('new', newOutcomes), {
      strategy: dfs(),
      budgets: { maxRuns: 20_000, maxTimeMs: 20_000 },
    });
    expect(fresh.exhausted).toBe(true);
    expect(old.failures[0]?.violation.message).toMatch(/made exclusive.*-EBUSY/);
    expect(newOutcomes.every((o) => o === 'exclusive')).toBe(true);
    console.log(
      `old form: -EBUSY after ${old.runs} runs (schedule ${old.failures[0]?.schedule}); new form: exclusive in all ${newOutcomes.length} interleavings`,
    );
  });

  it("a driver's retry loop livelocks against reclaim scanning with the old form and always completes with the new one", () => {
    // The same scheduling policy for both: run the driver while the reclaimer holds the folio
    // lock, the reclaimer otherwise. Every choice is one the explorer could make.
    const adversary = (watch: { mm: Mm | null }): Chooser => ({
      pick(enabled) {
        const folio = watch.mm ? peekPte(watch.mm, A).folio : null;
        const driver = enabled.find((t) => t.name === 'driver');
        const reclaim = enabled.find((t) => t.name === 'reclaim');
        if (folio?.lockedBy?.name === 'reclaim' && driver) return driver;
        return reclaim ?? enabled[0]!;
      },
      value: () => 0,
    });
    const runWith = (form: 'old' | 'new') => {
      const watch: { mm: Mm | null } = { mm: null };
      const p = retryRace(form, watch);
      return new Sim({ maxSteps: 3000 }).run(p, adversary(watch));
    };
    const old = runWith('old');
    expect(old.violation?.kind).toBe('livelock');
    const fresh = runWith('new');
    expect(fresh.status).toBe('done');
    // And the new form completes under every schedule with up to 2 preemptions, not just this one.
    const all = exploreOk(retryRace('new', { mm: null }), {
      strategy: dfs({ preemptionBound: 2 }),
      budgets: { maxRuns: 20_000, maxTimeMs: 15_000, maxSteps: 3000 },
    });
    expect(all.endedBy).toBe('exhausted');
    console.log(
      `retry loop vs reclaim scanning: old form ${old.violation?.kind} after ${old.steps} steps; new form done in ${fresh.steps} steps, and in all ${all.completedRuns} interleavings with up to 2 preemptions (${all.elapsedMs.toFixed(0)} ms)`,
    );
  });
});

describe('self-invalidation livelock (reference/core-mm.md §4.5, §8.1)', () => {
  function selfProgram(filterOwn: boolean): Program {
    return {
      name: `atomic fault loop, ${filterOwn ? 'filtering' : 'not filtering'} its own EXCLUSIVE event`,
      setup(sim) {
        const sys = new System(sim, { memoryPages: 16 });
        const mm = sys.createMm();
        sys.mmapSetup(mm, { addr: A, len: PAGE_SIZE, prot: RW, flags: FIXED });
        const mirror = new HmmMirror(sim, mm, 'gpu', { filterOwn, owner: OWNER });
        let ret: number | null = null;
        sim.spawn('gpu', function* () {
          yield* cpuWrite(mm, A, 'x');
          yield* mirror.insert(A, PAGE_SIZE);
          ret = yield* atomicFault(mirror, A, 1_000_000);
        });
        return { properties: { 'mapped for atomics': () => ret === 0 || `ret ${ret}` } };
      },
    };
  }

  it('a caller whose notifier bumps the sequence on its own MMU_NOTIFY_EXCLUSIVE never converges: livelock', () => {
    const r = explore(selfProgram(false), { strategy: dfs(), budgets: { maxSteps: 3000 } });
    expect(r.failures[0]?.violation.kind).toBe('livelock');
  });

  it('filtering (EXCLUSIVE, owner == self) as nouveau does converges', () => {
    const r = exploreOk(selfProgram(true), { strategy: dfs(), budgets: { maxSteps: 3000 } });
    expect(r.exhausted).toBe(true);
  });
});
