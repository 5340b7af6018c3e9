/**
 * CPU page-fault throughput of the address-space model (suite `mm-cpu-fault`).
 *
 * Each timed call builds a fresh simulated machine and runs one CPU thread that touches every page
 * of a 64-page anonymous mapping (the way every explored run rebuilds its program):
 *
 * - `anon read`: 64 read faults, each mapping the shared zero page;
 * - `anon write`: 64 write faults, each allocating and mapping a zeroed page;
 * - `COW write`: 64 write faults, `fork()`, then 64 write faults in the child that copy
 *   (`wp_page_copy`): 128 faults per call.
 *
 * Every group compares running the program directly (`runOnce`, the default schedule) with
 * running it through the explorer (`explore` with a random strategy, one run), which shows the
 * explorer's per-run overhead. A last group compares populating 2 MiB with 512 base-page write
 * faults against one THP fault (`do_huge_pmd_anonymous_page`), in pages per second.
 */
import { type BenchCase, runSuite } from '@hmmkit/bench-utils';
import { explore, type Program, random, runOnce } from '@hmmkit/sim';
import {
  cpuRead,
  cpuWrite,
  fork,
  type Mm,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  System,
  VM_HUGEPAGE,
} from '../src/index.js';

const SUITE = 'mm-cpu-fault';
const PAGES = 64;
const RW = PROT_READ | PROT_WRITE;

type Kind = 'read' | 'write' | 'cow';

function faultProgram(kind: Kind): Program {
  return {
    name: `fault-${kind}`,
    setup(sim) {
      const sys = new System(sim, { memoryPages: 4 * PAGES });
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGES * PAGE_SIZE, prot: RW });
      sim.spawn('CPU0', function* () {
        for (let i = 0; i < PAGES; i++) {
          if (kind === 'read') yield* cpuRead(mm, a + i * PAGE_SIZE);
          else yield* cpuWrite(mm, a + i * PAGE_SIZE, i);
        }
        if (kind === 'cow') {
          const child = (yield* fork(mm)) as Mm;
          for (let i = 0; i < PAGES; i++) yield* cpuWrite(child, a + i * PAGE_SIZE, -i);
        }
      });
    },
  };
}

function populateProgram(thp: boolean): Program {
  return {
    name: `populate-${thp ? 'thp' : '4k'}`,
    setup(sim) {
      const sys = new System(sim, { memoryPages: 1024, thp: 'madvise' });
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PMD_SIZE, prot: RW, vmFlags: thp ? VM_HUGEPAGE : 0 });
      sim.spawn('CPU0', function* () {
        if (thp) yield* cpuWrite(mm, a, 1);
        else for (let i = 0; i < PMD_SIZE / PAGE_SIZE; i++) yield* cpuWrite(mm, a + i * PAGE_SIZE, i);
      });
    },
  };
}

function direct(p: Program): () => void {
  return () => {
    const r = runOnce(p, [], { maxSteps: 1_000_000 });
    if (r.status !== 'done') throw new Error(`${p.name}: ${r.violation?.message}`);
  };
}

function viaExplorer(p: Program): () => void {
  return () => {
    const r = explore(p, { strategy: random(7), budgets: { maxRuns: 1, maxSteps: 1_000_000 } });
    if (r.failures.length) throw new Error(`${p.name}: ${r.failures[0]!.violation.message}`);
  };
}

export async function benchCpuFault(): Promise<void> {
  const cases: BenchCase[] = [];
  const groups: [Kind, string, number][] = [
    ['read', 'anon read fault', PAGES],
    ['write', 'anon write fault', PAGES],
    ['cow', 'COW write fault', 2 * PAGES],
  ];
  for (const [kind, group, ops] of groups) {
    const p = faultProgram(kind);
    cases.push({ group, name: 'runOnce (direct)', ops, unit: 'faults', fn: direct(p) });
    cases.push({
      group,
      name: 'explore (random, 1 run)',
      ops,
      unit: 'faults',
      baseline: 'runOnce (direct)',
      fn: viaExplorer(p),
    });
  }
  const pages = PMD_SIZE / PAGE_SIZE;
  cases.push({
    group: 'populate 2 MiB',
    name: '512 base-page faults',
    ops: pages,
    unit: 'pages',
    fn: direct(populateProgram(false)),
  });
  cases.push({
    group: 'populate 2 MiB',
    name: '1 THP fault',
    ops: pages,
    unit: 'pages',
    baseline: '512 base-page faults',
    fn: direct(populateProgram(true)),
  });
  await runSuite(SUITE, cases, { notes: { pagesPerCall: PAGES } });
}
