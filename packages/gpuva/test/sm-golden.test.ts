/**
 * Golden tables beyond the DOC's fifteen cases, derived from the walk rules of gpuvm.md §3.1 and
 * §3.5–3.8: several victims, holes, keep on contiguous and non-contiguous offsets, adjacency
 * without merge, sparse (GEM-less) victims and requests, invalid ranges; then sm_unmap, madvise,
 * prefetch and bo_unmap tables, op_remap_to_unmap_range, callback errors and missing callbacks.
 */
import { EINVAL } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  applyingSteps,
  applyOpsNow,
  formatOps,
  GpuVa,
  type GpuVmInit,
  GpuvaOpType,
  gpuvaLinkNow,
  gpuvmBoObtainNow,
  gpuvmBoUnmapOpsCreateNow,
  gpuvmMadviseOpsCreateNow,
  gpuvmPrefetchOpsCreateNow,
  gpuvmSmMapNow,
  gpuvmSmMapOpsCreateNow,
  gpuvmSmUnmapNow,
  isErr,
  mapReq,
  opRemapToUnmapRange,
  recordingSteps,
  smMapWithNow,
  U64_MAX,
} from '../src/index.js';
import { agree, type Ent, fixture, layoutOf, mapAllForms, place, req, unmapAllForms } from './helpers.js';

const A = 'A' as const;
const B = 'B' as const;

interface Row {
  id: string;
  existing: Ent[];
  request: Ent;
  ops: string[];
  layout: Ent[];
}

