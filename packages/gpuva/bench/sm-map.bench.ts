/**
 * Benchmarks of the split/merge walk (suite `gpuva-sm-map`).
 *
 * Layout: n vas of 4 units every 8 units (`[8i, 8i+4)`), over 16 local GEM objects, for
 * n = 10^3, 10^4, 10^5, 10^6. Each request maps `[8p+2, 8p+10)` at a random p, so it always has
 * exactly two victims (a REMAP with `prev` and a REMAP with `next`) plus the MAP: the cost of one
 * request should be O(log n) for the lookup plus O(victims).
 *
 * - `ops_create n=…`: `drm_gpuvm_sm_map_ops_create()` only (the tree does not change), 1000
 *   requests per call at random positions (every lookup misses the caches at n = 10^6).
 * - `ops_create sequential n=…`: the same with p advancing by one per request, so the tree path
 *   stays cached and the comparison shows the algorithmic growth alone.
 * - `ops_create+apply n=…`: create the list and apply it with `drm_gpuva_map/remap()`, 200
 *   requests per call; the tree is put back afterwards, untimed (tinybench `overriddenDuration`).
 * - `sm_map callbacks n=…`: `drm_gpuvm_sm_map()` with callbacks that apply every step while the
 *   walk runs, 200 requests per call, restored untimed.
 * - `mixed map/unmap n=1e5`: a random stream (70% maps, 30% unmaps, lengths 1..64 at random
 *   addresses) applied for real; the layout evolves.
 *
 * Everything runs without the simulator (`...Now` variants): no allocation model, no lockdep.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchCase, resultsDir, runSuite } from '@hmmkit/bench-utils';
import { Sim } from '@hmmkit/sim';
import {
  type Applied,
  applyingSteps,
  applyOpsNow,
  GemObject,
  GpuVa,
  GpuVm,
  gpuvmSmMapOpsCreateNow,
  gpuvmSmUnmapOpsCreateNow,
  isErr,
  mapReq,
  smMapWithNow,
} from '../src/index.js';

const SUITE = 'gpuva-sm-map';
const SIZES = [1e3, 1e4, 1e5, 1e6] as const;
const STRIDE = 8;
const LEN = 4;
const CREATE_BATCH = 1000;
const APPLY_BATCH = 200;
const MIXED_BATCH = 1000;

function splitmix32(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x9e37_79b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x21f0_aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a_2d97);
    return (z ^ (z >>> 15)) >>> 0;
  };
}

interface World {
  vm: GpuVm;
  objs: GemObject[];
  n: number;
}

function build(n: number): World {
  const sim = new Sim();
  const vm = new GpuVm(sim, {
    name: `bench-${n}`,
    rObj: new GemObject(sim, 'r_obj'),
    start: 0,
    range: n * STRIDE + 1024,
    ops: { vmFree: () => {} },
  });
  const objs = Array.from({ length: 16 }, (_, i) => new GemObject(sim, `bo${i}`, { resv: vm.resv }));
  for (let i = 0; i < n; i++) {
    const ret = vm.insert(new GpuVa(i * STRIDE, LEN, objs[i & 15]!, i * STRIDE));
    if (ret) throw new Error(`insert ${i}: ${ret}`);
  }
  return { vm, objs, n };
}

/** Undoes what a list of applied requests changed, newest first (untimed). */
function revert(vm: GpuVm, applied: Applied[]): void {
  for (let i = applied.length - 1; i >= 0; i--) {
    const a = applied[i]!;
    for (const va of a.inserted) vm.remove(va);
    for (const va of a.removed) if (vm.insert(va)) throw new Error('revert failed');
  }
}

