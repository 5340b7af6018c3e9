/**
 * Behaviours of upstream nouveau the model exhibits (the driver as read, no variant), each shown by
 * an exploration. See the README, "Findings". Scenarios shaped like the kit's use the kit's World
 * (its mirror, freed-frame and leak checkers).
 */
import { runScenario, type Scenario } from '@hmmkit/conformance';
import { cpuRead, cpuWrite, mmput, PAGE_SIZE } from '@hmmkit/mm';
import { DmaFence, dfs, explore, type Program, pct, random, renderRaceDiagram } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { type NouveauBo, nouveauGemNew } from '../src/bo.js';
import { nouveauDriver } from '../src/driver.js';
import { nouveauChannelNew, nouveauCliFini, nouveauDrmUnload } from '../src/drm.js';
import { FAULT_ACCESS_ATOMIC, type NvChannel, nvGpuAccess } from '../src/gpu.js';
import { nouveauSvmmBind, nouveauSvmmInit } from '../src/svm.js';
import { nouveauUvmmIoctlVmBind, nouveauUvmmVmInit } from '../src/uvmm-ioctl.js';
import { BASE, world } from './helpers.js';

const EFAULT = -14;
const P = PAGE_SIZE;

function kit(scenario: Scenario, strategy = pct({ depth: 3, seed: 0 }), runs = 600) {
  return runScenario(nouveauDriver, null, scenario, { strategy, budget: { runs } });
}

describe('F4: an atomic fault whose window saw one invalidation never succeeds', () => {
  // make_device_exclusive() breaks COW of the zero page (an MMU_NOTIFY_CLEAR on the fault's own
  // interval notifier): the first attempt fails read_retry; every later attempt must first restore
  // its own device-exclusive entry (another CLEAR, owner NULL, not filtered) and fails again.
  function atomicAfterCpuRead(): Program {
    return {
      name: 'GPU atomic on a page the CPU only read',
      setup(sim) {
        const w = world(sim, { onRetriesExhausted: 'ebusy' });
        sim.runNow(() => cpuRead(w.mm, BASE));
        let ret: number | null = null;
        let attempts = 0;
        sim.spawn('client', function* () {
          yield* nouveauSvmmInit(w.cli, 0, 0);
          const chan = (yield* nouveauChannelNew(w.cli)) as NvChannel;
          ret = (yield* nvGpuAccess(w.sys.mem, w.drm.hw, chan, BASE, FAULT_ACCESS_ATOMIC, 'D')).ret;
          attempts = w.drm.exhausted;
          yield* nouveauCliFini(w.cli);
          yield* nouveauDrmUnload(w.drm);
          yield* mmput(w.mm);
        });
        return {
          properties: {
            'the atomic succeeds': () => (ret === 0 ? true : `ret ${ret}, deadlines hit: ${attempts}`),
          },
        };
      },
    };
  }

  it('runs out of its deadline and is cancelled (channel killed), with no other thread running', () => {
    const r = explore(atomicAfterCpuRead(), { budgets: { maxRuns: 1 } });
    expect(r.failures[0]?.violation.message).toContain(`ret ${EFAULT}, deadlines hit: 1`);
  });
});

describe('F5: migrating to VRAM leaves the GPU mapping of the system page in place', () => {
  // nouveau_svmm_invalidate_range_start() skips MMU_NOTIFY_MIGRATE from its own device, and
  // nouveau_dmem_migrate_vma() clears nothing before the copy engine reads the page: a GPU write
  // through the old HOST mapping after the copy lands in the page that is then freed.
  const writeDuringMigration: Scenario = {
    id: 'device-migrate/device-write',
    title: 'the device writes a page it maps while its own migration of that page runs',
    description: 'A GPU write through the HOST mapping races SVM_BIND (migrate to VRAM) of the same page.',
    requires: ['mirror', 'migration'],
    small: true,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const mapped = w.completion('mapped');
      let wrote = -1;
      const writer = w.spawn('dev0.warp', function* () {
        yield* mapped.wait();
        wrote = (yield* d.access(p0, 'write', 'D')).ret;
      });
      w.spawn('dev0.ioctl', function* () {
        yield* cpuWrite(w.mm, p0, 'A');
        w.checkRead('dev0 read', yield* d.access(p0, 'read'), ['A']);
        yield* mapped.completeAll();
        yield* d.migrateToDevice(p0, 1);
        yield* w.sim.join(writer);
        const r = yield* cpuRead(w.mm, p0);
        if (wrote === 0 && r.ok && r.value !== 'D')
          w.fail('data-integrity', `the GPU write of D succeeded, the CPU then reads ${String(r.value)}`);
      });
    },
  };

  it('a GPU write during the copy is lost', () => {
    let r = kit(writeDuringMigration);
    if (r.status !== 'fail') r = kit(writeDuringMigration, random(1), 2000);
    expect(r.status).toBe('fail');
    expect(r.failure?.kind).toBe('data-integrity');
  });
});

