/**
 * Every SVM/dmem variant caught by an exploration (the VM_BIND ones are in vm-bind.test.ts), with
 * the kit's scenarios where the kit's library has one that reaches the mistake, and the benign
 * mutation shown harmless.
 */
import { type DriverModel, findScenario, runScenario, type Scenario } from '@hmmkit/conformance';
import { cpuRead, cpuWrite, mmput, munmap, PAGE_SIZE } from '@hmmkit/mm';
import { dfs, explore, type Program, pct, type StrategySpec } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { nouveauDriver } from '../src/driver.js';
import { nouveauChannelNew, nouveauCliFini, nouveauDrmUnload } from '../src/drm.js';
import { FAULT_ACCESS_ATOMIC, FAULT_ACCESS_READ, type NvChannel, nvGpuAccess } from '../src/gpu.js';
import { nouveauSvmmInit } from '../src/svm.js';
import {
  type NouveauMutationName,
  type NouveauVariantName,
  nouveauBenignMutations,
  nouveauVariant,
} from '../src/variants.js';
import { BASE, world } from './helpers.js';

/** The kit's driver with the benign mutations offered as variants too (for this test only). */
const withBenign: DriverModel = {
  ...nouveauDriver,
  variants: [
    ...nouveauDriver.variants,
    ...nouveauBenignMutations.map((m) => ({
      name: m.name,
      description: m.description,
      source: m.why,
      expect: ['stale-mapping'],
    })),
  ],
};

function kit(id: string, variant: string | null, strategy?: StrategySpec, runs = 600) {
  const s = findScenario(id) as Scenario;
  return runScenario(withBenign, variant, s, { ...(strategy ? { strategy } : {}), budget: { runs } });
}

/**
 * A GPU read fault racing munmap() of the page, with the invariant "the GPU maps no freed frame"
 * (the mm model frees pages inside the invalidation, so a correct driver never breaks it).
 */
function readVsMunmap(variant: NouveauMutationName | null): Program {
  return {
    name: `GPU read vs munmap${variant ? ` [${variant}]` : ''}`,
    setup(sim) {
      const w = world(sim, { variant });
      sim.runNow(() => cpuWrite(w.mm, BASE, 'A'));
      sim.runNow(() => nouveauSvmmInit(w.cli, 0, 0));
      const chan = sim.runNow(() => nouveauChannelNew(w.cli)) as NvChannel;
      const gpu = sim.spawn('warp', () => nvGpuAccess(w.sys.mem, w.drm.hw, chan, BASE, FAULT_ACCESS_READ));
      const cpu = sim.spawn('CPU0', () => munmap(w.mm, BASE, PAGE_SIZE));
      sim.spawn('teardown', function* () {
        yield* sim.join(gpu);
        yield* sim.join(cpu);
        yield* nouveauCliFini(w.cli);
        yield* nouveauDrmUnload(w.drm);
        yield* mmput(w.mm);
      });
      const mem = w.sys.mem;
      return {
        invariant: {
          'the GPU maps no freed frame': () => {
            for (const pte of w.cli.svm.vmm?.ptes.values() ?? [])
              if (pte.kind === 'pfn' && !mem.resolve(pte.frame)) return 'the GPU maps a freed frame';
            return true;
          },
        },
      };
    },
  };
}

/** A GPU atomic on a page the CPU has only read (its first attempt is always invalidated). */
function atomicAfterCpuRead(variant: NouveauVariantName | null): Program {
  return {
    name: `atomic after CPU read${variant ? ` [${variant}]` : ''}`,
    setup(sim) {
      const w = world(sim, { variant, onRetriesExhausted: 'ebusy' });
      sim.runNow(() => cpuRead(w.mm, BASE));
      sim.spawn('client', function* () {
        yield* nouveauSvmmInit(w.cli, 0, 0);
        const chan = (yield* nouveauChannelNew(w.cli)) as NvChannel;
        yield* nvGpuAccess(w.sys.mem, w.drm.hw, chan, BASE, FAULT_ACCESS_ATOMIC, 'D');
        yield* nouveauCliFini(w.cli);
        yield* nouveauDrmUnload(w.drm);
        yield* mmput(w.mm);
      });
    },
  };
}

describe('SVM and dmem variants', () => {
  it('atomic-retry-keeps-folio: the retry sleeps on its own folio lock (deadlock)', () => {
    expect(explore(atomicAfterCpuRead(null), { budgets: { maxRuns: 1 } }).failures).toEqual([]);
    const r = explore(atomicAfterCpuRead('atomic-retry-keeps-folio'), { budgets: { maxRuns: 1 } });
    const v = r.failures[0]?.violation;
    expect(nouveauVariant('atomic-retry-keeps-folio').expect).toContain(v?.kind);
    expect(v?.details?.join('\n')).toContain('folio_lock');
  });

  it('no-own-exclusive-filter: kit atomic/cpu-write reports the livelock at once', () => {
    const r = kit('atomic/cpu-write', 'no-own-exclusive-filter');
    expect(r.status).toBe('xfail');
    expect(r.failure?.kind).toBe('livelock');
    expect(r.failure?.runsToFailure).toBe(1);
  });

  it('migrate-to-ram-no-clear: kit device-migrate/cpu-read reports the stale VRAM mapping', () => {
    const r = kit('device-migrate/cpu-read', 'migrate-to-ram-no-clear');
    expect(r.status).toBe('xfail');
    expect(['stale-mapping', 'freed-frame']).toContain(r.failure?.kind);
  });

  it('mm-notifier-first: a read fault passes read_retry between the clear and the seq bump', () => {
    const r = explore(readVsMunmap('mm-notifier-first'), {
      strategy: pct({ depth: 3, seed: 0 }),
      budgets: { maxRuns: 300 },
    });
    expect(r.failures[0]?.violation.message).toContain('the GPU maps a freed frame');
  });

  it('the correct driver and set-seq-outside-lock (benign) keep the invariant', () => {
    for (const v of [null, 'set-seq-outside-lock'] as const) {
      const p = explore(readVsMunmap(v), {
        strategy: pct({ depth: 3, seed: 0 }),
        budgets: { maxRuns: 1500 },
      });
      expect(p.failures.map((f) => f.violation.message)).toEqual([]);
      const d = explore(readVsMunmap(v), {
        strategy: dfs({ preemptionBound: 2 }),
        budgets: { maxRuns: 3000 },
      });
      expect(d.failures.map((f) => f.violation.message)).toEqual([]);
      expect(d.endedBy).toBe('exhausted'); // every schedule with at most 2 preemptions
    }
    // Where the kit would look too.
    expect(kit('munmap/read', 'set-seq-outside-lock').status).toBe('pass');
  });
});
