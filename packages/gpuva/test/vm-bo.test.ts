/**
 * gpuvm.md §8 part D: vm_bo lifetime, linking, extobj/evict lists in both locking modes, the
 * unprotected list iteration, resv_add_fence, the lock assertions of §4.2 in both GEM-lock modes,
 * and the deferred vm_bo cleanup (opt-in). Everything runs on simulated threads.
 */
import { DmaFence, type DmaResv, dfs, explore, type Routine, renderRaceDiagram, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  checkGpuvm,
  DrmExec,
  DrmExecFlags,
  EOPNOTSUPP,
  GemObject,
  GpuVa,
  GpuVm,
  type GpuVmBo,
  GpuvmFlags,
  gpuvaLink,
  gpuvaLinkNow,
  gpuvaUnlink,
  gpuvaUnlinkDefer,
  gpuvmBoCreate,
  gpuvmBoDeferredCleanup,
  gpuvmBoEvict,
  gpuvmBoExtobjAdd,
  gpuvmBoExtobjAddNow,
  gpuvmBoFind,
  gpuvmBoGemEvict,
  gpuvmBoObtain,
  gpuvmBoObtainNow,
  gpuvmBoObtainPrealloc,
  gpuvmBoPut,
  gpuvmBoPutDeferred,
  gpuvmBoUnmapOpsCreate,
  gpuvmPrepareObjects,
  gpuvmPrepareVm,
  gpuvmResvAddFence,
  gpuvmValidate,
  isErr,
} from '../src/index.js';
import { expectClean, expectViolation, type Fixture, fixtureIn, run1 } from './helpers.js';

const PROT = GpuvmFlags.RESV_PROTECTED;
const IMM = GpuvmFlags.IMMEDIATE_MODE;

function* locked<T>(lock: DmaResv, body: () => Routine<T>): Routine<T> {
  yield* lock.lock(null);
  const r = yield* body();
  yield* lock.unlock();
  return r;
}

function vmBoOf(x: GpuVmBo | number): GpuVmBo {
  if (isErr(x)) throw new Error(`errno ${x}`);
  return x;
}

describe('D21 obtain / find', () => {
  it('obtain twice gives the same vm_bo (refcount 2); another VM gets its own; list in creation order', () => {
    let vm2: GpuVm | undefined;
    const { r, f } = run1({}, function* (f) {
      vm2 = new GpuVm(f.sim, {
        name: 'vm2',
        rObj: new GemObject(f.sim, 'r2'),
        start: 0,
        range: 100,
        ops: { vmFree: () => {} },
      });
      const X = new GemObject(f.sim, 'X');
      yield* X.resv.lock(null);
      const a = vmBoOf(yield* gpuvmBoObtain(f.vm, X));
      const b = vmBoOf(yield* gpuvmBoObtain(f.vm, X));
      const c = vmBoOf(yield* gpuvmBoObtain(vm2, X));
      const found = yield* gpuvmBoFind(f.vm, X);
      yield* X.resv.unlock();
      expect(a).toBe(b);
      expect(found).toBe(a);
      expect(a.kref.count).toBe(3);
      expect(c).not.toBe(a);
      expect(X.gpuva.list).toEqual([a, c]);
      expect(X.refcount).toBe(3);
      expect(f.vm.kref).toBe(2);
      expect(vm2.kref).toBe(2);
    });
    expectClean(r);
    expect(checkGpuvm(f.vm)).toBeNull();
    expect(checkGpuvm(vm2!)).toBeNull();
  });
});

