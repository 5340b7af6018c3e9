/**
 * gpuvm.md §8 C20: allocation-failure injection at every allocation point of the op-list creators.
 * Each creator runs on a simulated thread with `allocFailures: 1`; the explorer enumerates every
 * kmalloc as a success/-ENOMEM choice. Every failing run must return -ENOMEM and leak nothing; the
 * successful run must free everything with drm_gpuva_ops_free().
 */
import { dfs, ENOMEM, explore, type Program, type Routine } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  formatOps,
  type GpuVm,
  type GpuVmQuirks,
  GpuvaOps,
  gpuvaLinkNow,
  gpuvaOpsFree,
  gpuvmBoObtainNow,
  gpuvmBoUnmapOpsCreate,
  gpuvmMadviseOpsCreate,
  gpuvmPrefetchOpsCreate,
  gpuvmSmMapOpsCreate,
  gpuvmSmUnmapOpsCreate,
  isErr,
  mapReq,
} from '../src/index.js';
import { type Fixture, fixtureIn, place } from './helpers.js';

type Creator = (f: Fixture) => Routine<GpuvaOps | number>;

const creators: Record<string, { layout: (f: Fixture) => void; create: Creator; ops: string[] }> = {
  sm_map: {
    // prev REMAP, UNMAP, next REMAP, MAP: every allocation point of drm_gpuva_sm_step().
    layout: (f) =>
      place(f, [
        [0, 4, 'A', 0],
        [4, 2, 'B', 0],
        [6, 4, 'A', 6],
      ]),
    create: (f) => gpuvmSmMapOpsCreate(f.vm, mapReq(2, 6, f.objs.C, 0)),
    ops: [
      'REMAP(p=[0,2)->A@0, n=-, [0,4)->A@0, keep=0)',
      'UNMAP([4,6)->B@0, keep=0)',
      'REMAP(p=-, n=[8,10)->A@8, [6,10)->A@6, keep=0)',
      'MAP([2,8)->C@0)',
    ],
  },
  'sm_map (one REMAP with both pieces)': {
    layout: (f) => place(f, [[0, 10, 'A', 0]]),
    create: (f) => gpuvmSmMapOpsCreate(f.vm, mapReq(2, 2, f.objs.B, 0)),
    ops: ['REMAP(p=[0,2)->A@0, n=[4,10)->A@4, [0,10)->A@0, keep=0)', 'MAP([2,4)->B@0)'],
  },
  sm_unmap: {
    layout: (f) =>
      place(f, [
        [0, 4, 'A', 0],
        [4, 2, 'B', 0],
        [6, 4, 'A', 6],
      ]),
    create: (f) => gpuvmSmUnmapOpsCreate(f.vm, 2, 6),
    ops: [
      'REMAP(p=[0,2)->A@0, n=-, [0,4)->A@0, keep=0)',
      'UNMAP([4,6)->B@0, keep=0)',
      'REMAP(p=-, n=[8,10)->A@8, [6,10)->A@6, keep=0)',
    ],
  },
  madvise: {
    layout: (f) =>
      place(f, [
        [0, 4, null, 0],
        [4, 4, null, 0],
        [8, 4, null, 0],
      ]),
    create: (f) => gpuvmMadviseOpsCreate(f.vm, mapReq(2, 8)),
    ops: [
      'REMAP(p=[0,2)->-@0, n=-, [0,4)->-@0, keep=0)',
      'MAP([2,4)->-@0)',
      'REMAP(p=-, n=[10,12)->-@2, [8,12)->-@0, keep=0)',
      'MAP([8,10)->-@0)',
    ],
  },
  prefetch: {
    layout: (f) =>
      place(f, [
        [0, 4, 'A', 0],
        [6, 4, 'B', 0],
      ]),
    create: (f) => gpuvmPrefetchOpsCreate(f.vm, 0, 10),
    ops: ['PREFETCH([0,4)->A@0)', 'PREFETCH([6,10)->B@0)'],
  },
  bo_unmap: {
    layout: (f) => {
      const vas = place(f, [
        [6, 4, 'A', 6],
        [0, 4, 'A', 0],
      ]);
      const vmBo = gpuvmBoObtainNow(f.vm, f.objs.A);
      for (const va of vas) gpuvaLinkNow(va, vmBo);
    },
    create: function* (f) {
      yield* f.vm.resv.lock(null);
      const ops = yield* gpuvmBoUnmapOpsCreate(f.objs.A.gpuva.list[0]!);
      yield* f.vm.resv.unlock();
      return ops;
    },
    ops: ['UNMAP([6,10)->A@6, keep=0)', 'UNMAP([0,4)->A@0, keep=0)'],
  },
};