describe('F6: nouveau_dmem_migrate_chunk() maps destination pages whose migration failed', () => {
  // A hole (pte_none) selected by migrate_vma_setup() is filled by a racing CPU fault before
  // migrate_vma_pages(), which then drops that entry; nouveau_pfns_map() still maps the VRAM page
  // (its PFNMAP argument was built before), and migrate_vma_finalize() frees it.
  const holeRace: Scenario = {
    id: 'device-migrate/first-touch',
    title: 'migration of an untouched page to device memory races the first CPU write',
    description: 'The hole the migration selected is filled by the CPU before migrate_vma_pages().',
    requires: ['mirror', 'migration'],
    small: true,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      w.spawn('CPU0', function* () {
        yield* cpuWrite(w.mm, p0, 'A');
      });
      w.spawn('dev0', function* () {
        yield* d.migrateToDevice(p0, 1);
      });
    },
  };

  it('the GPU is left mapping a freed VRAM page', () => {
    let r = kit(holeRace);
    if (r.status !== 'fail') r = kit(holeRace, random(1), 2000);
    expect(r.status).toBe('fail');
    expect(['freed-frame', 'stale-mapping']).toContain(r.failure?.kind);
  });
});

describe('F7: migrate_to_ram() after the client closed uses the freed svmm', () => {
  // page->zone_device_data holds a raw pointer to the svmm of the client that migrated the page;
  // nouveau_svmm_fini() frees the svmm (after an SRCU grace period) but the page stays in VRAM
  // until a CPU fault or driver unload.
  function closeThenTouch(): Program {
    return {
      name: 'client closed with pages in VRAM, then a CPU read',
      setup(sim) {
        const w = world(sim);
        sim.runNow(() => cpuWrite(w.mm, BASE, 'A'));
        sim.spawn('client', function* () {
          yield* nouveauSvmmInit(w.cli, 0, 0);
          yield* nouveauChannelNew(w.cli);
          yield* nouveauSvmmBind(w.cli, BASE, BASE + P);
          yield* nouveauCliFini(w.cli);
          const r = yield* cpuRead(w.mm, BASE);
          expect(r.ok).toBe(true);
          yield* nouveauDrmUnload(w.drm);
          yield* mmput(w.mm);
        });
      },
    };
  }

  it('the CPU fault locks a freed mutex', () => {
    const r = explore(closeThenTouch(), { budgets: { maxRuns: 50 } });
    expect(r.failures[0]?.violation.kind).toBe('use-after-free');
    expect(r.failures[0]?.violation.message).toContain('svmm');
  });
});

describe('F8: a failed VM_BIND leaves a sparse region dirty for good', () => {
  // The unwind of UNMAP_SPARSE re-inserts a region that never left the tree (the insert fails) and
  // does not clear `dirty`; the region's completion is never completed, so the next bind into it
  // waits forever in bind_validate_map_common().
  function failedUnmapSparse(): Program {
    return {
      name: 'UNMAP_SPARSE + MAP in one ioctl, then MAP',
      setup(sim) {
        const w = world(sim);
        sim.spawn('ioctl', function* () {
          yield* nouveauUvmmVmInit(w.cli, 0, 0);
          const bo = (yield* nouveauGemNew(sim, 'A', 1)) as NouveauBo;
          expect(
            yield* nouveauUvmmIoctlVmBind(w.cli, {
              ops: [{ op: 'map', sparse: true, addr: 16 * P, range: 4 * P }],
            }),
          ).toBe(0);
          // Not permitted (the uAPI doc says so): the MAP finds the region dirty: -EINVAL.
          const ret = yield* nouveauUvmmIoctlVmBind(w.cli, {
            ops: [
              { op: 'unmap', sparse: true, addr: 16 * P, range: 4 * P },
              { op: 'map', addr: 16 * P, range: P, bo },
            ],
          });
          expect(ret).toBe(-22);
          // A plain MAP into the region.
          yield* nouveauUvmmIoctlVmBind(w.cli, { ops: [{ op: 'map', addr: 17 * P, range: P, bo }] });
          bo.put();
          yield* nouveauCliFini(w.cli);
          yield* nouveauDrmUnload(w.drm);
        });
      },
    };
  }

  it('the next MAP into the region never returns', () => {
    const r = explore(failedUnmapSparse(), { budgets: { maxRuns: 20 } });
    const v = r.failures[0]?.violation;
    expect(v?.kind).toBe('deadlock');
    expect(v?.details?.join('\n')).toContain('reg->complete');
  });
});

export { DmaFence, dfs, renderRaceDiagram };