describe('D22 obtain_prealloc', () => {
  it('classic: without an existing pair the preallocated vm_bo is adopted', () => {
    const { r } = run1({}, function* (f) {
      const pre = (yield* gpuvmBoCreate(f.vm, f.objs.A))!;
      expect(pre.onGem).toBe(false);
      const got = yield* locked(f.vm.resv, () => gpuvmBoObtainPrealloc(pre));
      expect(got).toBe(pre);
      expect(pre.kref.count).toBe(1);
      expect(f.objs.A.gpuva.list).toEqual([pre]);
    });
    expectClean(r);
  });
  it('classic: with an existing pair the preallocated one is put (destroyed) and the existing one returned +1', () => {
    const { r, f } = run1({}, function* (f) {
      const existing = vmBoOf(yield* locked(f.vm.resv, () => gpuvmBoObtain(f.vm, f.objs.A)));
      const pre = (yield* gpuvmBoCreate(f.vm, f.objs.A))!;
      const got = yield* locked(f.vm.resv, () => gpuvmBoObtainPrealloc(pre));
      expect(got).toBe(existing);
      expect(existing.kref.count).toBe(2);
      expect(pre.freed).toBe(true);
      expect(f.objs.A.gpuva.list).toEqual([existing]);
    });
    expectClean(r);
    expect(f.vm.ledger.live.size).toBe(1);
  });
  it('classic in a protected VM: destroying the duplicate needs the VM resv too (held here: local object)', () => {
    const { r } = run1({ flags: PROT }, function* (f) {
      yield* locked(f.vm.resv, () => gpuvmBoObtain(f.vm, f.objs.A));
      const pre = (yield* gpuvmBoCreate(f.vm, f.objs.A))!;
      yield* locked(f.vm.resv, () => gpuvmBoObtainPrealloc(pre));
    });
    expectClean(r);
  });
  it('newest (deferred feature): takes obj->gpuva.lock itself and frees a duplicate after dropping it', () => {
    const { r } = run1({ flags: IMM, features: { deferredVmBo: true } }, function* (f) {
      const X = new GemObject(f.sim, 'X');
      const a = (yield* gpuvmBoCreate(f.vm, X))!;
      expect(yield* gpuvmBoObtainPrealloc(a)).toBe(a);
      const b = (yield* gpuvmBoCreate(f.vm, X))!;
      expect(yield* gpuvmBoObtainPrealloc(b)).toBe(a);
      expect(b.freed).toBe(true);
      expect(a.kref.count).toBe(2);
      expect(X.refcount).toBe(2);
    });
    expectClean(r);
  });
  it('newest: calling it with obj->gpuva.lock held is a lockdep violation', () => {
    const { r } = run1({ flags: IMM, features: { deferredVmBo: true } }, function* (f) {
      const pre = (yield* gpuvmBoCreate(f.vm, f.objs.A))!;
      yield* f.objs.A.gpuva.lock.lock();
      yield* gpuvmBoObtainPrealloc(pre);
    });
    expectViolation(r, 'lockdep-assert', /not_held\(A->gpuva.lock\)/);
  });
});