function program(name: string, quirks: GpuVmQuirks = {}): { p: Program; outcomes: (string | number)[] } {
  const c = creators[name]!;
  const outcomes: (string | number)[] = [];
  const p: Program = {
    name: `${name} under allocation failure`,
    options: { allocFailures: 1 },
    setup(sim) {
      const f = fixtureIn(sim, { quirks });
      c.layout(f);
      const vm: GpuVm = f.vm;
      let result: GpuvaOps | number | undefined;
      sim.spawn('creator', function* () {
        const ops = yield* c.create(f);
        result = ops;
        if (!isErr(ops)) {
          outcomes.push(formatOps(ops).join(' | '));
          yield* gpuvaOpsFree(vm, ops);
        } else {
          outcomes.push(ops);
        }
      });
      return {
        properties: {
          '-ENOMEM or the full list': () =>
            result instanceof GpuvaOps || result === -ENOMEM || `returned ${String(result)}`,
          'nothing leaked': () => vm.ledger.live.size === 0 || `leaked: ${vm.ledger.liveNames().join(', ')}`,
        },
      };
    },
  };
  return { p, outcomes };
}

describe('op-list creators under allocation-failure injection (§8 C20)', () => {
  it.each(Object.keys(creators))('%s: every allocation point returns -ENOMEM and leaks nothing', (name) => {
    const { p, outcomes } = program(name);
    const r = explore(p, { strategy: dfs(), budgets: { maxRuns: 1000 } });
    expect(r.failures.map((f) => f.violation.message)).toEqual([]);
    expect(r.exhausted).toBe(true);
    const successes = outcomes.filter((o) => typeof o === 'string');
    expect(new Set(successes)).toEqual(new Set([creators[name]!.ops.join(' | ')]));
    const failures = outcomes.filter((o) => o === -ENOMEM).length;
    // One run per allocation point plus the run where nothing fails.
    expect(r.runs).toBe(failures + 1);
    expect(failures).toBeGreaterThanOrEqual(creators[name]!.ops.length + 1);
  });

  it('sm_map: the allocation points are the list head, each op, and each REMAP payload copy', () => {
    const { p, outcomes } = program('sm_map (one REMAP with both pieces)');
    explore(p, { strategy: dfs(), budgets: { maxRuns: 100 } });
    // head + REMAP op + unmap copy + prev copy + next copy + MAP op = 6 points, then the clean run.
    expect(outcomes.filter((o) => o === -ENOMEM).length).toBe(6);
  });

  it('upstream error path (quirk): a failing `next` copy leaks the `unmap` copy, and the leak check catches it', () => {
    const { p } = program('sm_map (one REMAP with both pieces)', { remapNextAllocLeak: true });
    const r = explore(p, { strategy: dfs(), budgets: { maxRuns: 100 }, stopOnFailure: false });
    expect(r.failures.length).toBe(1);
    expect(r.failures[0]!.violation.message).toMatch(/nothing leaked: leaked: drm_gpuva_op_unmap/);
    expect(
      r.failures[0]!.trace.events?.some((e) => e.op.label === 'drm_gpuva_op_map(next)' && e.result === null),
    ).toBe(true);
  });
});
