/**
 * The canonical driver loop against the address-space model's CPU operations (munmap, mprotect,
 * swap-out, migration, fork, exit): the same mirror device as driver-loop.test.ts, the real `Mm`,
 * page tables, folios, rmap and swap.
 *
 * Every program checks, after every step: the mirror invariant, the notifier state invariants,
 * the page tables, and invariant 12 through the address-space model's `watchNotifierBrackets`
 * (every present->other or permission-reducing PTE change bracketed by start/end). The device
 * access reads the folio it maps, so a stale mapping also shows as a use-after-free.
 *
 * The spaces are explored exhaustively for munmap and mprotect within the suite's time; swap-out,
 * migration, fork and exit take 2-25 s exhaustively, so the suite samples them with PCT and
 * `HMMKIT_EXHAUSTIVE=1` explores them all.
 */
import {
  Completion,
  dfs,
  type ExploreResult,
  explore,
  type Program,
  pct,
  renderRaceDiagram,
  replayRun,
  type SimObject,
  type StrategySpec,
} from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  checkPageTables,
  cpuWrite,
  fork,
  migratePage,
  mmput,
  mprotect,
  munmap,
  PAGE_SIZE,
  PmdSlot,
  PROT_READ,
  PROT_WRITE,
  PteSlot,
  System,
  swapOutPage,
  watchNotifierBrackets,
} from '../../src/index.js';
import { noNotifierWarnings, notifierInvariants } from '../../src/notifier/index.js';
import { setupInterval } from '../notifier/helpers.js';
import { DevicePageTable, type MirrorBug, MirrorDevice } from './mirror-device.js';
import { MmCpuView } from './mm-cpu.js';

type RealOp = 'munmap' | 'mprotect' | 'swap-out' | 'migration' | 'fork' | 'exit';

function realLoopProgram(bug: MirrorBug, op: RealOp, opts: { mirrorCheck?: boolean } = {}): Program {
  return {
    name: `driver-loop (mm) ${bug} vs ${op}`,
    setup(sim) {
      const sys = new System(sim, { memoryPages: 16, swapSlots: 8 });
      watchNotifierBrackets(sim);
      const mm = sys.createMm();
      const addr = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
      const dev = new MirrorDevice(sim, mm, new MmCpuView(mm), bug);
      setupInterval(mm, dev.sub, addr, PAGE_SIZE, dev.ops);
      const populated = new Completion(sim, 'populated');
      sim.spawn(`cpu ${op}`, function* () {
        yield* cpuWrite(mm, addr, 1);
        yield* populated.completeAll();
        if (op === 'munmap') yield* munmap(mm, addr, PAGE_SIZE);
        else if (op === 'mprotect') yield* mprotect(mm, addr, PAGE_SIZE, PROT_READ);
        else if (op === 'swap-out') yield* swapOutPage(mm, addr);
        else if (op === 'migration') yield* migratePage(mm, addr);
        else if (op === 'fork') {
          const child = yield* fork(mm);
          if (typeof child !== 'number') yield* mmput(child);
        } else yield* mmput(mm);
      });
      sim.spawn('device fault', function* () {
        yield* populated.wait();
        yield* dev.fault(addr, true);
        yield* dev.access(addr);
      });
      const invariant: Record<string, () => string | undefined | boolean | void> = {
        'page tables': () => checkPageTables(sys),
        ...notifierInvariants(mm),
        warnings: noNotifierWarnings(sim),
      };
      if (opts.mirrorCheck !== false) invariant.mirror = () => dev.mirrorInvariant();
      return { invariant };
    },
  };
}

const EXHAUSTIVE = !!process.env.HMMKIT_EXHAUSTIVE;

function report(label: string, r: ExploreResult): void {
  if (!process.env.HMMKIT_VERBOSE) return;
  const f = r.failures[0];
  console.info(
    `${label}: ${r.strategy} ${r.endedBy} runs=${r.runs}${f ? ` found at run ${f.run + 1}, ${f.steps} steps, schedule ${f.schedule} (${f.violation.kind})` : ''} ${r.elapsedMs.toFixed(0)}ms`,
  );
}

describe('correct driver loop vs the address-space model', () => {
  const plan: [RealOp, StrategySpec, number][] = [
    ['munmap', dfs(), 5_000],
    ['mprotect', dfs(), 5_000],
    ['swap-out', EXHAUSTIVE ? dfs() : pct({ depth: 3, seed: 3 }), EXHAUSTIVE ? 100_000 : 250],
    ['migration', EXHAUSTIVE ? dfs() : pct({ depth: 3, seed: 3 }), EXHAUSTIVE ? 100_000 : 250],
    ['fork', EXHAUSTIVE ? dfs() : pct({ depth: 3, seed: 3 }), EXHAUSTIVE ? 100_000 : 250],
    ['exit', EXHAUSTIVE ? dfs() : pct({ depth: 3, seed: 3 }), EXHAUSTIVE ? 100_000 : 250],
  ];
  for (const [op, strategy, maxRuns] of plan) {
    it(`keeps the mirror invariant, brackets every PTE change, never touches a freed folio: ${op} (${strategy.kind})`, () => {
      const r = explore(realLoopProgram('none', op), {
        strategy,
        budgets: { maxRuns, maxTimeMs: EXHAUSTIVE ? 120_000 : 10_000, maxSteps: 5_000 },
      });
      report(`mm: correct vs ${op}`, r);
      if (r.failures[0])
        expect.fail(`${r.failures[0].violation.message}\n${renderRaceDiagram(r.failures[0].trace)}`);
      if (strategy.kind === 'dfs') expect(r.exhausted).toBe(true);
    });
  }
});