function makeCases(): BenchCase[] {
  const worlds = new Map<number, World>();
  const world = (n: number) => {
    let w = worlds.get(n);
    if (!w) {
      w = build(n);
      worlds.set(n, w);
    }
    return w;
  };
  const cases: BenchCase[] = [];
  for (const n of SIZES) {
    const rand = splitmix32(0x5eed ^ n);
    const req = () => {
      const w = world(n);
      const p = rand() % (n - 1);
      return mapReq(p * STRIDE + 2, STRIDE, w.objs[p & 15]!, 7);
    };
    cases.push({
      name: `ops_create n=${n}`,
      group: 'ops_create',
      ops: CREATE_BATCH,
      unit: 'requests',
      ...(n === SIZES[0] ? {} : { baseline: `ops_create n=${SIZES[0]}` }),
      setup: () => void world(n),
      fn: () => {
        const vm = world(n).vm;
        for (let i = 0; i < CREATE_BATCH; i++) {
          const ops = gpuvmSmMapOpsCreateNow(vm, req());
          if (isErr(ops) || ops.length !== 3) throw new Error('unexpected op list');
        }
      },
    });
    let seqP = 0;
    cases.push({
      name: `ops_create sequential n=${n}`,
      group: 'ops_create sequential',
      ops: CREATE_BATCH,
      unit: 'requests',
      ...(n === SIZES[0] ? {} : { baseline: `ops_create sequential n=${SIZES[0]}` }),
      setup: () => void world(n),
      fn: () => {
        const w = world(n);
        for (let i = 0; i < CREATE_BATCH; i++) {
          seqP = (seqP + 1) % (n - 1);
          const ops = gpuvmSmMapOpsCreateNow(w.vm, mapReq(seqP * STRIDE + 2, STRIDE, w.objs[seqP & 15]!, 7));
          if (isErr(ops) || ops.length !== 3) throw new Error('unexpected op list');
        }
      },
    });
    cases.push({
      name: `ops_create+apply n=${n}`,
      group: 'ops_create+apply',
      ops: APPLY_BATCH,
      unit: 'requests',
      ...(n === SIZES[0] ? {} : { baseline: `ops_create+apply n=${SIZES[0]}` }),
      setup: () => void world(n),
      fn: () => {
        const vm = world(n).vm;
        const t0 = performance.now();
        const applied: Applied[] = [];
        for (let i = 0; i < APPLY_BATCH; i++) {
          const ops = gpuvmSmMapOpsCreateNow(vm, req());
          if (isErr(ops)) throw new Error('unexpected error');
          applied.push(applyOpsNow(vm, ops));
        }
        const ms = performance.now() - t0;
        revert(vm, applied);
        return { overriddenDuration: ms, overriddenIterationCost: performance.now() - t0 };
      },
    });
    cases.push({
      name: `sm_map callbacks n=${n}`,
      group: 'sm_map callbacks (tree mutated in the walk)',
      ops: APPLY_BATCH,
      unit: 'requests',
      ...(n === SIZES[0] ? {} : { baseline: `sm_map callbacks n=${SIZES[0]}` }),
      setup: () => void world(n),
      fn: () => {
        const vm = world(n).vm;
        const t0 = performance.now();
        const applied: Applied[] = [];
        for (let i = 0; i < APPLY_BATCH; i++) {
          const a: Applied = { inserted: [], removed: [] };
          const steps = applyingSteps(vm, [], () => {
            const va = new GpuVa();
            a.inserted.push(va);
            return va;
          });
          const r = req();
          if (smMapWithNow(vm, steps, undefined, r)) throw new Error('sm_map failed');
          for (const op of steps.record) {
            if (op.op === 1) a.removed.push(op.remap.unmap.va);
            if (op.op === 2) a.removed.push(op.unmap.va);
          }
          applied.push(a);
        }
        const ms = performance.now() - t0;
        revert(vm, applied);
        return { overriddenDuration: ms, overriddenIterationCost: performance.now() - t0 };
      },
    });
  }
  const mixedN = 1e5;
  const mrand = splitmix32(0xabcdef);
  cases.push({
    name: `mixed map/unmap n=${mixedN}`,
    group: 'mixed stream',
    ops: MIXED_BATCH,
    unit: 'requests',
    setup: () => void world(mixedN),
    fn: () => {
      const w = world(mixedN);
      const span = mixedN * STRIDE;
      for (let i = 0; i < MIXED_BATCH; i++) {
        const addr = mrand() % span;
        const len = 1 + (mrand() % 64);
        const ops =
          mrand() % 10 < 7
            ? gpuvmSmMapOpsCreateNow(w.vm, mapReq(addr, len, w.objs[addr & 15]!, addr))
            : gpuvmSmUnmapOpsCreateNow(w.vm, addr, len);
        if (isErr(ops)) throw new Error('unexpected error');
        applyOpsNow(w.vm, ops);
      }
    },
  });
  return cases;
}

export async function benchSmMap(): Promise<void> {
  const t0 = performance.now();
  const cases = makeCases();
  const rows = await runSuite(SUITE, cases, { timeMs: 300 });
  const perRequest = (name: string) => {
    const r = rows.find((x) => x.name === name);
    return r ? r.meanMs / (cases.find((c) => c.name === name)?.ops ?? 1) : Number.NaN;
  };
  const ratios: Record<string, number> = {};
  for (const g of ['ops_create', 'ops_create sequential', 'ops_create+apply', 'sm_map callbacks']) {
    ratios[g] = Number((perRequest(`${g} n=1000000`) / perRequest(`${g} n=1000`)).toFixed(2));
  }
  const notes = {
    't(1e6)/t(1e3) per request': ratios,
    'log2(1e6)/log2(1e3)': 2,
    'linear growth would give': 1000,
    layout: 'n vas [8i, 8i+4); each request maps [8p+2, 8p+10): 2 victims (REMAP prev, REMAP next) + MAP',
    totalMs: Math.round(performance.now() - t0),
  };
  console.log('\nper-request time ratio t(10^6)/t(10^3):', ratios);
  const file = join(resultsDir, `${SUITE}.json`);
  const json = JSON.parse(readFileSync(file, 'utf8')) as { notes: Record<string, unknown> };
  json.notes = { ...json.notes, ...notes };
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
}