const mapRows: Row[] = [
  {
    id: 'several victims: prev split, whole victim, next split',
    existing: [
      [0, 2, A, 0],
      [2, 2, B, 0],
      [4, 2, A, 10],
    ],
    request: [1, 4, B, 50],
    ops: [
      'REMAP(p=[0,1)->A@0, n=-, [0,2)->A@0, keep=0)',
      'UNMAP([2,4)->B@0, keep=0)',
      'REMAP(p=-, n=[5,6)->A@11, [4,6)->A@10, keep=0)',
      'MAP([1,5)->B@50)',
    ],
    layout: [
      [0, 1, A, 0],
      [1, 4, B, 50],
      [5, 1, A, 11],
    ],
  },
  {
    id: 'keep on every victim when offsets are contiguous in the same object',
    existing: [
      [0, 2, A, 0],
      [2, 2, A, 2],
      [4, 2, A, 4],
    ],
    request: [1, 4, A, 1],
    ops: [
      'REMAP(p=[0,1)->A@0, n=-, [0,2)->A@0, keep=1)',
      'UNMAP([2,4)->A@2, keep=1)',
      'REMAP(p=-, n=[5,6)->A@5, [4,6)->A@4, keep=1)',
      'MAP([1,5)->A@1)',
    ],
    layout: [
      [0, 1, A, 0],
      [1, 4, A, 1],
      [5, 1, A, 5],
    ],
  },
  {
    id: 'keep per victim: contiguous first, non-contiguous second',
    existing: [
      [0, 2, A, 0],
      [2, 2, A, 7],
    ],
    request: [0, 4, A, 0],
    ops: ['UNMAP([0,2)->A@0, keep=1)', 'UNMAP([2,4)->A@7, keep=0)', 'MAP([0,4)->A@0)'],
    layout: [[0, 4, A, 0]],
  },
  {
    id: 'holes produce nothing; victims across holes keep when contiguous',
    existing: [
      [0, 1, A, 0],
      [3, 1, A, 3],
    ],
    request: [0, 6, A, 0],
    ops: ['UNMAP([0,1)->A@0, keep=1)', 'UNMAP([3,4)->A@3, keep=1)', 'MAP([0,6)->A@0)'],
    layout: [[0, 6, A, 0]],
  },
  {
    id: 'request entirely inside a hole: only the MAP',
    existing: [
      [0, 1, A, 0],
      [5, 1, A, 5],
    ],
    request: [2, 2, B, 0],
    ops: ['MAP([2,4)->B@0)'],
    layout: [
      [0, 1, A, 0],
      [2, 2, B, 0],
      [5, 1, A, 5],
    ],
  },
  {
    id: 'adjacent contiguous neighbour on the left is not merged',
    existing: [[0, 2, A, 0]],
    request: [2, 2, A, 2],
    ops: ['MAP([2,4)->A@2)'],
    layout: [
      [0, 2, A, 0],
      [2, 2, A, 2],
    ],
  },
  {
    id: 'contiguous neighbours on both sides are not merged',
    existing: [
      [0, 2, A, 0],
      [4, 2, A, 4],
    ],
    request: [2, 2, A, 2],
    ops: ['MAP([2,4)->A@2)'],
    layout: [
      [0, 2, A, 0],
      [2, 2, A, 2],
      [4, 2, A, 4],
    ],
  },
  {
    id: 'sparse victim split by a GEM request: offsets tracked for the pieces',
    existing: [[0, 4, null, 0]],
    request: [1, 1, A, 0],
    ops: ['REMAP(p=[0,1)->-@0, n=[2,4)->-@2, [0,4)->-@0, keep=0)', 'MAP([1,2)->A@0)'],
    layout: [
      [0, 1, null, 0],
      [1, 1, A, 0],
      [2, 2, null, 2],
    ],
  },
  {
    id: 'identical sparse request over a sparse victim: never keep',
    existing: [[0, 2, null, 0]],
    request: [0, 2, null, 0],
    ops: ['UNMAP([0,2)->-@0, keep=0)', 'MAP([0,2)->-@0)'],
    layout: [[0, 2, null, 0]],
  },
  {
    id: 'sparse request over a GEM victim: keep=0',
    existing: [[0, 2, A, 0]],
    request: [0, 2, null, 0],
    ops: ['UNMAP([0,2)->A@0, keep=0)', 'MAP([0,2)->-@0)'],
    layout: [[0, 2, null, 0]],
  },
  {
    id: 'GEM request over the tail of a sparse victim (offset 5 kept by prev)',
    existing: [[0, 4, null, 5]],
    request: [2, 4, A, 0],
    ops: ['REMAP(p=[0,2)->-@5, n=-, [0,4)->-@5, keep=0)', 'MAP([2,6)->A@0)'],
    layout: [
      [0, 2, null, 5],
      [2, 4, A, 0],
    ],
  },
  {
    id: 'request starts on a victim, ends inside the third (next piece offset moves)',
    existing: [
      [0, 2, A, 0],
      [2, 2, A, 2],
      [4, 4, B, 0],
    ],
    request: [0, 6, A, 0],
    ops: [
      'UNMAP([0,2)->A@0, keep=1)',
      'UNMAP([2,4)->A@2, keep=1)',
      'REMAP(p=-, n=[6,8)->B@2, [4,8)->B@0, keep=0)',
      'MAP([0,6)->A@0)',
    ],
    layout: [
      [0, 6, A, 0],
      [6, 2, B, 2],
    ],
  },
  {
    id: 'victim after the request start, same object, contiguous at its own address',
    existing: [[3, 2, A, 13]],
    request: [0, 4, A, 10],
    ops: ['REMAP(p=-, n=[4,5)->A@14, [3,5)->A@13, keep=1)', 'MAP([0,4)->A@10)'],
    layout: [
      [0, 4, A, 10],
      [4, 1, A, 14],
    ],
  },
  {
    id: 'request up to the window end is valid',
    existing: [[1020, 4, A, 0]],
    request: [1022, 2, B, 0],
    ops: ['REMAP(p=[1020,1022)->A@0, n=-, [1020,1024)->A@0, keep=0)', 'MAP([1022,1024)->B@0)'],
    layout: [
      [1020, 2, A, 0],
      [1022, 2, B, 0],
    ],
  },
];

