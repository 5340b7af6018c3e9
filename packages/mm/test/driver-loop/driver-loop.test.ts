/**
 * The canonical driver loop, checked by exploration (toy CPU side; see integration.test.ts for the
 * address-space model's CPU operations).
 *
 * - The correct loop keeps the mirror invariant after every step and never touches a freed frame,
 *   against each CPU operation, exhaustively (DPOR).
 * - Each broken loop is found, with a replayable schedule and a race diagram.
 */
import {
  dfs,
  type ExploreResult,
  explore,
  type Failure,
  type Program,
  pct,
  random,
  renderRaceDiagram,
  replayRun,
  type StrategySpec,
} from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { noNotifierWarnings, notifierInvariants } from '../../src/notifier/index.js';
import { makeMm, setupInterval } from '../notifier/helpers.js';
import { type MirrorBug, MirrorDevice } from './mirror-device.js';
import { PAGE, ToyCpu } from './toy-cpu.js';

const ADDR = 0x10000;

export type CpuOp = 'munmap' | 'mprotect' | 'swap-out' | 'migration' | 'fork' | 'exit';
export const CPU_OPS: readonly CpuOp[] = ['munmap', 'mprotect', 'swap-out', 'migration', 'fork', 'exit'];

function* runCpuOp(cpu: ToyCpu, op: CpuOp, addrs: number[]) {
  for (const a of op === 'exit' ? [] : addrs) {
    if (op === 'munmap') yield* cpu.munmap(a);
    else if (op === 'mprotect') yield* cpu.mprotectRead(a);
    else if (op === 'swap-out') yield* cpu.swapOut(a);
    else if (op === 'migration') yield* cpu.migrate(a);
    else if (op === 'fork') yield* cpu.fork(a);
  }
  if (op === 'exit') yield* cpu.exit(addrs);
}

export interface LoopOptions {
  bug?: MirrorBug;
  op?: CpuOp;
  /** Add a thread that accesses the page through the device page table after faulting it. */
  access?: boolean;
  /** Check the mirror invariant after every step (off: only use-after-free catches a stale entry). */
  mirrorCheck?: boolean;
  /** Pages faulted (one fault thread each) and invalidated. */
  pages?: number;
}

/** One device fault (and optional access) against one CPU operation on a mapped, writable page. */
export function loopProgram(opts: LoopOptions = {}): Program {
  const bug = opts.bug ?? 'none';
  const op = opts.op ?? 'munmap';
  const pages = opts.pages ?? 1;
  return {
    name: `driver-loop ${bug} vs ${op}${opts.access ? ' +access' : ''}`,
    setup(sim) {
      const mm = makeMm(sim);
      const cpu = new ToyCpu(sim, mm);
      const addrs = Array.from({ length: pages }, (_, i) => ADDR + i * PAGE);
      for (const a of addrs) cpu.map(a);
      const dev = new MirrorDevice(sim, mm, cpu, bug);
      setupInterval(mm, dev.sub, ADDR, pages * PAGE, dev.ops);
      for (const a of addrs) {
        sim.spawn(`device fault 0x${a.toString(16)}`, function* () {
          yield* dev.fault(a, true);
          if (opts.access) yield* dev.access(a);
        });
      }
      sim.spawn(`cpu ${op}`, function* () {
        yield* runCpuOp(cpu, op, addrs);
      });
      const invariant: Record<string, () => string | undefined | boolean | void> = {
        ...notifierInvariants(mm),
        warnings: noNotifierWarnings(sim),
      };
      if (opts.mirrorCheck !== false) invariant.mirror = () => dev.mirrorInvariant();
      return { invariant };
    },
  };
}

/** Asserts the failure replays to the same violation and renders a diagram naming both threads. */
function expectReplayable(program: Program, f: Failure, kind: string): string {
  expect(f.violation.kind).toBe(kind);
  expect(f.deterministic).toBe(true);
  const again = replayRun(program, f.schedule);
  expect(again.violation?.kind).toBe(kind);
  expect(again.violation?.message).toBe(f.violation.message);
  const diagram = renderRaceDiagram(f.trace);
  expect(diagram).toContain(f.violation.message);
  return diagram;
}

/** Exploration statistics, printed with HMMKIT_VERBOSE=1 (used for the report). */
function report(label: string, r: ExploreResult): void {
  if (!process.env.HMMKIT_VERBOSE) return;
  const f = r.failures[0];
  console.info(
    `${label}: ${r.strategy} ${r.endedBy} runs=${r.runs}${f ? ` found at run ${f.run + 1}, ${f.steps} steps, schedule ${f.schedule} (${f.violation.kind})` : ''} ${r.elapsedMs.toFixed(0)}ms`,
  );
}