describe('D23 link / unlink', () => {
  it('counts references; unlinking the last va destroys the vm_bo (off the list, VM and GEM refs dropped)', () => {
    const { r, f } = run1({}, function* (f) {
      const v1 = new GpuVa(0, 4, f.objs.A, 0);
      const v2 = new GpuVa(4, 4, f.objs.A, 4);
      expect(f.vm.insert(v1)).toBe(0);
      expect(f.vm.insert(v2)).toBe(0);
      yield* f.vm.resv.lock(null);
      const vmBo = vmBoOf(yield* gpuvmBoObtain(f.vm, f.objs.A));
      yield* gpuvaLink(v1, vmBo);
      yield* gpuvaLink(v2, vmBo);
      expect(vmBo.kref.count).toBe(3);
      expect(yield* gpuvmBoPut(vmBo)).toBe(false);
      expect(vmBo.list.gpuva).toEqual([v1, v2]);
      expect(checkGpuvm(f.vm)).toBeNull();
      yield* gpuvaUnlink(v1);
      expect(v1.vmBo).toBeNull();
      const vmRefs = f.vm.kref;
      yield* gpuvaUnlink(v2);
      expect(vmBo.freed).toBe(true);
      expect(f.objs.A.gpuva.list).toEqual([]);
      expect(f.vm.kref).toBe(vmRefs - 1);
      expect(f.objs.A.refcount).toBe(1);
      yield* f.vm.resv.unlock();
    });
    expectClean(r);
    expect(f.vm.ledger.live.size).toBe(0);
  });
  it('linking a GEM-less va is a no-op; linking a va to another object WARNs (and links anyway)', () => {
    const { r, f } = run1({}, function* (f) {
      const sparse = new GpuVa(0, 4, null, 0);
      const other = new GpuVa(8, 4, f.objs.B, 0);
      f.vm.insert(sparse);
      f.vm.insert(other);
      yield* f.vm.resv.lock(null);
      const vmBo = vmBoOf(yield* gpuvmBoObtain(f.vm, f.objs.A));
      yield* gpuvaLink(sparse, vmBo);
      expect(sparse.vmBo).toBeNull();
      expect(vmBo.kref.count).toBe(1);
      yield* gpuvaLink(other, vmBo);
      yield* f.vm.resv.unlock();
    });
    expectClean(r);
    expect(f.vm.warnings).toEqual([expect.stringMatching(/maps B but .* is for A/)]);
  });
});