describe('sm_map: own golden table (§3.1 rules), all three forms', () => {
  it.each(mapRows)('$id', (r) => {
    const res = agree(mapAllForms(r.existing, r.request));
    expect(res.ret).toBe(0);
    expect(res.ops).toEqual(r.ops);
    expect(res.layout).toBe(layoutOf(r.layout));
  });

  const invalid: [string, Ent, Partial<GpuVmInit>][] = [
    ['beyond the window end', [1023, 2, A, 0], {}],
    ['below the window start', [0, 4, A, 0], { start: 16, range: 1000 }],
    ['overflowing the address word', [U64_MAX, 1, A, 0], {}],
    ['overlapping the reserved node at its start', [95, 10, A, 0], { reserveOffset: 100, reserveRange: 20 }],
    ['overlapping the reserved node at its end', [119, 3, A, 0], { reserveOffset: 100, reserveRange: 20 }],
    ['inside the reserved node', [105, 1, A, 0], { reserveOffset: 100, reserveRange: 20 }],
  ];
  it.each(invalid)('invalid request (%s): -EINVAL, no step', (_name, request, init) => {
    const res = agree(mapAllForms([[20, 2, A, 0]], request, init));
    expect(res.ret).toBe(-EINVAL);
    expect(res.ops).toEqual([]);
  });

  it('touching the reserved node without overlapping it is valid', () => {
    const res = agree(mapAllForms([], [96, 4, A, 0], { reserveOffset: 100, reserveRange: 20 }));
    expect(res.ops).toEqual(['MAP([96,100)->A@0)']);
    const res2 = agree(mapAllForms([], [120, 4, A, 0], { reserveOffset: 100, reserveRange: 20 }));
    expect(res2.ops).toEqual(['MAP([120,124)->A@0)']);
  });

  it('zero-length request (upstream quirk, non-normative): a straddler is split and a zero-length MAP emitted', () => {
    const res = agree(mapAllForms([[0, 4, A, 0]], [2, 0, B, 0]));
    expect(res.ops).toEqual(['REMAP(p=[0,2)->A@0, n=[2,4)->A@2, [0,4)->A@0, keep=0)', 'MAP([2,2)->B@0)']);
    // The model refuses to insert the zero-length va that upstream would insert (recorded, not thrown).
    expect(res.layout).toBe(
      layoutOf([
        [0, 2, A, 0],
        [2, 2, A, 2],
      ]),
    );
    const f = fixture();
    place(f, [[4, 4, A, 0]]);
    const ops = gpuvmSmMapOpsCreateNow(f.vm, mapReq(4, 0, f.objs.B, 0));
    expect(isErr(ops) ? ops : formatOps(ops)).toEqual(['MAP([4,4)->B@0)']);
    applyOpsNow(f.vm, isErr(ops) ? [] : ops);
    expect(f.vm.silentFailures.length).toBe(1);
  });
});

describe('sm_map callbacks', () => {
  it('a non-zero return at step k ends the walk after exactly k steps, without rollback', () => {
    for (let k = 1; k <= 4; k++) {
      const f = fixture();
      place(f, [
        [0, 2, A, 0],
        [2, 2, B, 0],
        [4, 2, A, 10],
      ]);
      const applying = applyingSteps(f.vm);
      let calls = 0;
      const step = (op: Parameters<typeof applying.smStepMap>[0]) => {
        calls++;
        if (calls === k) return -28;
        return applying.smStepMap(op, undefined);
      };
      const ret = smMapWithNow(
        f.vm,
        { smStepMap: step, smStepRemap: step, smStepUnmap: step },
        undefined,
        mapReq(1, 4, f.objs.C, 0),
      );
      expect(ret).toBe(-28);
      expect(calls).toBe(k);
      expect(applying.record.length).toBe(k - 1);
    }
  });

  it('drm_gpuvm_sm_map needs all three callbacks; drm_gpuvm_sm_unmap only remap and unmap', () => {
    const rec = recordingSteps();
    const f = fixture({
      ops: { vmFree: () => {}, smStepRemap: rec.smStepRemap, smStepUnmap: rec.smStepUnmap },
    });
    place(f, [[0, 4, A, 0]]);
    expect(gpuvmSmMapNow(f.vm, undefined, mapReq(1, 1, f.objs.B, 0))).toBe(-EINVAL);
    expect(rec.record).toEqual([]);
    expect(gpuvmSmUnmapNow(f.vm, undefined, 1, 1)).toBe(0);
    expect(formatOps(rec.record)).toEqual(['REMAP(p=[0,1)->A@0, n=[2,4)->A@2, [0,4)->A@0, keep=0)']);
    const g = fixture({ ops: { vmFree: () => {}, smStepMap: rec.smStepMap, smStepUnmap: rec.smStepUnmap } });
    expect(gpuvmSmUnmapNow(g.vm, undefined, 0, 1)).toBe(-EINVAL);
  });

  it('the driver private pointer reaches every step', () => {
    const seen: unknown[] = [];
    const step = (_op: unknown, priv: unknown) => {
      seen.push(priv);
      return 0;
    };
    const f = fixture({ ops: { vmFree: () => {}, smStepMap: step, smStepRemap: step, smStepUnmap: step } });
    place(f, [[0, 4, A, 0]]);
    const priv = { driver: 'ctx' };
    expect(gpuvmSmMapNow(f.vm, priv, mapReq(1, 1, f.objs.B, 0))).toBe(0);
    expect(seen).toEqual([priv, priv]);
  });
});

