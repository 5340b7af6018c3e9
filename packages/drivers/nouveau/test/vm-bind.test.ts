import { Completion, DmaFence, type Program } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { type NouveauBo, nouveauBoEvict, nouveauGemNew } from '../src/bo.js';
import { nouveauCliFini, nouveauDrmUnload } from '../src/drm.js';
import { nouveauUvmmPageTableProblem } from '../src/uvmm.js';
import { nouveauUvmmIoctlVmBind, nouveauUvmmVmInit } from '../src/uvmm-ioctl.js';
import type { NouveauVariantName } from '../src/variants.js';
import { explore, firstFailure, world } from './helpers.js';

const P = 0x1000;

/** An async map waiting on an in-fence, then a sync partial unmap of it (a remap), then close. */
function asyncThenSync(variant: NouveauVariantName | null = null): Program {
  return {
    name: `vm_bind async map + sync remap${variant ? ` [${variant}]` : ''}`,
    setup(sim) {
      const w = world(sim, { variant });
      const inFence = new DmaFence(sim, 'in-syncobj');
      let problem: string | null = null;
      let leaked: string[] = [];
      sim.spawn('ioctl', function* () {
        expect(yield* nouveauUvmmVmInit(w.cli, 0, 0)).toBe(0);
        const bo = (yield* nouveauGemNew(sim, 'A', 4)) as NouveauBo;
        expect(
          yield* nouveauUvmmIoctlVmBind(w.cli, {
            ops: [{ op: 'map', addr: 16 * P, range: 4 * P, bo }],
            async: true,
            inSync: [inFence],
          }),
        ).toBe(0);
        bo.put();
        expect(yield* nouveauUvmmIoctlVmBind(w.cli, { ops: [{ op: 'unmap', addr: 17 * P, range: P }] })).toBe(
          0,
        );
        const uvmm = w.cli.uvmm.ptr!;
        problem = nouveauUvmmPageTableProblem(uvmm);
        yield* nouveauCliFini(w.cli);
        yield* nouveauDrmUnload(w.drm);
        leaked = [...uvmm.ledger.liveNames(), ...uvmm.base.ledger.liveNames()];
      });
      sim.spawn('producer', function* () {
        yield* inFence.signal();
      });
      return {
        properties: {
          'page table matches the VA space after the sync bind': () => problem ?? true,
          'nothing leaked': () => leaked.length === 0 || leaked.join(', '),
        },
      };
    },
  };
}

describe('VM_BIND (nouveau_uvmm + nouveau_sched)', () => {
  it('a sync bind waits behind an async one; the remap leaves the page table consistent', () => {
    const r = explore(asyncThenSync(), { budgets: { maxRuns: 300 } });
    expect(r.failures.map((f) => f.violation.message)).toEqual([]);
  });
});

describe('VM_BIND variants', () => {
  for (const [variant, kinds] of [
    ['run-job-allocates-pt', ['alloc-in-forbidden-context']],
    ['sync-bind-bypasses-queue', ['vm-bind-order', 'vm-bind-pagetable']],
    ['remap-unlink-before-link', ['use-after-free', 'refcount']],
  ] as const) {
    it(`${variant} is caught`, () => {
      const f = firstFailure(asyncThenSync(variant));
      expect(f, 'no failure found').not.toBeNull();
      expect(kinds).toContain(f!.failure.violation.kind);
      console.log(variant, f!.failure.violation.kind, f!.failure.run, f!.failure.violation.message);
    });
  }
});

describe('VM_BIND: BO eviction and sparse regions', () => {
  it('eviction waits for the bind job, then unmaps and invalidates; a later unmap skips the PTEs', () => {
    const r = explore(
      {
        name: 'evict vs bind',
        setup(sim) {
          const w = world(sim);
          const inFence = new DmaFence(sim, 'in-syncobj');
          let bo: NouveauBo | null = null;
          const bound = new Completion(sim, 'bound');
          let problem: string | null = null;
          let invalidated = false;
          sim.spawn('ioctl', function* () {
            yield* nouveauUvmmVmInit(w.cli, 0, 0);
            bo = (yield* nouveauGemNew(sim, 'A', 2)) as NouveauBo;
            yield* nouveauUvmmIoctlVmBind(w.cli, {
              ops: [{ op: 'map', addr: 16 * P, range: 2 * P, bo }],
              async: true,
              inSync: [inFence],
            });
            yield* bound.completeAll();
            yield* sim.join(evictor);
            invalidated = [...w.cli.uvmm.ptr!.base.layout()].every((e) => e.flags & 1);
            problem = nouveauUvmmPageTableProblem(w.cli.uvmm.ptr!);
            expect(
              yield* nouveauUvmmIoctlVmBind(w.cli, { ops: [{ op: 'unmap', addr: 16 * P, range: 2 * P }] }),
            ).toBe(0);
            problem ??= nouveauUvmmPageTableProblem(w.cli.uvmm.ptr!);
            bo.put();
            yield* nouveauCliFini(w.cli);
            yield* nouveauDrmUnload(w.drm);
          });
          const evictor = sim.spawn('ttm evict', function* () {
            yield* bound.wait();
            yield* nouveauBoEvict(bo!);
          });
          sim.spawn('producer', function* () {
            yield* inFence.signal();
          });
          return {
            properties: {
              'the evicted va is invalidated': () => invalidated || 'not invalidated',
              'page table matches the VA space': () => problem ?? true,
            },
          };
        },
      },
      { budgets: { maxRuns: 300 } },
    );
    expect(r.failures.map((f) => f.violation.message)).toEqual([]);
  });

  it('a new sparse region waits for a queued unmap of its range', () => {
    const order: string[] = [];
    const r = explore(
      {
        name: 'sparse map vs queued unmap',
        setup(sim) {
          order.length = 0;
          const w = world(sim);
          const inFence = new DmaFence(sim, 'in-syncobj');
          const queued = new Completion(sim, 'unmap queued');
          sim.spawn('ioctl', function* () {
            yield* nouveauUvmmVmInit(w.cli, 0, 0);
            const bo = (yield* nouveauGemNew(sim, 'A', 4)) as NouveauBo;
            yield* nouveauUvmmIoctlVmBind(w.cli, { ops: [{ op: 'map', addr: 16 * P, range: 4 * P, bo }] });
            bo.put();
            yield* nouveauUvmmIoctlVmBind(w.cli, {
              ops: [{ op: 'unmap', addr: 16 * P, range: 4 * P }],
              async: true,
              inSync: [inFence],
              outSync: [],
            });
            yield* queued.completeAll();
            expect(
              yield* nouveauUvmmIoctlVmBind(w.cli, {
                ops: [{ op: 'map', sparse: true, addr: 16 * P, range: 4 * P }],
              }),
            ).toBe(0);
            order.push('sparse mapped');
            expect(
              yield* nouveauUvmmIoctlVmBind(w.cli, {
                ops: [{ op: 'unmap', sparse: true, addr: 16 * P, range: 4 * P }],
              }),
            ).toBe(0);
            yield* nouveauCliFini(w.cli);
            yield* nouveauDrmUnload(w.drm);
          });
          sim.spawn('producer', function* () {
            yield* queued.wait();
            order.push('unmap released');
            yield* inFence.signal();
          });
          return {
            properties: {
              order: () => order.join(',') === 'unmap released,sparse mapped' || order.join(','),
            },
          };
        },
      },
      { budgets: { maxRuns: 200 } },
    );
    expect(r.failures.map((f) => f.violation.message)).toEqual([]);
  });
});
