/** The README's example, runnable: dmirror against a racing munmap, explored. */
import { checkPageTables, cpuWrite, munmap, PAGE_SIZE, PROT_READ, PROT_WRITE, System } from '@hmmkit/mm';
import { Completion, explore, type Program, pct, renderRaceDiagram } from '@hmmkit/sim';
import { expect, it } from 'vitest';
import { dmirrorDriver, mirrorViolation, STALE_MAPPING } from '../src/index.js';

function program(variant: string | null): Program {
  return {
    name: `dmirror (${variant ?? 'correct'}) vs munmap`,
    setup(sim) {
      const sys = new System(sim, { memoryPages: 16 });
      const mm = sys.createMm();
      const addr = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
      const dev = dmirrorDriver.create({ sim, system: sys, mm, variant, index: 0 });
      const populated = new Completion(sim, 'populated');
      sim.spawn('device', function* () {
        yield* dev.open();
        yield* populated.wait();
        yield* dev.access(addr, 'read'); // faults the page in (hmm_range_fault)
        yield* dev.access(addr, 'read'); // reads it again through the device page table
        yield* dev.close();
      });
      sim.spawn('CPU', function* () {
        yield* cpuWrite(mm, addr, 42);
        yield* populated.completeAll();
        yield* munmap(mm, addr, PAGE_SIZE); // MMU_NOTIFY_UNMAP, then the page is freed
      });
      return {
        invariant: {
          // Outside an invalidation window the device maps only what the CPU maps.
          mirror: () => {
            const m = mirrorViolation(mm, dev.mappings(), 'device');
            if (m) sim.fail(STALE_MAPPING, m);
          },
          'page tables': () => checkPageTables(sys),
        },
      };
    },
  };
}

it('the correct driver survives 500 PCT schedules', () => {
  const r = explore(program(null), { strategy: pct({ depth: 4, seed: 1 }), budgets: { maxRuns: 500 } });
  expect(r.failures).toEqual([]);
});

it('a variant is caught, with a replayable schedule and a race diagram', () => {
  const r = explore(program('invalidate-no-clear'), { strategy: pct({ depth: 4, seed: 1 }) });
  const f = r.failures[0]!;
  expect([STALE_MAPPING, 'use-after-free']).toContain(f.violation.kind);
  expect(f.schedule).toMatch(/^s1:/);
  expect(renderRaceDiagram(f.trace)).toContain('xa_store');
});
