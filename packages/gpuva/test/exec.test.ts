/**
 * gpuvm.md §8 part E: drm_exec and the gpuvm locking helpers, as simulated threads.
 */
import { dfs, EALREADY, ENOMEM, explore, type Program, pct, renderRaceDiagram } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  applyOpsNow,
  DrmExec,
  DrmExecFlags,
  GemObject,
  GpuVa,
  type GpuVmExec,
  GpuvaOpType,
  gpuvaOpsFree,
  gpuvmExecLock,
  gpuvmExecLockRange,
  gpuvmExecUnlock,
  gpuvmSmMapExecLock,
  gpuvmSmMapOpsCreate,
  gpuvmSmUnmapExecLock,
  gpuvmSmUnmapOpsCreate,
  isErr,
  mapReq,
} from '../src/index.js';
import { expectClean, expectViolation, fixtureIn, run1 } from './helpers.js';

describe('E32 drm_exec retry loop', () => {
  /** Two threads lock {X, Y} in opposite orders with drm_exec; wound-wait must resolve it. */
  const twoLockers: Program = {
    name: 'drm_exec ABBA',
    setup(sim) {
      const X = new GemObject(sim, 'X');
      const Y = new GemObject(sim, 'Y');
      const retries: number[] = [];
      for (const [name, order] of [
        ['CPU0', [X, Y]],
        ['CPU1', [Y, X]],
      ] as const) {
        sim.spawn(name, function* () {
          const exec = new DrmExec(sim, 0, name);
          const ret = yield* exec.untilAllLocked(() => exec.prepareArray(order, 1));
          expect(ret).toBe(0);
          expect(new Set(exec.objects)).toEqual(new Set([X, Y]));
          retries.push(exec.retries);
          yield* exec.fini();
        });
      }
      (twoLockers as { retries?: number[] }).retries = retries;
      return {
        properties: {
          'refs dropped': () => (X.refcount === 1 && Y.refcount === 1) || `X ${X.refcount} Y ${Y.refcount}`,
        },
      };
    },
  };

  it('opposite-order lockers always finish; some interleaving needs a back-off and retry (dfs)', () => {
    let sawRetry = false;
    const p: Program = {
      ...twoLockers,
      setup(sim) {
        const hooks = twoLockers.setup(sim);
        const retries = (twoLockers as { retries?: number[] }).retries!;
        return {
          ...hooks,
          properties: {
            ...(hooks as { properties: Record<string, () => boolean | string> }).properties,
            'record retries': () => {
              if (retries.some((n) => n > 0)) sawRetry = true;
              return true;
            },
          },
        };
      },
    };
    const r = explore(p, { strategy: dfs(), budgets: { maxRuns: 20_000 } });
    if (r.failures.length) throw new Error(renderRaceDiagram(r.failures[0]!.trace));
    expect(r.exhausted).toBe(true);
    expect(sawRetry).toBe(true);
  });

  it('drm_gpuvm_exec_lock: a non-contention error (-ENOMEM reserving slots) drops every lock', () => {
    const outcomes = new Set<number>();
    const p: Program = {
      name: 'exec_lock -ENOMEM',
      options: { allocFailures: 1 },
      setup(sim) {
        const f = fixtureIn(sim);
        const X = new GemObject(sim, 'X');
        const va = new GpuVa(0, 4, X, 0);
        f.vm.insert(va);
        sim.spawn('exec', function* () {
          const vmExec: GpuVmExec = {
            vm: f.vm,
            flags: 0,
            numFences: 1,
            extra: { fn: (e) => e.exec!.prepareObj(X, 1) },
          };
          const ret = yield* gpuvmExecLock(vmExec);
          outcomes.add(ret);
          if (ret === 0) yield* gpuvmExecUnlock(vmExec);
        });
        return { properties: { 'GEM refs back': () => X.refcount === 1 && f.vm.rObj.refcount === 2 } };
      },
    };
    const r = explore(p, { strategy: dfs(), budgets: { maxRuns: 100 } });
    expect(r.failures).toEqual([]);
    expect(outcomes).toEqual(new Set([0, -ENOMEM]));
  });
});