describe('sm_unmap table (§3.6), all three forms', () => {
  const rows: { id: string; existing: Ent[]; addr: number; range: number; ops: string[]; layout: Ent[] }[] = [
    {
      id: 'empty region: empty sequence',
      existing: [[0, 2, A, 0]],
      addr: 4,
      range: 4,
      ops: [],
      layout: [[0, 2, A, 0]],
    },
    {
      id: 'exactly one va',
      existing: [[0, 2, A, 0]],
      addr: 0,
      range: 2,
      ops: ['UNMAP([0,2)->A@0, keep=0)'],
      layout: [],
    },
    {
      id: 'inside one va: both pieces',
      existing: [[0, 8, A, 4]],
      addr: 2,
      range: 3,
      ops: ['REMAP(p=[0,2)->A@4, n=[5,8)->A@9, [0,8)->A@4, keep=0)'],
      layout: [
        [0, 2, A, 4],
        [5, 3, A, 9],
      ],
    },
    {
      id: 'several victims with holes',
      existing: [
        [0, 2, A, 0],
        [3, 2, B, 0],
        [6, 3, A, 6],
      ],
      addr: 1,
      range: 6,
      ops: [
        'REMAP(p=[0,1)->A@0, n=-, [0,2)->A@0, keep=0)',
        'UNMAP([3,5)->B@0, keep=0)',
        'REMAP(p=-, n=[7,9)->A@7, [6,9)->A@6, keep=0)',
      ],
      layout: [
        [0, 1, A, 0],
        [7, 2, A, 7],
      ],
    },
    {
      id: 'sparse victim: offsets tracked',
      existing: [[0, 4, null, 8]],
      addr: 1,
      range: 1,
      ops: ['REMAP(p=[0,1)->-@8, n=[2,4)->-@10, [0,4)->-@8, keep=0)'],
      layout: [
        [0, 1, null, 8],
        [2, 2, null, 10],
      ],
    },
    {
      id: 'adjacent vas outside the range are untouched',
      existing: [
        [0, 2, A, 0],
        [2, 2, A, 2],
        [4, 2, A, 4],
      ],
      addr: 2,
      range: 2,
      ops: ['UNMAP([2,4)->A@2, keep=0)'],
      layout: [
        [0, 2, A, 0],
        [4, 2, A, 4],
      ],
    },
  ];
  it.each(rows)('$id', (r) => {
    const res = agree(unmapAllForms(r.existing, r.addr, r.range));
    expect(res.ret).toBe(0);
    expect(res.ops).toEqual(r.ops);
    expect(res.layout).toBe(layoutOf(r.layout));
  });
  it('invalid ranges (outside the window, over the reserved node): -EINVAL, no step', () => {
    expect(agree(unmapAllForms([[0, 2, A, 0]], 1020, 8)).ret).toBe(-EINVAL);
    const r = agree(unmapAllForms([[0, 2, A, 0]], 90, 20, { reserveOffset: 100, reserveRange: 4 }));
    expect(r.ret).toBe(-EINVAL);
    expect(r.ops).toEqual([]);
  });
});

