/**
 * The protocol violations the model must catch, each shown with the explorer's race diagram:
 * an op list applied with the victim unlinked before its pieces are linked, an allocation in
 * `run_job`, and a gpuvm API called without its lock.
 */
import {
  dfs,
  dmaFenceBeginSignalling,
  dmaFenceEndSignalling,
  explore,
  type Program,
  renderRaceDiagram,
  runOnce,
} from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  GpuVa,
  GpuvaOpType,
  gpuvaLink,
  gpuvaLinkNow,
  gpuvaOpsFree,
  gpuvaRemap,
  gpuvaUnlink,
  gpuvmBoObtain,
  gpuvmBoObtainNow,
  gpuvmBoPutNow,
  gpuvmSmMapOpsCreate,
  isErr,
  mapReq,
} from '../src/index.js';
import { fixtureIn } from './helpers.js';

/** Applies an sm_map op list the way the DOC's first example does, optionally unlinking too early. */
function remapProgram(unlinkFirst: boolean): Program {
  return {
    name: unlinkFirst ? 'REMAP applied unlink-first' : 'REMAP applied link-first',
    setup(sim) {
      const f = fixtureIn(sim);
      const victim = new GpuVa(0, 8, f.objs.A, 0);
      f.vm.insert(victim);
      const bo = gpuvmBoObtainNow(f.vm, f.objs.A);
      gpuvaLinkNow(victim, bo);
      gpuvmBoPutNow(bo); // only the va holds the vm_bo
      sim.spawn('driver', function* () {
        yield* f.vm.resv.lock(null, 'lock the GEM gpuva list (resv)');
        const ops = yield* gpuvmSmMapOpsCreate(f.vm, mapReq(2, 2, f.objs.B, 0));
        if (isErr(ops)) throw new Error(String(ops));
        const newBo = yield* gpuvmBoObtain(f.vm, f.objs.B);
        if (isErr(newBo)) throw new Error(String(newBo));
        for (const op of ops) {
          if (op.op === GpuvaOpType.REMAP) {
            const va = op.remap.unmap.va;
            const vmBo = va.vmBo!;
            const prev = op.remap.prev ? new GpuVa() : null;
            const next = op.remap.next ? new GpuVa() : null;
            gpuvaRemap(prev, next, op.remap);
            if (unlinkFirst) yield* gpuvaUnlink(va);
            if (prev) yield* gpuvaLink(prev, vmBo);
            if (next) yield* gpuvaLink(next, vmBo);
            if (!unlinkFirst) yield* gpuvaUnlink(va);
          } else if (op.op === GpuvaOpType.MAP) {
            const va = new GpuVa();
            va.initFromOp(op.map);
            f.vm.insert(va);
            yield* gpuvaLink(va, newBo);
          }
        }
        yield* gpuvaOpsFree(f.vm, ops);
        yield* f.vm.resv.unlock();
      });
    },
  };
}

describe('violations are caught', () => {
  it('an op list applied with an unlink before the link destroys the vm_bo: use-after-free', () => {
    expect(runOnce(remapProgram(false), []).violation).toBeUndefined();
    const r = explore(remapProgram(true), { strategy: dfs() });
    expect(r.failures.length).toBe(1);
    const f = r.failures[0]!;
    expect(f.violation.kind).toBe('use-after-free');
    const diagram = renderRaceDiagram(f.trace);
    expect(diagram).toMatch(/kref_put\(vm_bo#1\(vm, A\)->kref\) = true/);
    expect(diagram).toMatch(/>>.*kref_get\(vm_bo#1\(vm, A\)->kref\)/);
  });

  it('an allocation in run_job (op lists created in the signalling path): alloc-in-forbidden-context', () => {
    const p: Program = {
      name: 'ops_create in run_job',
      setup(sim) {
        const f = fixtureIn(sim);
        sim.spawn('scheduler', function* () {
          yield* dmaFenceBeginSignalling(sim, 'run_job');
          const ops = yield* gpuvmSmMapOpsCreate(f.vm, mapReq(0, 4, f.objs.A, 0));
          if (!isErr(ops)) yield* gpuvaOpsFree(f.vm, ops);
          yield* dmaFenceEndSignalling(sim);
        });
      },
    };
    const r = explore(p, { strategy: dfs() });
    expect(r.failures[0]?.violation.kind).toBe('alloc-in-forbidden-context');
    expect(r.failures[0]!.violation.message).toMatch(
      /kmalloc\(16, GFP_KERNEL\)\s+\/\/ drm_gpuva_ops in fence-signalling context/,
    );
    expect(renderRaceDiagram(r.failures[0]!.trace)).toMatch(/dma_fence_begin_signalling\(\)/);
  });

  it('an API call without its lock: lockdep-assert, even when a racing thread holds the lock', () => {
    const p: Program = {
      name: 'link without the GEM lock',
      setup(sim) {
        const f = fixtureIn(sim);
        const va = new GpuVa(0, 4, f.objs.A, 0);
        f.vm.insert(va);
        const bo = gpuvmBoObtainNow(f.vm, f.objs.A);
        sim.spawn('holder', function* () {
          yield* f.vm.resv.lock(null);
          yield* f.vm.resv.unlock();
        });
        sim.spawn('driver', function* () {
          yield* gpuvaLink(va, bo);
        });
      },
    };
    const r = explore(p, { strategy: dfs() });
    expect(r.failures[0]?.violation.kind).toBe('lockdep-assert');
    expect(r.failures[0]?.violation.message).toMatch(/lockdep_assert_held\(r_obj->resv\) failed in driver/);
  });
});