describe('E33 sm_map_exec_lock / sm_unmap_exec_lock', () => {
  it('locks the request object with fence slots and every victim object without', () => {
    const { r } = run1({}, function* (f) {
      const [X, Y, Z] = ['X', 'Y', 'Z'].map((n) => new GemObject(f.sim, n)) as [
        GemObject,
        GemObject,
        GemObject,
      ];
      f.vm.insert(new GpuVa(0, 4, X, 0));
      f.vm.insert(new GpuVa(4, 4, Y, 0));
      f.vm.insert(new GpuVa(8, 4, null, 0));
      const exec = new DrmExec(f.sim, DrmExecFlags.IGNORE_DUPLICATES);
      expect(yield* exec.untilAllLocked(() => gpuvmSmMapExecLock(f.vm, exec, 2, mapReq(2, 8, Z, 0)))).toBe(0);
      expect(exec.objects.map((o) => o.name)).toEqual(['Z', 'X', 'Y']);
      expect(Z.resv.reserved).toBe(2);
      expect(X.resv.reserved).toBe(0);
      yield* exec.fini();
      const exec2 = new DrmExec(f.sim, DrmExecFlags.IGNORE_DUPLICATES);
      expect(yield* exec2.untilAllLocked(() => gpuvmSmUnmapExecLock(f.vm, exec2, 3, 2))).toBe(0);
      expect(exec2.objects.map((o) => o.name)).toEqual(['X', 'Y']);
      yield* exec2.fini();
    });
    expectClean(r);
  });

  it('a multi-op bind locked up front covers what each op touches once earlier ops are applied', () => {
    const { r } = run1({}, function* (f) {
      const [X, Y, V, W] = ['X', 'Y', 'V', 'W'].map((n) => new GemObject(f.sim, n)) as GemObject[] as [
        GemObject,
        GemObject,
        GemObject,
        GemObject,
      ];
      f.vm.insert(new GpuVa(0, 4, X, 0));
      f.vm.insert(new GpuVa(4, 4, Y, 0));
      f.vm.insert(new GpuVa(8, 4, V, 0));
      const op1 = mapReq(2, 4, W, 0); // splits X and Y
      const op2 = { addr: 5, range: 5 }; // after op1: hits W's piece, Y's tail and V
      const exec = new DrmExec(f.sim, DrmExecFlags.IGNORE_DUPLICATES);
      const ret = yield* exec.untilAllLocked(function* () {
        const a = yield* gpuvmSmMapExecLock(f.vm, exec, 1, op1);
        if (a) return a;
        return yield* gpuvmSmUnmapExecLock(f.vm, exec, op2.addr, op2.range);
      });
      expect(ret).toBe(0);
      const locked = new Set(exec.objects);
      const touched = new Set<GemObject>();
      for (const make of [
        () => gpuvmSmMapOpsCreate(f.vm, op1),
        () => gpuvmSmUnmapOpsCreate(f.vm, op2.addr, op2.range),
      ]) {
        const ops = yield* make();
        if (isErr(ops)) throw new Error(String(ops));
        for (const op of ops) {
          const va =
            op.op === GpuvaOpType.REMAP
              ? op.remap.unmap.va
              : op.op === GpuvaOpType.UNMAP
                ? op.unmap.va
                : null;
          if (va?.gem.obj) touched.add(va.gem.obj);
          if (op.op === GpuvaOpType.MAP && op.map.gem.obj) touched.add(op.map.gem.obj);
        }
        applyOpsNow(f.vm, ops);
        yield* gpuvaOpsFree(f.vm, ops);
      }
      expect(touched.has(W)).toBe(true);
      for (const o of touched) expect(locked.has(o), o.name).toBe(true);
      yield* exec.fini();
    });
    expectClean(r);
  });
});

describe('E34 exec_lock_range', () => {
  it('takes the VM resv only when a local object is in range; a GEM-less va in range is a NULL dereference', () => {
    const { r } = run1({}, function* (f) {
      const X = new GemObject(f.sim, 'X');
      f.vm.insert(new GpuVa(0, 4, X, 0));
      f.vm.insert(new GpuVa(8, 4, f.objs.A, 0));
      const e1: GpuVmExec = { vm: f.vm, flags: 0, numFences: 0 };
      expect(yield* gpuvmExecLockRange(e1, 0, 6)).toBe(0);
      expect(e1.exec!.objects.map((o) => o.name)).toEqual(['X']);
      yield* gpuvmExecUnlock(e1);
      const e2: GpuVmExec = { vm: f.vm, flags: 0, numFences: 0 };
      expect(yield* gpuvmExecLockRange(e2, 0, 12)).toBe(0);
      expect(e2.exec!.objects.map((o) => o.name)).toEqual(['X', 'A']);
      expect(e2.exec!.objects[1]!.resv).toBe(f.vm.resv);
      yield* gpuvmExecUnlock(e2);
    });
    expectClean(r);
    const bad = run1({}, function* (f) {
      f.vm.insert(new GpuVa(0, 4, null, 0));
      yield* gpuvmExecLockRange({ vm: f.vm, flags: 0, numFences: 0 }, 0, 4);
    });
    expectViolation(bad.r, 'null-pointer-dereference');
  });
});

describe('E35 drm_exec duplicates', () => {
  it('without IGNORE_DUPLICATES a second lock of the same resv is -EALREADY; with it, 0', () => {
    for (const [flags, expected] of [
      [0, -EALREADY],
      [DrmExecFlags.IGNORE_DUPLICATES, 0],
    ] as const) {
      const { r } = run1({}, function* (f) {
        const exec = new DrmExec(f.sim, flags);
        const ret = yield* exec.untilAllLocked(function* () {
          const a = yield* exec.lockObj(f.objs.A);
          if (a) return a;
          // B shares the VM resv with A (both local): a duplicate lock of the same dma_resv.
          return yield* exec.lockObj(f.objs.B);
        });
        expect(ret).toBe(expected);
        yield* exec.fini();
      });
      expectClean(r);
    }
  });
  it('pct finds no problem either (sanity)', () => {
    const p: Program = {
      name: 'pct sanity',
      setup(sim) {
        const X = new GemObject(sim, 'X');
        const Y = new GemObject(sim, 'Y');
        const Z = new GemObject(sim, 'Z');
        for (const [n, objs] of [
          ['A', [X, Y, Z]],
          ['B', [Z, X]],
          ['C', [Y, Z]],
        ] as const) {
          sim.spawn(n, function* () {
            const exec = new DrmExec(sim, 0, n);
            expect(yield* exec.untilAllLocked(() => exec.prepareArray(objs, 1))).toBe(0);
            yield* exec.fini();
          });
        }
      },
    };
    const r = explore(p, { strategy: pct({ depth: 3, seed: 3 }), budgets: { maxRuns: 2000 } });
    expect(r.failures).toEqual([]);
  });
});