describe('madvise table (§3.7)', () => {
  const rows: { id: string; existing: Ent[]; request: Ent; ops: string[] }[] = [
    {
      id: 'request inside one va: 1 REMAP + 1 MAP',
      existing: [[0, 10, null, 0]],
      request: [2, 3, null, 0],
      ops: ['REMAP(p=[0,2)->-@0, n=[5,10)->-@5, [0,10)->-@0, keep=0)', 'MAP([2,5)->-@0)'],
    },
    {
      id: 'spanning va1..va3 with both ends inside: 2 REMAPs + 2 MAPs, middle untouched',
      existing: [
        [0, 4, null, 0],
        [4, 4, null, 0],
        [8, 4, null, 0],
      ],
      request: [2, 8, null, 0],
      ops: [
        'REMAP(p=[0,2)->-@0, n=-, [0,4)->-@0, keep=0)',
        'MAP([2,4)->-@0)',
        'REMAP(p=-, n=[10,12)->-@2, [8,12)->-@0, keep=0)',
        'MAP([8,10)->-@0)',
      ],
    },
    {
      id: 'only the start inside a va: 1 REMAP + 1 MAP',
      existing: [
        [0, 4, null, 0],
        [4, 4, null, 0],
      ],
      request: [2, 6, null, 0],
      ops: ['REMAP(p=[0,2)->-@0, n=-, [0,4)->-@0, keep=0)', 'MAP([2,4)->-@0)'],
    },
    {
      id: 'only the end inside a va: 1 REMAP + 1 MAP',
      existing: [
        [0, 4, null, 0],
        [4, 4, null, 0],
      ],
      request: [0, 6, null, 0],
      ops: ['REMAP(p=-, n=[6,8)->-@2, [4,8)->-@0, keep=0)', 'MAP([4,6)->-@0)'],
    },
    {
      id: 'both ends on existing boundaries: no ops',
      existing: [
        [0, 4, null, 0],
        [4, 4, null, 0],
      ],
      request: [0, 8, null, 0],
      ops: [],
    },
    { id: 'no vas: no ops', existing: [], request: [0, 8, null, 0], ops: [] },
    {
      id: 'GEM-backed victims are skipped',
      existing: [
        [0, 4, A, 0],
        [4, 4, null, 0],
      ],
      request: [2, 4, null, 0],
      ops: ['REMAP(p=-, n=[6,8)->-@2, [4,8)->-@0, keep=0)', 'MAP([4,6)->-@0)'],
    },
    {
      id: 'a==A, e>E: final MAP is the request (with its object and offset)',
      existing: [[0, 10, null, 0]],
      request: [0, 5, B, 7],
      ops: ['REMAP(p=-, n=[5,10)->-@5, [0,10)->-@0, keep=0)', 'MAP([0,5)->B@7)'],
    },
    {
      id: 'a<A, e==E',
      existing: [[0, 10, null, 0]],
      request: [5, 5, null, 0],
      ops: ['REMAP(p=[0,5)->-@0, n=-, [0,10)->-@0, keep=0)', 'MAP([5,10)->-@0)'],
    },
    {
      id: 'exact match: nothing',
      existing: [[0, 10, null, 0]],
      request: [0, 10, null, 0],
      ops: [],
    },
  ];
  it.each(rows)('$id', (r) => {
    const f = fixture();
    place(f, r.existing);
    const ops = gpuvmMadviseOpsCreateNow(f.vm, req(f, r.request));
    expect(isErr(ops)).toBe(false);
    if (isErr(ops)) return;
    expect(formatOps(ops)).toEqual(r.ops);
    for (const op of ops) if (op.op === GpuvaOpType.REMAP) expect(op.remap.unmap.keep).toBe(false);
  });
  it('invalid range: -EINVAL', () => {
    const f = fixture();
    expect(gpuvmMadviseOpsCreateNow(f.vm, mapReq(1020, 10))).toBe(-EINVAL);
  });
});