describe('D24 REMAP application order', () => {
  function remapProgram(linkFirst: boolean) {
    return run1({}, function* (f) {
      const victim = new GpuVa(0, 8, f.objs.A, 0);
      f.vm.insert(victim);
      yield* f.vm.resv.lock(null);
      const vmBo = vmBoOf(yield* gpuvmBoObtain(f.vm, f.objs.A));
      yield* gpuvaLink(victim, vmBo);
      yield* gpuvmBoPut(vmBo); // only the va holds the vm_bo now
      const prev = new GpuVa();
      f.vm.remove(victim);
      prev.init(0, 4, f.objs.A, 0);
      f.vm.insert(prev);
      if (linkFirst) {
        yield* gpuvaLink(prev, victim.vmBo!);
        yield* gpuvaUnlink(victim);
      } else {
        const bo = victim.vmBo!;
        yield* gpuvaUnlink(victim);
        yield* gpuvaLink(prev, bo);
      }
      yield* f.vm.resv.unlock();
    });
  }
  it('link the pieces before unlinking the victim: the vm_bo survives', () => {
    const { r, f } = remapProgram(true);
    expectClean(r);
    expect(f.objs.A.gpuva.list.length).toBe(1);
    expect(checkGpuvm(f.vm)).toBeNull();
  });
  it('unlink first: the last reference goes, the vm_bo is destroyed, and linking to it is a use-after-free', () => {
    const { r } = remapProgram(false);
    expectViolation(r, 'use-after-free', /kref_get\(vm_bo#\d+\(vm, A\)->kref\)/);
  });
});

describe('D26 extobj list', () => {
  it('extobj_add is idempotent and ignores local objects (both modes)', () => {
    for (const flags of [0, PROT]) {
      const { r, f } = run1({ flags }, function* (f) {
        const X = new GemObject(f.sim, 'X');
        yield* f.vm.resv.lock(null);
        yield* X.resv.lock(null);
        const x = vmBoOf(yield* gpuvmBoObtain(f.vm, X));
        yield* X.resv.unlock();
        const a = vmBoOf(yield* gpuvmBoObtain(f.vm, f.objs.A));
        yield* gpuvmBoExtobjAdd(x);
        yield* gpuvmBoExtobjAdd(x);
        yield* gpuvmBoExtobjAdd(a);
        yield* f.vm.resv.unlock();
        expect(f.vm.extobj.list.items).toEqual([x]);
      });
      expectClean(r);
      expect(checkGpuvm(f.vm)).toBeNull();
    }
  });
});

describe('D27 eviction, prepare_objects, validate', () => {
  it('unprotected: local and external vm_bos go on the evict list at once; unevict removes them', () => {
    const { r } = run1({}, function* (f) {
      const X = new GemObject(f.sim, 'X');
      yield* f.vm.resv.lock(null);
      yield* X.resv.lock(null);
      const x = vmBoOf(yield* gpuvmBoObtain(f.vm, X));
      const a = vmBoOf(yield* gpuvmBoObtain(f.vm, f.objs.A));
      yield* gpuvmBoEvict(x, true);
      yield* gpuvmBoEvict(a, true);
      expect(f.vm.evict.list.items).toEqual([x, a]);
      yield* gpuvmBoEvict(x, false);
      expect(f.vm.evict.list.items).toEqual([a]);
      yield* X.resv.unlock();
      yield* f.vm.resv.unlock();
    });
    expectClean(r);
  });

  it('protected: an external vm_bo is only flagged; prepare_objects moves it onto the evict list', () => {
    const { r } = run1({ flags: PROT }, function* (f) {
      const X = new GemObject(f.sim, 'X');
      yield* f.vm.resv.lock(null);
      yield* X.resv.lock(null);
      const x = vmBoOf(yield* gpuvmBoObtain(f.vm, X));
      yield* gpuvmBoExtobjAdd(x);
      const a = vmBoOf(yield* gpuvmBoObtain(f.vm, f.objs.A));
      yield* gpuvmBoEvict(x, true);
      yield* gpuvmBoEvict(a, true);
      yield* X.resv.unlock();
      yield* f.vm.resv.unlock();
      expect(x.evicted).toBe(true);
      expect(f.vm.evict.list.items).toEqual([a]);
      const exec = new DrmExec(f.sim, DrmExecFlags.IGNORE_DUPLICATES);
      const ret = yield* exec.untilAllLocked(function* () {
        const r1 = yield* gpuvmPrepareVm(f.vm, exec, 1);
        if (r1) return r1;
        return yield* gpuvmPrepareObjects(f.vm, exec, 1);
      });
      expect(ret).toBe(0);
      expect(exec.objects.map((o) => o.name)).toEqual(['r_obj', 'X']);
      expect(f.vm.evict.list.items).toEqual([a, x]);
      yield* exec.fini();
    });
    expectClean(r);
  });

  function validateProgram(flags: number, failOn: string | null, clearEvicted: boolean) {
    const validated: string[] = [];
    const res = run1(
      {
        flags,
        ops: {
          vmFree: () => {},
          vmBoValidate: function* (vmBo) {
            validated.push(vmBo.obj.name);
            if (vmBo.obj.name === failOn) return -12;
            if (clearEvicted) yield* gpuvmBoEvict(vmBo, false);
            return 0;
          },
        },
      },
      function* (f) {
        yield* f.vm.resv.lock(null);
        for (const o of [f.objs.A, f.objs.B, f.objs.C])
          yield* gpuvmBoEvict(vmBoOf(yield* gpuvmBoObtain(f.vm, o)), true);
        const exec = new DrmExec(f.sim);
        const ret = yield* gpuvmValidate(f.vm, exec);
        yield* f.vm.resv.unlock();
        return ret;
      },
    );
    return { ...res, validated };
  }

  it('protected validate removes only entries no longer evicted; an error stops it and keeps the rest', () => {
    let v = validateProgram(PROT, null, false);
    expectClean(v.r);
    expect(v.validated).toEqual(['A', 'B', 'C']);
    expect(v.f.vm.evict.list.items.length).toBe(3);
    v = validateProgram(PROT, null, true);
    expect(v.f.vm.evict.list.items.length).toBe(0);
    v = validateProgram(PROT, 'B', true);
    expect(v.validated).toEqual(['A', 'B']);
    expect(v.f.vm.evict.list.items.map((b) => b.obj.name)).toEqual(['B', 'C']);
  });

  it('unprotected validate (pop-and-process): error stops it, the local list goes back to the head in order', () => {
    let v = validateProgram(0, null, true);
    expectClean(v.r);
    expect(v.f.vm.evict.list.items.length).toBe(0);
    v = validateProgram(0, 'B', true);
    expectClean(v.r);
    expect(v.validated).toEqual(['A', 'B']);
    expect(v.f.vm.evict.list.items.map((b) => b.obj.name)).toEqual(['B', 'C']);
    expect(v.f.vm.evict.localList).toBeNull();
  });

  it('validate without vm_bo_validate: -EOPNOTSUPP', () => {
    const { r } = run1({}, function* (f) {
      expect(yield* gpuvmValidate(f.vm, new DrmExec(f.sim))).toBe(-EOPNOTSUPP);
    });
    expectClean(r);
  });
});

describe('D28 unprotected list iteration under concurrency', () => {
  /** prepare_objects on CPU0 while CPU1 adds one external object and drops the last reference of another. */
  function iterProgram(secondIterator: boolean) {
    let vmRef: GpuVm | undefined;
    const p = {
      name: 'extobj iteration',
      setup(sim: Sim) {
        const f: Fixture = fixtureIn(sim, {});
        vmRef = f.vm;
        const X = new GemObject(sim, 'X');
        const Y = new GemObject(sim, 'Y');
        const Z = new GemObject(sim, 'Z');
        const vaY = new GpuVa(0, 4, Y, 0);
        f.vm.insert(vaY);
        const bx = gpuvmBoObtainNow(f.vm, X);
        const by = gpuvmBoObtainNow(f.vm, Y);
        gpuvaLinkNow(vaY, by);
        gpuvmBoExtobjAddNow(bx);
        gpuvmBoExtobjAddNow(by);
        // `by` is held only by vaY now
        by.kref.count = 1;
        sim.spawn('CPU0 prepare_objects', function* () {
          const exec = new DrmExec(sim, DrmExecFlags.IGNORE_DUPLICATES);
          const ret = yield* exec.untilAllLocked(() => gpuvmPrepareObjects(f.vm, exec, 0));
          expect(ret).toBe(0);
          yield* exec.fini();
        });
        sim.spawn('CPU1 unmap Y, map Z', function* () {
          yield* Y.resv.lock(null);
          yield* gpuvaUnlink(vaY);
          yield* Y.resv.unlock();
          yield* Z.resv.lock(null);
          const bz = vmBoOf(yield* gpuvmBoObtain(f.vm, Z));
          yield* gpuvmBoExtobjAdd(bz);
          yield* Z.resv.unlock();
        });
        if (secondIterator) {
          sim.spawn('CPU2 prepare_objects', function* () {
            const exec = new DrmExec(sim, DrmExecFlags.IGNORE_DUPLICATES);
            yield* exec.untilAllLocked(() => gpuvmPrepareObjects(f.vm, exec, 0));
            yield* exec.fini();
          });
        }
        return {
          invariant: { 'vm_bo invariants': () => checkGpuvm(f.vm) ?? true },
          properties: {
            'lists restored': () => (f.vm.extobj.localList === null ? true : 'local list left registered'),
            'no WARN': () => f.vm.warnings.length === 0 || f.vm.warnings.join('; '),
          },
        };
      },
    };
    return { p, vm: () => vmRef! };
  }

  it('concurrent add/remove while iterating: every interleaving keeps the lists consistent (dfs)', () => {
    const { p } = iterProgram(false);
    const r = explore(p, { strategy: dfs(), budgets: { maxRuns: 50_000, maxTimeMs: 20_000 } });
    if (r.failures.length) throw new Error(renderRaceDiagram(r.failures[0]!.trace));
    expect(r.completedRuns).toBeGreaterThan(10);
  });

  it('a second, unserialised iterator triggers the local_list WARN', () => {
    const { p } = iterProgram(true);
    const r = explore(p, {
      strategy: dfs({ preemptionBound: 2 }),
      budgets: { maxRuns: 20_000, maxTimeMs: 20_000 },
    });
    expect(r.failures.length).toBe(1);
    expect(r.failures[0]!.violation.message).toMatch(/concurrent iteration of the extobj list/);
  });
});

describe('D29 resv_add_fence', () => {
  it('external objects get the extobj usage, local ones the private usage', () => {
    const { r } = run1({}, function* (f) {
      const X = new GemObject(f.sim, 'X');
      const fence = new DmaFence(f.sim, 'job');
      const exec = new DrmExec(f.sim, DrmExecFlags.IGNORE_DUPLICATES);
      expect(
        yield* exec.untilAllLocked(function* () {
          const a = yield* gpuvmPrepareVm(f.vm, exec, 1);
          if (a) return a;
          return yield* exec.prepareArray([f.objs.A, X], 1);
        }),
      ).toBe(0);
      yield* gpuvmResvAddFence(f.vm, exec, fence, 'BOOKKEEP', 'WRITE');
      expect(f.vm.resv.fences.map((x) => x.usage)).toEqual(['BOOKKEEP']);
      expect(X.resv.fences.map((x) => x.usage)).toEqual(['WRITE']);
      yield* exec.fini();
    });
    expectClean(r);
  });
});

describe('D30 lock assertions (§4.2) in both GEM-lock modes', () => {
  type Call = (f: Fixture, bo: GpuVmBo, va: GpuVa) => Routine<unknown>;
  const gemCalls: Record<string, Call> = {
    drm_gpuvm_bo_find: (f) => gpuvmBoFind(f.vm, f.objs.A),
    drm_gpuvm_bo_obtain: (f) => gpuvmBoObtain(f.vm, f.objs.A),
    drm_gpuva_link: (_f, bo, va) => gpuvaLink(va, bo),
    drm_gpuva_unlink: function* (_f, bo, va) {
      yield* gpuvaLink(va, bo);
      yield* gpuvaUnlink(va);
    },
    drm_gpuvm_bo_unmap_ops_create: (_f, bo) => gpuvmBoUnmapOpsCreate(bo),
    'drm_gpuvm_bo_put (last reference)': function* (_f, bo) {
      bo.kref.count = 1;
      yield* gpuvmBoPut(bo);
    },
  };
  /** Holds exactly the lock the mode requires (or the wrong one, or none) around `call`. */
  function program(flags: number, hold: 'gem-lock' | 'other-lock' | 'none', call: Call) {
    return run1({ flags }, function* (f) {
      const A = f.objs.A;
      const va = new GpuVa(0, 4, A, 0);
      f.vm.insert(va);
      const imm = (flags & IMM) !== 0;
      if (imm) yield* A.gpuva.lock.lock();
      else yield* A.resv.lock(null);
      const bo = vmBoOf(yield* gpuvmBoObtain(f.vm, A));
      if (imm) yield* A.gpuva.lock.unlock();
      else yield* A.resv.unlock();
      const useMutex = hold === 'gem-lock' ? imm : hold === 'other-lock' ? !imm : null;
      if (useMutex === true) yield* A.gpuva.lock.lock();
      if (useMutex === false) yield* A.resv.lock(null);
      yield* call(f, bo, va);
      if (useMutex === true) yield* A.gpuva.lock.unlock();
      if (useMutex === false) yield* A.resv.unlock();
    });
  }
  for (const [name, call] of Object.entries(gemCalls)) {
    for (const [mode, flags] of [
      ['resv mode', 0],
      ['IMMEDIATE_MODE', IMM],
    ] as const) {
      it(`${name} (${mode}): needs the GEM gpuva-list lock of the VM's mode`, () => {
        expectClean(program(flags, 'gem-lock', call).r);
        expectViolation(program(flags, 'none', call).r, 'lockdep-assert');
        expectViolation(program(flags, 'other-lock', call).r, 'lockdep-assert');
      });
    }
  }

  it('drm_gpuvm_bo_gem_evict needs the GEM list lock and the object resv', () => {
    const ok = run1({ flags: IMM }, function* (f) {
      yield* f.objs.A.gpuva.lock.lock();
      yield* gpuvmBoObtain(f.vm, f.objs.A);
      yield* f.objs.A.resv.lock(null);
      yield* gpuvmBoGemEvict(f.objs.A, true);
      yield* f.objs.A.resv.unlock();
      yield* f.objs.A.gpuva.lock.unlock();
    });
    expectClean(ok.r);
    const bad = run1({ flags: IMM }, function* (f) {
      yield* f.objs.A.gpuva.lock.lock();
      yield* gpuvmBoObtain(f.vm, f.objs.A);
      yield* gpuvmBoGemEvict(f.objs.A, true);
    });
    expectViolation(bad.r, 'lockdep-assert', /r_obj->resv/);
  });

  it('protected mode: extobj_add, prepare_objects, validate and a destroying put need the VM resv', () => {
    const X = (f: Fixture) => new GemObject(f.sim, 'X');
    const cases: Record<string, (f: Fixture) => Routine<unknown>> = {
      drm_gpuvm_bo_extobj_add: function* (f) {
        const x = X(f);
        yield* x.resv.lock(null);
        const bo = vmBoOf(yield* gpuvmBoObtain(f.vm, x));
        yield* x.resv.unlock();
        yield* gpuvmBoExtobjAdd(bo);
      },
      drm_gpuvm_prepare_objects: function* (f) {
        const exec = new DrmExec(f.sim);
        yield* exec.untilAllLocked(() => gpuvmPrepareObjects(f.vm, exec, 0));
      },
      drm_gpuvm_validate: function* (f) {
        f.vm.ops.vmBoValidate = () => 0;
        yield* gpuvmValidate(f.vm, new DrmExec(f.sim));
      },
      'drm_gpuvm_bo_put (destroy, external object)': function* (f) {
        const x = X(f);
        yield* x.resv.lock(null);
        const bo = vmBoOf(yield* gpuvmBoObtain(f.vm, x));
        yield* gpuvmBoPut(bo);
      },
    };
    for (const [name, body] of Object.entries(cases)) {
      const v = expectViolation(run1({ flags: PROT }, body).r, 'lockdep-assert', /r_obj->resv/);
      expect(v.message, name).toMatch(/lockdep_assert_held/);
    }
  });

  it('drm_gpuvm_bo_evict needs the object resv', () => {
    const { r } = run1({}, function* (f) {
      yield* f.vm.resv.lock(null);
      const X = new GemObject(f.sim, 'X');
      yield* X.resv.lock(null);
      const bo = vmBoOf(yield* gpuvmBoObtain(f.vm, X));
      yield* X.resv.unlock();
      yield* gpuvmBoEvict(bo, true);
    });
    expectViolation(r, 'lockdep-assert', /X->resv/);
  });

  it('the deferred helpers refuse to run with obj->gpuva.lock held', () => {
    for (const body of [
      function* (_f: Fixture, bo: GpuVmBo) {
        yield* gpuvmBoPutDeferred(bo);
      },
      function* (_f: Fixture, _bo: GpuVmBo, va: GpuVa) {
        yield* gpuvaUnlinkDefer(va);
      },
    ]) {
      const { r } = run1({ flags: IMM, features: { deferredVmBo: true } }, function* (f) {
        const va = new GpuVa(0, 4, f.objs.A, 0);
        f.vm.insert(va);
        yield* f.objs.A.gpuva.lock.lock();
        const bo = vmBoOf(yield* gpuvmBoObtain(f.vm, f.objs.A));
        yield* gpuvaLink(va, bo);
        yield* body(f, bo, va);
      });
      expectViolation(r, 'lockdep-assert', /lockdep_assert_not_held\(A->gpuva.lock\)/);
    }
  });
});

describe('D31 deferred vm_bo cleanup (opt-in, newest)', () => {
  it('unlink_defer makes a zombie (off the GEM list, on bo_defer); cleanup frees it and drops its references', () => {
    const { r, f } = run1({ flags: IMM, features: { deferredVmBo: true } }, function* (f) {
      const X = new GemObject(f.sim, 'X');
      const va = new GpuVa(0, 4, X, 0);
      f.vm.insert(va);
      const pre = (yield* gpuvmBoCreate(f.vm, X))!;
      const bo = yield* gpuvmBoObtainPrealloc(pre);
      yield* X.gpuva.lock.lock();
      yield* gpuvaLink(va, bo);
      yield* X.gpuva.lock.unlock();
      yield* gpuvmBoPutDeferred(bo);
      expect(bo.kref.count).toBe(1);
      const vmRefs = f.vm.kref;
      yield* gpuvaUnlinkDefer(va);
      expect(bo.zombie).toBe(true);
      expect(X.gpuva.list).toEqual([]);
      expect(f.vm.boDefer.value).toEqual([bo]);
      expect(checkGpuvm(f.vm)).toBeNull();
      yield* gpuvmBoDeferredCleanup(f.vm);
      expect(bo.freed).toBe(true);
      expect(f.vm.boDefer.value).toEqual([]);
      expect(f.vm.kref).toBe(vmRefs - 1);
      expect(X.refcount).toBe(1);
      f.vm.remove(va);
    });
    expectClean(r);
    expect(f.vm.ledger.live.size).toBe(0);
  });

  it('protected: zombies stay on extobj/evict until cleanup, and walkers skip them', () => {
    const validated: string[] = [];
    const { r } = run1(
      {
        flags: IMM | PROT,
        features: { deferredVmBo: true },
        ops: {
          vmFree: () => {},
          vmBoValidate: (bo) => {
            validated.push(bo.obj.name);
            return 0;
          },
        },
      },
      function* (f) {
        const X = new GemObject(f.sim, 'X');
        const bo = yield* gpuvmBoObtainPrealloc((yield* gpuvmBoCreate(f.vm, X))!);
        yield* f.vm.resv.lock(null);
        yield* gpuvmBoExtobjAdd(bo);
        yield* X.resv.lock(null);
        yield* gpuvmBoEvict(bo, true);
        yield* X.resv.unlock();
        yield* f.vm.resv.unlock();
        expect(yield* gpuvmBoPutDeferred(bo)).toBe(true);
        expect(bo.zombie).toBe(true);
        expect(f.vm.extobj.list.items).toEqual([bo]);
        const exec = new DrmExec(f.sim);
        expect(
          yield* exec.untilAllLocked(function* () {
            const a = yield* gpuvmPrepareVm(f.vm, exec, 0);
            return a || (yield* gpuvmPrepareObjects(f.vm, exec, 0));
          }),
        ).toBe(0);
        expect(exec.objects.map((o) => o.name)).toEqual(['r_obj']);
        expect(yield* gpuvmValidate(f.vm, exec)).toBe(0);
        expect(validated).toEqual([]);
        yield* exec.fini();
        yield* gpuvmBoDeferredCleanup(f.vm);
        expect(f.vm.extobj.list.items).toEqual([]);
      },
    );
    expectClean(r);
  });

  it('fini WARNs when bo_defer is not empty', () => {
    const { r, f } = run1({ flags: IMM, features: { deferredVmBo: true } }, function* (f) {
      const bo = yield* gpuvmBoObtainPrealloc((yield* gpuvmBoCreate(f.vm, f.objs.A))!);
      yield* gpuvmBoPutDeferred(bo);
      f.vm.put();
      f.vm.put();
    });
    expectClean(r);
    expect(f.vm.warnings).toContainEqual(expect.stringMatching(/bo_defer list should be empty/));
  });
});