describe('correct driver loop (exhaustive, DPOR)', () => {
  for (const op of CPU_OPS) {
    it(`keeps the mirror invariant and never touches a freed frame against ${op}`, () => {
      const program = loopProgram({ op, access: true });
      const r = explore(program, { strategy: dfs(), budgets: { maxRuns: 50_000, maxTimeMs: 20_000 } });
      report(`correct vs ${op}`, r);
      if (r.failures[0]) expect.fail(renderRaceDiagram(r.failures[0].trace));
      expect(r.exhausted).toBe(true);
    });
  }

  it('two pages, two fault threads, against munmap and migration (PCT sample)', () => {
    for (const op of ['munmap', 'migration'] as const) {
      const program = loopProgram({ op, pages: 2, access: true });
      const r = explore(program, {
        strategy: pct({ depth: 3, seed: 7 }),
        budgets: { maxRuns: 1500, maxTimeMs: 10_000 },
      });
      report(`correct 2 pages vs ${op}`, r);
      if (r.failures[0]) expect.fail(renderRaceDiagram(r.failures[0].trace));
    }
  });
});

const RACE_BUGS: readonly MirrorBug[] = [
  'set-seq-outside-lock',
  'retry-before-lock',
  'program-before-retry',
  'no-clear',
];

describe('broken driver loops are caught', () => {
  const strategies: [string, StrategySpec, number][] = [
    ['dfs', dfs(), 50_000],
    ['pct', pct({ depth: 3, seed: 1 }), 5_000],
    ['random', random(1), 5_000],
  ];

  for (const bug of RACE_BUGS) {
    for (const [name, strategy, maxRuns] of strategies) {
      it(`${bug}: mirror invariant broken, found by ${name}, replayable`, () => {
        const program = loopProgram({ bug, op: 'munmap' });
        const r = explore(program, { strategy, budgets: { maxRuns, maxTimeMs: 20_000 } });
        report(`${bug} (mirror)`, r);
        expect(r.failures.length).toBe(1);
        const f = r.failures[0]!;
        expect(f.violation.message).toMatch(/^mirror: device maps 0x10000/);
        const diagram = expectReplayable(program, f, 'assertion');
        expect(diagram).toContain('device fault 0x10000');
        expect(diagram).toContain('cpu munmap');
      });
    }

    it(`${bug}: without the mirror check the device reads the freed frame (use-after-free), found by dfs`, () => {
      const program = loopProgram({ bug, op: 'munmap', access: true, mirrorCheck: false });
      const r = explore(program, { strategy: dfs(), budgets: { maxRuns: 50_000, maxTimeMs: 20_000 } });
      report(`${bug} (uaf)`, r);
      expect(r.failures.length).toBe(1);
      const diagram = expectReplayable(program, r.failures[0]!, 'use-after-free');
      expect(diagram).toContain('device_dma(frame0)');
    });
  }

  it('a callback that allocates with GFP_KERNEL is reported (alloc-in-forbidden-context)', () => {
    for (const [name, strategy] of [
      ['dfs', dfs()],
      ['pct', pct({ seed: 1 })],
    ] as const) {
      const program = loopProgram({ bug: 'gfp-kernel-in-callback', op: 'swap-out' });
      const r = explore(program, { strategy, budgets: { maxRuns: 1000 } });
      report(`gfp-kernel-in-callback (${name})`, r);
      const diagram = expectReplayable(program, r.failures[0]!, 'alloc-in-forbidden-context');
      expect(diagram).toContain('kmalloc(64, GFP_KERNEL)');
    }
  });

  it('a callback that removes its own notifier is reported (deadlock)', () => {
    for (const [name, strategy] of [
      ['dfs', dfs()],
      ['pct', pct({ seed: 1 })],
    ] as const) {
      const program = loopProgram({ bug: 'remove-in-callback', op: 'munmap' });
      const r = explore(program, { strategy, budgets: { maxRuns: 1000 } });
      report(`remove-in-callback (${name})`, r);
      const f = r.failures[0]!;
      expectReplayable(program, f, 'deadlock');
      expect(f.violation.message).toMatch(
        /mmu_interval_notifier_remove\(\) called by cpu munmap inside an mmu notifier invalidation/,
      );
    }
  });
});