describe('broken driver loops vs the address-space model', () => {
  for (const bug of [
    'set-seq-outside-lock',
    'retry-before-lock',
    'program-before-retry',
    'no-clear',
  ] as const) {
    it(`${bug} vs munmap: caught by dfs with a replayable schedule`, () => {
      const program = realLoopProgram(bug, 'munmap');
      const r = explore(program, { strategy: dfs(), budgets: { maxRuns: 5_000, maxTimeMs: 10_000 } });
      report(`mm: ${bug} vs munmap`, r);
      const f = r.failures[0]!;
      expect(f.violation.kind).toBe('assertion');
      expect(f.violation.message).toMatch(/^mirror: device maps/);
      const again = replayRun(program, f.schedule);
      expect(again.violation?.message).toBe(f.violation.message);
      expect(renderRaceDiagram(f.trace)).toContain('cpu munmap');
    });
  }

  it('no-clear vs munmap without the mirror check: the device reads a freed folio', () => {
    const program = realLoopProgram('no-clear', 'munmap', { mirrorCheck: false });
    const r = explore(program, { strategy: dfs(), budgets: { maxRuns: 5_000, maxTimeMs: 10_000 } });
    report('mm: no-clear vs munmap (uaf)', r);
    const f = r.failures[0]!;
    expect(f.violation.kind).toBe('use-after-free');
    expect(replayRun(program, f.schedule).violation?.kind).toBe('use-after-free');
  });

  it('gfp-kernel-in-callback and remove-in-callback are caught against every operation that invalidates', () => {
    for (const op of ['munmap', 'mprotect', 'swap-out', 'migration', 'fork', 'exit'] as const) {
      const gfp = explore(realLoopProgram('gfp-kernel-in-callback', op), {
        strategy: dfs(),
        budgets: { maxRuns: 50 },
      });
      expect(gfp.failures[0]?.violation.kind).toBe('alloc-in-forbidden-context');
      const rm = explore(realLoopProgram('remove-in-callback', op), {
        strategy: dfs(),
        budgets: { maxRuns: 50 },
      });
      // Only UNMAP events make this driver remove itself; exit's RELEASE comes first (no lockdep
      // map held there), and the later UNMAP never reaches the removed subscriber.
      if (op === 'munmap') expect(rm.failures[0]?.violation.kind).toBe('deadlock');
    }
  });
});

describe('first registration racing a CPU path that invalidates without mmap_lock', () => {
  /** The device subscribes (first notifier of the mm) while reclaim or migration runs. */
  function registrationProgram(op: 'swap-out' | 'migration'): Program {
    return {
      name: `registration vs ${op}`,
      setup(sim) {
        const sys = new System(sim, { memoryPages: 16, swapSlots: 8 });
        watchNotifierBrackets(sim);
        const mm = sys.createMm();
        const addr = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
        const dev = new MirrorDevice(sim, mm, new MmCpuView(mm));
        const populated = new Completion(sim, 'populated');
        sim.spawn(`cpu ${op}`, function* () {
          yield* cpuWrite(mm, addr, 1);
          yield* populated.completeAll();
          if (op === 'swap-out') yield* swapOutPage(mm, addr);
          else yield* migratePage(mm, addr);
        });
        sim.spawn('device', function* () {
          yield* populated.wait();
          yield* dev.insert(addr, PAGE_SIZE);
          yield* dev.fault(addr, true);
        });
        return {
          invariant: {
            mirror: () => dev.mirrorInvariant(),
            'page tables': () => checkPageTables(sys),
            ...notifierInvariants(mm),
          },
          // What these invariants read that changes outside the notifier's lock: CPU and device
          // page-table entries (the notifier state only changes under subscriptions->lock).
          visible: (o: SimObject) =>
            o instanceof PteSlot || o instanceof PmdSlot || o instanceof DevicePageTable,
        };
      },
    };
  }

  it('mm_take_all_locks() takes the rmap locks, so a registration never lands inside a start/end bracket (migration, exhaustive)', () => {
    const r = explore(registrationProgram('migration'), {
      strategy: dfs(),
      budgets: { maxRuns: 20_000, maxTimeMs: 20_000 },
    });
    report('mm: registration vs migration', r);
    if (r.failures[0])
      expect.fail(`${r.failures[0].violation.message}\n${renderRaceDiagram(r.failures[0].trace)}`);
    expect(r.exhausted).toBe(true);
  });

  it('the same against reclaim (PCT sample)', () => {
    const r = explore(registrationProgram('swap-out'), {
      strategy: pct({ depth: 3, seed: 5 }),
      budgets: { maxRuns: 300 },
    });
    report('mm: registration vs swap-out', r);
    if (r.failures[0])
      expect.fail(`${r.failures[0].violation.message}\n${renderRaceDiagram(r.failures[0].trace)}`);
  });
});
