/**
 * Each bug variant of dmirror, caught by an exploration of a small dedicated program that drives
 * the driver through its conformance-kit instance (`dmirrorDriver.create()`): a device access
 * racing a CPU-side invalidation, with the mirror invariant and the page tables checked after
 * every step and the device's accesses checked against freed frames.
 */
import {
  checkPageTables,
  cpuWrite,
  munmap,
  notifierInvariants,
  oomReap,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  System,
} from '@hmmkit/mm';
import { Completion, explore, type Program, pct, renderRaceDiagram, type StrategySpec } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { dmirrorDriver, dmirrorVariants, mirrorViolation, STALE_MAPPING } from '../src/index.js';

type Cpu = 'munmap' | 'oom-reap';

/**
 * One device (instance 0 of the contract) on a process with `npages` written pages: the device
 * reads page 0 (faulting it in) and reads it again through its mapping, while the CPU unmaps it.
 */
export function raceProgram(variant: string | null, cpu: Cpu = 'munmap', npages = 1): Program {
  return {
    name: `dmirror ${variant ?? 'correct'}: device read vs ${cpu}`,
    setup(sim) {
      const sys = new System(sim, { memoryPages: 32, swapSlots: 4 });
      const mm = sys.createMm();
      const addr = sys.mmapSetup(mm, { len: npages * PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
      const inst = dmirrorDriver.create({ sim, system: sys, mm, variant, index: 0 });
      const populated = new Completion(sim, 'populated');
      sim.spawn('device', function* () {
        expect(yield* inst.open()).toBe(0);
        yield* populated.wait();
        yield* inst.access(addr, 'read');
        yield* inst.access(addr, 'read');
        yield* inst.close();
      });
      sim.spawn(`cpu ${cpu}`, function* () {
        for (let p = 0; p < npages; p++) yield* cpuWrite(mm, addr + p * PAGE_SIZE, 100 + p);
        yield* populated.completeAll();
        if (cpu === 'munmap') yield* munmap(mm, addr, npages * PAGE_SIZE);
        else yield* oomReap(mm);
      });
      return {
        invariant: {
          mirror: () => {
            const m = mirrorViolation(mm, inst.mappings(), 'device');
            if (m) sim.fail(STALE_MAPPING, m);
            return undefined;
          },
          'page tables': () => checkPageTables(sys),
          ...notifierInvariants(mm),
        },
      };
    },
  };
}

/**
 * A device read racing a migration to device memory by the same open file (two threads of one
 * instance): the fault samples the source page, the migration replaces it and frees it, and the
 * fault then stores its sample.
 */
export function migrateRaceProgram(variant: string | null): Program {
  return {
    name: `dmirror ${variant ?? 'correct'}: device read vs MIGRATE_TO_DEV of the same file`,
    setup(sim) {
      const sys = new System(sim, { memoryPages: 32 });
      const mm = sys.createMm();
      const addr = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
      const inst = dmirrorDriver.create({ sim, system: sys, mm, variant, index: 0 });
      const ready = new Completion(sim, 'ready');
      sim.spawn('device read', function* () {
        expect(yield* inst.open()).toBe(0);
        yield* cpuWrite(mm, addr, 7);
        yield* ready.completeAll();
        yield* inst.access(addr, 'read');
        yield* inst.access(addr, 'read');
      });
      sim.spawn('device migrate', function* () {
        yield* ready.wait();
        yield* inst.migrateToDevice!(addr, 1);
      });
      return {
        invariant: {
          mirror: () => {
            const m = mirrorViolation(mm, inst.mappings(), 'device');
            if (m) sim.fail(STALE_MAPPING, m);
            return undefined;
          },
          'page tables': () => checkPageTables(sys),
        },
      };
    },
  };
}

/** PCT finds these orderings quickly; the seeds are fixed, so every run of the suite is the same. */
const STRATEGY: Partial<Record<string, StrategySpec>> = {
  'set-seq-outside-lock': pct({ depth: 5, seed: 2 }),
};

function exploreVariant(
  program: Program,
  strategy: StrategySpec = pct({ depth: 4, seed: 1 }),
  maxRuns = 3000,
) {
  return explore(program, { strategy, budgets: { maxRuns, maxTimeMs: 20_000, maxSteps: 20_000 } });
}

describe('the correct driver', () => {
  it('survives PCT schedules of a device read racing munmap', () => {
    const r = exploreVariant(raceProgram(null), pct({ depth: 4, seed: 1 }), 600);
    const f = r.failures[0];
    if (f) throw new Error(`${f.violation.kind}: ${f.violation.message}\n${renderRaceDiagram(f.trace)}`);
    expect(r.runs).toBe(600);
  });

  it('survives PCT schedules of a device read racing the OOM reaper (non-blockable: trylock)', () => {
    const r = exploreVariant(raceProgram(null, 'oom-reap'), pct({ depth: 4, seed: 1 }), 500);
    const f = r.failures[0];
    if (f) throw new Error(`${f.violation.kind}: ${f.violation.message}\n${renderRaceDiagram(f.trace)}`);
  });

  it('keeps a stale entry when a device fault races MIGRATE_TO_DEV on the same file (as test_hmm does)', () => {
    // dmirror_interval_invalidate() ignores its own MMU_NOTIFY_MIGRATE, and the migration does not
    // bump the notifier sequence either, so a fault that sampled the source page before the
    // migration passes mmu_interval_read_retry() and stores it after
    // dmirror_migrate_finalize_and_map() mapped the new page; the source page is then freed.
    const r = exploreVariant(migrateRaceProgram(null), pct({ depth: 3, seed: 1 }));
    const f = r.failures[0];
    expect(f, `no failure in ${r.runs} runs`).toBeDefined();
    expect(f!.violation.kind).toBe(STALE_MAPPING);
    expect(f!.deterministic).toBe(true);
  });
});

describe('variants', () => {
  for (const v of dmirrorVariants) {
    it(`${v.name} is caught (${v.expect.join(' | ')})`, () => {
      const r = exploreVariant(raceProgram(v.name), STRATEGY[v.name]);
      const f = r.failures[0];
      expect(f, `no failure found in ${r.runs} runs`).toBeDefined();
      expect(v.expect, f!.violation.message).toContain(f!.violation.kind);
      expect(f!.deterministic).toBe(true);
    });
  }
});

describe('benign mutations', () => {
  it('no-migrate-filter cannot livelock dmirror: it over-invalidates, and closes the migrate race', () => {
    // dmirror never migrates inside its own read_begin/read_retry window (hmm_range_fault() does
    // not fault pages owned by the caller), so its own MIGRATE events cannot starve its fault loop.
    // Without the filter they bump the sequence, which is exactly what the race above needs.
    const r = exploreVariant(migrateRaceProgram('no-migrate-filter'), pct({ depth: 3, seed: 1 }), 800);
    expect(r.failures).toEqual([]);
    const m = exploreVariant(raceProgram('no-migrate-filter'), pct({ depth: 4, seed: 1 }), 500);
    expect(m.failures).toEqual([]);
  });
});
