/**
 * The fifteen canonical cases of the kernel's "Split and Merge" DOC (gpuvm.md §3.3), with the
 * results the code gives (code over DOC, §3.9), in three forms each: op list, recording callbacks,
 * and callbacks that mutate the tree during the walk. n = 100, m = 200.
 */
import { describe, expect, it } from 'vitest';
import { agree, type Ent, layoutOf, mapAllForms } from './helpers.js';

const n = 100;
const m = 200;

interface Case {
  id: string;
  existing: Ent[];
  request: Ent;
  ops: string[];
  layout: Ent[];
}

const A = 'A' as const;
const B = 'B' as const;

const cases: Case[] = [
  {
    id: '1 identical: replace, keep',
    existing: [[0, 1, A, n]],
    request: [0, 1, A, n],
    ops: ['UNMAP([0,1)->A@100, keep=1)', 'MAP([0,1)->A@100)'],
    layout: [[0, 1, A, n]],
  },
  {
    id: '2 other offset',
    existing: [[0, 1, A, n]],
    request: [0, 1, A, m],
    ops: ['UNMAP([0,1)->A@100, keep=0)', 'MAP([0,1)->A@200)'],
    layout: [[0, 1, A, m]],
  },
  {
    id: '3 other BO',
    existing: [[0, 1, A, n]],
    request: [0, 1, B, n],
    ops: ['UNMAP([0,1)->A@100, keep=0)', 'MAP([0,1)->B@100)'],
    layout: [[0, 1, B, n]],
  },
  {
    id: '4 existing is a left-aligned subset',
    existing: [[0, 1, A, n]],
    request: [0, 2, A, n],
    ops: ['UNMAP([0,1)->A@100, keep=1)', 'MAP([0,2)->A@100)'],
    layout: [[0, 2, A, n]],
  },
  {
    id: "4' other BO",
    existing: [[0, 1, A, n]],
    request: [0, 2, B, n],
    ops: ['UNMAP([0,1)->A@100, keep=0)', 'MAP([0,2)->B@100)'],
    layout: [[0, 2, B, n]],
  },
  {
    id: "4' non-contiguous offset",
    existing: [[0, 1, A, n]],
    request: [0, 2, A, m],
    ops: ['UNMAP([0,1)->A@100, keep=0)', 'MAP([0,2)->A@200)'],
    layout: [[0, 2, A, m]],
  },
  {
    id: '5 request left-aligned in existing, other BO: next piece at n+1',
    existing: [[0, 2, A, n]],
    request: [0, 1, B, n],
    ops: ['REMAP(p=-, n=[1,2)->A@101, [0,2)->A@100, keep=0)', 'MAP([0,1)->B@100)'],
    layout: [
      [0, 1, B, n],
      [1, 1, A, n + 1],
    ],
  },
  {
    id: "5' same BO, non-contiguous offset",
    existing: [[0, 2, A, n]],
    request: [0, 1, A, m],
    ops: ['REMAP(p=-, n=[1,2)->A@101, [0,2)->A@100, keep=0)', 'MAP([0,1)->A@200)'],
    layout: [
      [0, 1, A, m],
      [1, 1, A, n + 1],
    ],
  },
  {
    id: '6 existing is a superset, same BO and offset: keep',
    existing: [[0, 2, A, n]],
    request: [0, 1, A, n],
    ops: ['REMAP(p=-, n=[1,2)->A@101, [0,2)->A@100, keep=1)', 'MAP([0,1)->A@100)'],
    layout: [
      [0, 1, A, n],
      [1, 1, A, n + 1],
    ],
  },
  {
    id: '7 request right-aligned, other BO: prev keeps offset n',
    existing: [[0, 2, A, n]],
    request: [1, 1, B, m],
    ops: ['REMAP(p=[0,1)->A@100, n=-, [0,2)->A@100, keep=0)', 'MAP([1,2)->B@200)'],
    layout: [
      [0, 1, A, n],
      [1, 1, B, m],
    ],
  },
  {
    id: '8 request right-aligned, contiguous: keep',
    existing: [[0, 2, A, n]],
    request: [1, 1, A, n + 1],
    ops: ['REMAP(p=[0,1)->A@100, n=-, [0,2)->A@100, keep=1)', 'MAP([1,2)->A@101)'],
    layout: [
      [0, 1, A, n],
      [1, 1, A, n + 1],
    ],
  },
  {
    id: '9 overlap at the end, other BO',
    existing: [[0, 2, A, n]],
    request: [1, 2, B, m],
    ops: ['REMAP(p=[0,1)->A@100, n=-, [0,2)->A@100, keep=0)', 'MAP([1,3)->B@200)'],
    layout: [
      [0, 1, A, n],
      [1, 2, B, m],
    ],
  },
  {
    id: '10 overlap at the end, contiguous: keep',
    existing: [[0, 2, A, n]],
    request: [1, 2, A, n + 1],
    ops: ['REMAP(p=[0,1)->A@100, n=-, [0,2)->A@100, keep=1)', 'MAP([1,3)->A@101)'],
    layout: [
      [0, 1, A, n],
      [1, 2, A, n + 1],
    ],
  },
  {
    id: '11 centred subset, other BO: both pieces, next at n+2',
    existing: [[0, 3, A, n]],
    request: [1, 1, B, m],
    ops: ['REMAP(p=[0,1)->A@100, n=[2,3)->A@102, [0,3)->A@100, keep=0)', 'MAP([1,2)->B@200)'],
    layout: [
      [0, 1, A, n],
      [1, 1, B, m],
      [2, 1, A, n + 2],
    ],
  },
  {
    id: '12 centred contiguous subset: keep',
    existing: [[0, 3, A, n]],
    request: [1, 1, A, n + 1],
    ops: ['REMAP(p=[0,1)->A@100, n=[2,3)->A@102, [0,3)->A@100, keep=1)', 'MAP([1,2)->A@101)'],
    layout: [
      [0, 1, A, n],
      [1, 1, A, n + 1],
      [2, 1, A, n + 2],
    ],
  },
  {
    id: '13 existing is a right-aligned subset: keep',
    existing: [[1, 1, A, n + 1]],
    request: [0, 2, A, n],
    ops: ['UNMAP([1,2)->A@101, keep=1)', 'MAP([0,2)->A@100)'],
    layout: [[0, 2, A, n]],
  },
  {
    id: "13' other BO",
    existing: [[1, 1, A, n + 1]],
    request: [0, 2, B, n],
    ops: ['UNMAP([1,2)->A@101, keep=0)', 'MAP([0,2)->B@100)'],
    layout: [[0, 2, B, n]],
  },
  {
    id: "13' offset != n",
    existing: [[1, 1, A, n + 1]],
    request: [0, 2, A, m],
    ops: ['UNMAP([1,2)->A@101, keep=0)', 'MAP([0,2)->A@200)'],
    layout: [[0, 2, A, m]],
  },
  {
    id: '14 existing is a centred subset: keep',
    existing: [[1, 1, A, n + 1]],
    request: [0, 3, A, n],
    ops: ['UNMAP([1,2)->A@101, keep=1)', 'MAP([0,3)->A@100)'],
    layout: [[0, 3, A, n]],
  },
  {
    id: "14' other BO",
    existing: [[1, 1, A, n + 1]],
    request: [0, 3, B, n],
    ops: ['UNMAP([1,2)->A@101, keep=0)', 'MAP([0,3)->B@100)'],
    layout: [[0, 3, B, n]],
  },
  {
    id: "14' other offset",
    existing: [[1, 1, A, n + 1]],
    request: [0, 3, A, m],
    ops: ['UNMAP([1,2)->A@101, keep=0)', 'MAP([0,3)->A@200)'],
    layout: [[0, 3, A, m]],
  },
  {
    id: '15 overlap at the beginning, other BO: next at n+1 (DOC says n+2)',
    existing: [[1, 2, A, n]],
    request: [0, 2, B, m],
    ops: ['REMAP(p=-, n=[2,3)->A@101, [1,3)->A@100, keep=0)', 'MAP([0,2)->B@200)'],
    layout: [
      [0, 2, B, m],
      [2, 1, A, n + 1],
    ],
  },
];

describe('sm_map: the fifteen canonical cases (§3.3), code-derived, all three forms', () => {
  it.each(cases)('case $id', (c) => {
    const r = agree(mapAllForms(c.existing, c.request));
    expect(r.ret).toBe(0);
    expect(r.ops).toEqual(c.ops);
    expect(r.layout).toBe(layoutOf(c.layout));
  });

  it('covers every numbered case and every primed variant of the table', () => {
    const ids = new Set(cases.map((c) => c.id.split(' ')[0]));
    for (let i = 1; i <= 15; i++) expect(ids.has(String(i)), `case ${i}`).toBe(true);
    for (const p of ["4'", "13'", "14'"]) expect(ids.has(p), `case ${p}`).toBe(true);
  });

  it('the last op is always the request, so an identical request is never an empty sequence (§3.9.1)', () => {
    for (const c of cases) {
      const r = mapAllForms(c.existing, c.request).list;
      expect(r.ops.at(-1)).toMatch(/^MAP\(/);
      expect(r.ops.length).toBeGreaterThan(0);
    }
  });
});