describe('prefetch and bo_unmap (§3.8)', () => {
  it('prefetch: every intersecting va in address order, whole vas', () => {
    const f = fixture();
    place(f, [
      [6, 2, B, 0],
      [0, 2, A, 0],
      [3, 1, null, 0],
    ]);
    expect(formatOps(gpuvmPrefetchOpsCreateNow(f.vm, 1, 6))).toEqual([
      'PREFETCH([0,2)->A@0)',
      'PREFETCH([3,4)->-@0)',
      'PREFETCH([6,8)->B@0)',
    ]);
    expect(gpuvmPrefetchOpsCreateNow(f.vm, 10, 5).length).toBe(0);
  });
  it('prefetch has no validity check: the reserved node and out-of-window ranges are accepted', () => {
    const f = fixture({ reserveOffset: 100, reserveRange: 4 });
    place(f, [[96, 4, A, 0]]);
    const ops = gpuvmPrefetchOpsCreateNow(f.vm, 98, 4);
    expect(formatOps(ops)).toEqual(['PREFETCH([96,100)->A@0)', 'PREFETCH([100,104)->-@0)']);
    expect(gpuvmPrefetchOpsCreateNow(f.vm, 2000, 10).length).toBe(0);
  });
  it('bo_unmap: link order (not address order), keep=0, whole vas', () => {
    const f = fixture();
    const [v1, v2, v3] = place(f, [
      [8, 2, A, 8],
      [0, 4, A, 0],
      [4, 2, A, 4],
    ]);
    const vmBo = gpuvmBoObtainNow(f.vm, f.objs.A);
    for (const va of [v1!, v2!, v3!]) gpuvaLinkNow(va, vmBo);
    expect(formatOps(gpuvmBoUnmapOpsCreateNow(vmBo))).toEqual([
      'UNMAP([8,10)->A@8, keep=0)',
      'UNMAP([0,4)->A@0, keep=0)',
      'UNMAP([4,6)->A@4, keep=0)',
    ]);
  });
});

describe('drm_gpuva_op_remap_to_unmap_range', () => {
  it('prev only, next only, both', () => {
    const f = fixture();
    const [va] = place(f, [[10, 10, A, 0]]);
    const unmap = { va: va!, keep: false };
    const piece = (a: number, r: number) => ({
      va: { addr: a, range: r },
      gem: { obj: f.objs.A, offset: 0 },
    });
    expect(opRemapToUnmapRange({ prev: piece(10, 3), next: null, unmap })).toEqual({ start: 13, range: 7 });
    expect(opRemapToUnmapRange({ prev: null, next: piece(16, 4), unmap })).toEqual({ start: 10, range: 6 });
    expect(opRemapToUnmapRange({ prev: piece(10, 2), next: piece(15, 5), unmap })).toEqual({
      start: 12,
      range: 3,
    });
  });
  it('matches the hole the REMAP of an sm_unmap leaves', () => {
    const f = fixture();
    place(f, [[0, 16, A, 0]]);
    const ops = gpuvmSmMapOpsCreateNow(f.vm, mapReq(5, 3, f.objs.B, 0));
    if (isErr(ops)) throw new Error('ops');
    const remap = ops.first();
    expect(remap?.op).toBe(GpuvaOpType.REMAP);
    if (remap?.op === GpuvaOpType.REMAP)
      expect(opRemapToUnmapRange(remap.remap)).toEqual({ start: 5, range: 3 });
  });
});

describe('flags are never propagated', () => {
  it('split pieces start with flags 0, even when the victim was INVALIDATED/SPARSE', () => {
    const f = fixture();
    const [va] = place(f, [[0, 8, A, 0]]);
    va!.flags = 0b111;
    const ops = gpuvmSmMapOpsCreateNow(f.vm, mapReq(2, 2, f.objs.B, 0));
    if (isErr(ops)) throw new Error('ops');
    const { inserted } = applyOpsNow(f.vm, ops, () => new GpuVa());
    expect(inserted.map((v) => v.flags)).toEqual([0, 0, 0]);
  });
});
