/**
 * Two CPU threads racing, explored exhaustively (DPOR) or with PCT: page tables stay well formed
 * at every step, the accounting is exact when both are done, everything is freed after exit, and
 * nothing deadlocks.
 */
import { dfs, pct, type Thread } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  checkNoLeaks,
  cpuRead,
  cpuWrite,
  fork,
  MAP_PRIVATE,
  type Mm,
  migratePage,
  mmput,
  mprotect,
  munmap,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  swapOutPage,
  type UserAccess,
} from '../src/index.js';
import { exploreOk, makeProgram } from './helpers.js';

const RW = PROT_READ | PROT_WRITE;
const budgets = { maxRuns: 50_000, maxTimeMs: 60_000 };

describe('explored races between CPU operations', () => {
  it('munmap racing a write fault: the write lands or is SIGSEGV; no leak', () => {
    const outcomes = new Set<string>();
    const program = makeProgram('munmap-vs-write', ({ sim, sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      let w: UserAccess | null = null;
      const t0 = sim.spawn('CPU0 (munmap)', () => munmap(mm, a, PAGE_SIZE));
      const t1 = sim.spawn('CPU1 (write)', function* () {
        w = yield* cpuWrite(mm, a, 1);
      });
      sim.spawn('exit', function* () {
        yield* sim.join(t0);
        yield* sim.join(t1);
        yield* mmput(mm);
      });
      return {
        check: () => {
          outcomes.add(w!.ok ? 'written' : w!.signal);
          return checkNoLeaks(sys);
        },
      };
    });
    const r = exploreOk(program, { strategy: dfs(), budgets });
    expect(r.exhausted).toBe(true);
    expect([...outcomes].sort()).toEqual(['SIGSEGV', 'written']);
  });

  it('fork racing a write: the parent keeps its write, the child sees the old or the new value', () => {
    const seen = new Set<string>();
    const program = makeProgram('fork-vs-write', ({ sim, sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      const init = sim.spawn('init', () => cpuWrite(mm, a, 'old'));
      let child: Mm | number = 0;
      let parentView: UserAccess | null = null;
      let childView: UserAccess | null = null;
      const t0 = sim.spawn('CPU0 (fork)', function* () {
        yield* sim.join(init);
        child = yield* fork(mm);
      });
      const t1 = sim.spawn('CPU1 (write)', function* () {
        yield* sim.join(init);
        yield* cpuWrite(mm, a, 'new');
      });
      sim.spawn('check+exit', function* () {
        yield* sim.join(t0);
        yield* sim.join(t1);
        parentView = yield* cpuRead(mm, a);
        childView = yield* cpuRead(child as Mm, a);
        yield* mmput(child as Mm);
        yield* mmput(mm);
      });
      return {
        check: () => {
          if (typeof child === 'number') return 'fork failed';
          if (!parentView?.ok || parentView.value !== 'new')
            return `parent lost its write: ${JSON.stringify(parentView)}`;
          if (!childView?.ok || (childView.value !== 'old' && childView.value !== 'new'))
            return `child: ${JSON.stringify(childView)}`;
          seen.add(String(childView.value));
          return checkNoLeaks(sys);
        },
      };
    });
    const r = exploreOk(program, { strategy: dfs(), budgets });
    expect(r.exhausted).toBe(true);
    expect([...seen].sort()).toEqual(['new', 'old']);
  });

  it('swap-out racing a write to the same page: the content is never lost', () => {
    const program = makeProgram('swap-vs-write', ({ sim, sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      const init = sim.spawn('init', () => cpuWrite(mm, a, 'v1'));
      let final: UserAccess | null = null;
      const t0 = sim.spawn('kswapd', function* () {
        yield* sim.join(init);
        return yield* swapOutPage(mm, a);
      });
      const t1 = sim.spawn('CPU1 (write)', function* () {
        yield* sim.join(init);
        yield* cpuWrite(mm, a, 'v2');
      });
      sim.spawn('check', function* () {
        yield* sim.join(t0);
        yield* sim.join(t1);
        final = yield* cpuRead(mm, a);
        yield* mmput(mm);
      });
      return {
        check: () =>
          final?.ok && final.value === 'v2' ? checkNoLeaks(sys) : `read ${JSON.stringify(final)}`,
      };
    });
    const r = exploreOk(program, { strategy: dfs(), budgets });
    expect(r.exhausted).toBe(true);
  });

  it('exit racing migration and reclaim of its pages (rmap walks vs teardown)', () => {
    const program = makeProgram('exit-vs-rmap', ({ sim, sys }) => {
      const mm = sys.createMm();
      const file = sys.createFile('f', ['f0']);
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: RW });
      const b = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW, flags: MAP_PRIVATE, file });
      const init = sim.spawn('init', function* () {
        yield* cpuWrite(mm, a, 1);
        yield* cpuRead(mm, b);
      });
      const after = (t: Thread) => sim.join(t);
      sim.spawn('kcompactd', function* () {
        yield* after(init);
        yield* migratePage(mm, a);
      });
      sim.spawn('kswapd', function* () {
        yield* after(init);
        yield* swapOutPage(mm, b);
      });
      sim.spawn('exit', function* () {
        yield* after(init);
        yield* mmput(mm);
      });
      return { check: () => checkNoLeaks(sys) };
    });
    exploreOk(program, {
      strategy: pct({ depth: 3, seed: 1 }),
      budgets: { maxRuns: 1500, maxTimeMs: 60_000 },
    });
  });

  it('mprotect(PROT_READ) racing a write: the write completes before, or faults with SIGSEGV', () => {
    const outcomes = new Set<string>();
    const program = makeProgram('mprotect-vs-write', ({ sim, sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      const init = sim.spawn('init', () => cpuWrite(mm, a, 0));
      let w: UserAccess | null = null;
      let v: UserAccess | null = null;
      const t0 = sim.spawn('CPU0 (mprotect)', function* () {
        yield* sim.join(init);
        return yield* mprotect(mm, a, PAGE_SIZE, PROT_READ);
      });
      const t1 = sim.spawn('CPU1 (write)', function* () {
        yield* sim.join(init);
        w = yield* cpuWrite(mm, a, 1);
      });
      sim.spawn('check', function* () {
        yield* sim.join(t0);
        yield* sim.join(t1);
        v = yield* cpuRead(mm, a);
        yield* mmput(mm);
      });
      return {
        check: () => {
          outcomes.add(w!.ok ? 'written' : w!.signal);
          const expected = w!.ok ? 1 : 0;
          return v?.ok && v.value === expected
            ? undefined
            : `read ${JSON.stringify(v)} after ${JSON.stringify(w)}`;
        },
      };
    });
    const r = exploreOk(program, { strategy: dfs(), budgets });
    expect(r.exhausted).toBe(true);
    expect([...outcomes].sort()).toEqual(['SIGSEGV', 'written']);
  });
});
