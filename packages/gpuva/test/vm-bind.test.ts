/**
 * gpuvm.md §8 part F: the asynchronous VM_BIND model in both upstream patterns, explored.
 */
import {
  type Check,
  DmaFence,
  dfs,
  EINVAL,
  ENOENT,
  ENOMEM,
  explore,
  type Program,
  pct,
  renderRaceDiagram,
  runOnce,
  type Sim,
} from '@hmmkit/sim';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkGpuvm, GemObject, GpuvmFlags } from '../src/index.js';
import {
  type BindOp,
  type BindResult,
  createVmBind,
  type VmBind,
  type VmBindBugs,
  type VmBindPattern,
} from '../src/vm-bind/index.js';

const PATTERNS: VmBindPattern[] = ['submit', 'run-job'];

interface World {
  sim: Sim;
  vmb: VmBind;
  A: GemObject;
  X: GemObject;
}

function world(
  sim: Sim,
  pattern: VmBindPattern,
  extra: {
    bugs?: VmBindBugs;
    flags?: number;
    runJobError?: (j: { seq: number }) => number;
    unbindNoFail?: boolean;
  } = {},
): World {
  const { vmb } = createVmBind(sim, { pattern, vm: { range: 64 }, ...extra });
  return { sim, vmb, A: new GemObject(sim, 'A', { resv: vmb.vm.resv }), X: new GemObject(sim, 'X') };
}

function hooks(w: World, extra: Record<string, Check> = {}) {
  // The invariant reads only the VA tree, and the tree only changes inside critical sections of the
  // VM's locks, whose orders dfs explores anyway: no state change needs to be made visible.
  return {
    invariant: w.vmb.invariants(),
    properties: { ...w.vmb.checks(), ...extra },
    visible: 'none' as const,
  };
}

/** Exhaustive within a preemption bound of 2 (every interleaving with at most two preemptions). */
function exploreAll(p: Program, maxRuns = 20_000) {
  const r = explore(p, {
    strategy: dfs({ preemptionBound: 2 }),
    budgets: { maxRuns, maxTimeMs: 20_000 },
    stopOnFailure: true,
  });
  expect(r.endedBy === 'exhausted' || r.endedBy === 'failure', `${p.name} ended by ${r.endedBy}`).toBe(true);
  return r;
}

function assertClean(r: ReturnType<typeof explore>): void {
  if (r.failures.length) {
    const f = r.failures[0]!;
    throw new Error(
      `${f.violation.kind}: ${f.violation.message}\n${(f.violation.details ?? []).join('\n')}\n${renderRaceDiagram(f.trace, { tail: 40 })}`,
    );
  }
}

describe.each(PATTERNS)('VM_BIND, %s pattern', (pattern) => {
  it('F36 multi-op binds are all-or-nothing under allocation failure at every point', () => {
    const outcomes = new Set<number>();
    const p: Program = {
      name: `all-or-nothing (${pattern})`,
      options: { allocFailures: 1 },
      setup(sim) {
        const w = world(sim, pattern);
        w.vmb.prepopulateNow(0, 8, w.A, 0);
        w.vmb.prepopulateNow(8, 8, w.X, 0);
        const before = w.vmb.vm.layoutText();
        const vasBefore = [...w.vmb.vm.vas()];
        const q = w.vmb.createQueue('q0');
        let res: BindResult | undefined;
        sim.spawn('ioctl', function* () {
          res = yield* w.vmb.bind(q, [
            { op: 'map', addr: 4, range: 8, obj: w.X, offset: 100 },
            { op: 'unmap', addr: 2, range: 4 },
            { op: 'map', addr: 20, range: 4, obj: null },
          ]);
          outcomes.add(res.ret);
          yield* w.vmb.closeQueues();
        });
        return hooks(w, {
          'failed ioctl leaves the VM as it was': () => {
            if (!res || res.ret === 0) return true;
            if (res.ret !== -ENOMEM) return `unexpected ${res.ret}`;
            const now = [...w.vmb.vm.vas()];
            if (w.vmb.vm.layoutText() !== before) return `layout ${w.vmb.vm.layoutText()}`;
            return now.every((v, i) => v === vasBefore[i]) || 'different va objects';
          },
          'successful ioctl: final layout': () =>
            res?.ret !== 0 ||
            w.vmb.vm.layoutText() === '[0,2)->A@0 [6,12)->X@102 [12,16)->X@4 [20,24)->-@0' ||
            w.vmb.vm.layoutText(),
        });
      },
    };
    const r = exploreAll(p, 5_000);
    assertClean(r);
    expect(r.exhausted).toBe(true);
    expect(outcomes).toEqual(new Set([0, -ENOMEM]));
  });

  it('F36 an invalid op k fails the whole ioctl with -EINVAL and nothing changes', () => {
    const r = runOnce(
      {
        name: 'invalid op',
        setup(sim) {
          const w = world(sim, pattern);
          w.vmb.prepopulateNow(0, 8, w.A, 0);
          const q = w.vmb.createQueue('q0');
          sim.spawn('ioctl', function* () {
            const res = yield* w.vmb.bind(q, [
              { op: 'map', addr: 2, range: 2, obj: w.X, offset: 0 },
              { op: 'map', addr: 60, range: 8, obj: w.X, offset: 0 },
            ]);
            if (res.ret !== -EINVAL) throw new Error(`ret ${res.ret}`);
            yield* w.vmb.closeQueues();
          });
          return hooks(w, {
            unchanged: () => w.vmb.vm.layoutText() === '[0,8)->A@0' || w.vmb.vm.layoutText(),
          });
        },
      },
      [],
    );
    expect(r.violation).toBeUndefined();
  });

  it('F37 later ops of one ioctl see the effect of earlier ones', () => {
    const r = runOnce(
      {
        name: 'sequential ops',
        setup(sim) {
          const w = world(sim, pattern);
          const q = w.vmb.createQueue('q0');
          sim.spawn('ioctl', function* () {
            const res = yield* w.vmb.bind(
              q,
              [
                { op: 'map', addr: 0, range: 8, obj: w.A, offset: 0 },
                { op: 'map', addr: 2, range: 2, obj: w.X, offset: 0 },
                { op: 'unmap', addr: 6, range: 1 },
              ],
              { sync: true },
            );
            if (res.ret) throw new Error(`ret ${res.ret}`);
            yield* w.vmb.closeQueues();
          });
          return hooks(w, {
            layout: () =>
              w.vmb.vm.layoutText() === '[0,2)->A@0 [2,4)->X@0 [4,6)->A@4 [7,8)->A@7' ||
              w.vmb.vm.layoutText(),
          });
        },
      },
      [],
    );
    expect(r.violation).toBeUndefined();
  });

  it('F38 in-fences gate the job; the out-fence signals only once the page tables are written', () => {
    const p: Program = {
      name: 'fences',
      setup(sim) {
        const w = world(sim, pattern);
        const q = w.vmb.createQueue('q0');
        const inFence = new DmaFence(sim, 'in-syncobj');
        sim.spawn('ioctl + exec', function* () {
          const res = yield* w.vmb.bind(q, [{ op: 'map', addr: 0, range: 4, obj: w.X, offset: 0 }], {
            inFences: [inFence],
          });
          if (res.ret) throw new Error(`ret ${res.ret}`);
          yield* res.job!.done.wait('exec waits for the out-syncobj');
          if (w.vmb.pt.entries.get(3)?.obj !== w.X)
            throw new Error('out-fence signalled before the PTEs were written');
          yield* w.vmb.closeQueues();
        });
        sim.spawn('producer', function* () {
          yield* inFence.signal();
        });
        return hooks(w);
      },
    };
    const r = exploreAll(p);
    assertClean(r);
    expect(r.exhausted).toBe(true);
  });

  it('F38 jobs of one queue complete in submission order', () => {
    const p: Program = {
      name: 'per-queue order',
      setup(sim) {
        const w = world(sim, pattern);
        const q = w.vmb.createQueue('q0');
        const gate = new DmaFence(sim, 'gate');
        sim.spawn('ioctl', function* () {
          expect(
            (yield* w.vmb.bind(q, [{ op: 'map', addr: 0, range: 4, obj: w.A }], { inFences: [gate] })).ret,
          ).toBe(0);
          expect((yield* w.vmb.bind(q, [{ op: 'map', addr: 8, range: 4, obj: w.X }])).ret).toBe(0);
          yield* w.vmb.closeQueues();
        });
        sim.spawn('producer', function* () {
          yield* gate.signal();
        });
        return hooks(w);
      },
    };
    assertClean(exploreAll(p));
  });

  it('F38 separate queues are not ordered: either job may finish first', () => {
    const firsts = new Set<string>();
    const p: Program = {
      name: 'cross-queue',
      setup(sim) {
        const w = world(sim, pattern);
        const qa = w.vmb.createQueue('qa');
        const qb = w.vmb.createQueue('qb');
        const gate = new DmaFence(sim, 'gate');
        const order: string[] = [];
        sim.spawn('ioctl', function* () {
          const a = yield* w.vmb.bind(qa, [{ op: 'map', addr: 0, range: 4, obj: w.A }], { inFences: [gate] });
          const b = yield* w.vmb.bind(qb, [{ op: 'map', addr: 8, range: 4, obj: w.X }]);
          yield* b.job!.done.wait();
          order.push(a.job!.done.signaled ? 'qa' : 'qb');
          yield* a.job!.done.wait();
          yield* w.vmb.closeQueues();
        });
        sim.spawn('producer', function* () {
          yield* gate.signal();
        });
        return hooks(w, {
          record: () => {
            firsts.add(order[0]!);
            return true;
          },
        });
      },
    };
    assertClean(exploreAll(p));
    expect(firsts).toEqual(new Set(['qa', 'qb']));
  });

  it('F40 the worst-case pre-allocation always suffices (random multi-op binds)', () => {
    const opArb = fc.record({
      op: fc.constantFrom('map', 'map', 'unmap') as fc.Arbitrary<'map' | 'unmap'>,
      addr: fc.integer({ min: 0, max: 30 }),
      range: fc.integer({ min: 1, max: 12 }),
      obj: fc.constantFrom('A', 'X', null) as fc.Arbitrary<'A' | 'X' | null>,
      offset: fc.integer({ min: 0, max: 8 }),
    });
    fc.assert(
      fc.property(
        fc.array(fc.array(opArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 3 }),
        (binds) => {
          let consumed = 0;
          const r = runOnce(
            {
              name: 'prealloc',
              setup(sim) {
                const w = world(sim, pattern);
                w.vmb.prepopulateNow(0, 10, w.A, 0);
                w.vmb.prepopulateNow(12, 6, w.X, 3);
                w.vmb.prepopulateNow(20, 6, null, 0);
                const q = w.vmb.createQueue('q0');
                sim.spawn('ioctl', function* () {
                  for (const b of binds) {
                    const ops: BindOp[] = b.map((o) => ({
                      ...o,
                      obj: o.obj === null ? null : o.obj === 'A' ? w.A : w.X,
                    }));
                    const res = yield* w.vmb.bind(q, ops, { sync: true });
                    if (res.ret) throw new Error(`ret ${res.ret}`);
                    consumed = Math.max(consumed, res.job!.prealloc.consumedVas);
                  }
                  yield* w.vmb.closeQueues();
                });
                return hooks(w);
              },
            },
            [],
          );
          if (r.violation) throw new Error(`${r.violation.kind}: ${r.violation.message}`);
          return consumed >= 0;
        },
      ),
      { numRuns: 150, seed: 42 },
    );
  });

  it('F41 an unexpected error in run_job bans the VM; later binds return -ENOENT', () => {
    const r = runOnce(
      {
        name: 'ban',
        setup(sim) {
          const w = world(sim, pattern, { runJobError: (j) => (j.seq === 1 ? -5 : 0) });
          const q = w.vmb.createQueue('q0');
          sim.spawn('ioctl', function* () {
            const first = yield* w.vmb.bind(q, [{ op: 'map', addr: 0, range: 4, obj: w.A }], { sync: true });
            expect(first.ret).toBe(0);
            expect(first.job!.done.error).toBe(-5);
            expect(w.vmb.banned).toBe(true);
            expect((yield* w.vmb.bind(q, [{ op: 'unmap', addr: 0, range: 4 }])).ret).toBe(-ENOENT);
            yield* w.vmb.closeQueues();
          });
          return {};
        },
      },
      [],
    );
    expect(r.violation).toBeUndefined();
  });

  it('F42 a zero-op bind only synchronises: its out-fence signals after earlier jobs; sync waits for them', () => {
    const p: Program = {
      name: 'zero ops',
      setup(sim) {
        const w = world(sim, pattern);
        const q = w.vmb.createQueue('q0');
        const gate = new DmaFence(sim, 'gate');
        sim.spawn('ioctl', function* () {
          const first = yield* w.vmb.bind(q, [{ op: 'map', addr: 0, range: 4, obj: w.A }], {
            inFences: [gate],
          });
          const empty = yield* w.vmb.bind(q, []);
          yield* empty.job!.done.wait();
          if (!first.job!.done.signaled) throw new Error('zero-op out-fence signalled before an earlier job');
          const sync = yield* w.vmb.bind(q, [], { sync: true });
          expect(sync.ret).toBe(0);
          yield* w.vmb.closeQueues();
        });
        sim.spawn('producer', function* () {
          yield* gate.signal();
        });
        return hooks(w);
      },
    };
    assertClean(exploreAll(p));
  });

  it('a synchronous bind goes through the queue and so waits for every earlier job (2023 nouveau thread)', () => {
    const p = syncProgram(pattern, {});
    assertClean(exploreAll(p));
  });

  it('bug syncBypassesQueue: running the sync bind inline lets it overtake queued jobs (caught)', () => {
    const r = exploreAll(syncProgram(pattern, { syncBypassesQueue: true }));
    expect(r.failures.length).toBe(1);
    expect(r.failures[0]!.violation.message).toMatch(
      /device page table|completes in submission order|overtook/,
    );
  });

  it('bug unlinkBeforeLink: the victim vm_bo dies before the split pieces link to it (caught)', () => {
    const r = runOnce(splitProgram(pattern, { unlinkBeforeLink: true }), []);
    expect(r.violation?.kind).toMatch(/use-after-free|refcount/);
  });

  it('bug allocInRunJob: reported as alloc-in-forbidden-context', () => {
    const r = runOnce(splitProgram(pattern, { allocInRunJob: true }), []);
    expect(r.violation?.kind).toBe('alloc-in-forbidden-context');
    expect(r.violation?.message).toMatch(/fence-signalling context/);
  });

  it('bug resvLockInRunJob: reported as a fence-signalling violation', () => {
    const r = runOnce(splitProgram(pattern, { resvLockInRunJob: true }), []);
    expect(r.violation?.kind).toBe('fence-signalling');
  });
});

/** Splits an external mapping held only by its va (used by the bug variants). */
function splitProgram(pattern: VmBindPattern, bugs: VmBindBugs, flags?: number, unmapAll = false): Program {
  return {
    name: `split (${pattern})`,
    setup(sim) {
      const w = world(sim, pattern, { bugs, ...(flags === undefined ? {} : { flags }) });
      w.vmb.prepopulateNow(0, 8, w.X, 0);
      const q = w.vmb.createQueue('q0');
      sim.spawn('ioctl', function* () {
        const ops: BindOp[] = unmapAll
          ? [{ op: 'unmap', addr: 0, range: 8 }]
          : [{ op: 'unmap', addr: 2, range: 2 }];
        const res = yield* w.vmb.bind(q, ops, { sync: true });
        if (res.ret) throw new Error(`ret ${res.ret}`);
        yield* w.vmb.closeQueues();
      });
      return hooks(w);
    },
  };
}

function syncProgram(pattern: VmBindPattern, bugs: VmBindBugs): Program {
  return {
    name: `sync through the queue (${pattern})`,
    setup(sim) {
      const w = world(sim, pattern, { bugs });
      const q = w.vmb.createQueue('q0');
      const gate = new DmaFence(sim, 'gate');
      const t1 = sim.spawn('async ioctl', function* () {
        expect(
          (yield* w.vmb.bind(q, [{ op: 'map', addr: 0, range: 8, obj: w.A }], { inFences: [gate] })).ret,
        ).toBe(0);
      });
      const t2 = sim.spawn('sync ioctl', function* () {
        const before = [...q.submitted];
        const res = yield* w.vmb.bind(q, [{ op: 'map', addr: 4, range: 2, obj: w.X }], { sync: true });
        expect(res.ret).toBe(0);
        for (const s of before)
          if (!q.completed.includes(s)) sim.fail('assertion', `sync bind overtook job${s}`);
      });
      sim.spawn('producer + teardown', function* () {
        yield* gate.signal();
        yield* sim.join(t2);
        yield* sim.join(t1);
        yield* w.vmb.closeQueues();
      });
      return hooks(w);
    },
  };
}

describe('VM_BIND pattern-specific behaviour', () => {
  it('F41 run-job pattern: an unbind never fails for resource reasons (NOFAIL pre-allocation)', () => {
    const outcomes = new Set<number>();
    const p: Program = {
      name: 'unbind under memory pressure',
      options: { allocFailures: 2 },
      setup(sim) {
        const w = world(sim, 'run-job');
        w.vmb.prepopulateNow(0, 16, w.X, 0);
        const q = w.vmb.createQueue('q0');
        sim.spawn('ioctl', function* () {
          outcomes.add(
            (yield* w.vmb.bind(q, [
              { op: 'unmap', addr: 4, range: 4 },
              { op: 'unmap', addr: 10, range: 2 },
            ])).ret,
          );
          yield* w.vmb.closeQueues();
        });
        return hooks(w);
      },
    };
    assertClean(exploreAll(p));
    expect(outcomes).toEqual(new Set([0]));
  });

  it('F41 submit pattern: gpuvm op lists allocate with GFP_KERNEL, so an unbind CAN fail with -ENOMEM (finding)', () => {
    const outcomes = new Set<number>();
    const p: Program = {
      name: 'unbind via op lists',
      options: { allocFailures: 1 },
      setup(sim) {
        const w = world(sim, 'submit');
        w.vmb.prepopulateNow(0, 16, w.X, 0);
        const q = w.vmb.createQueue('q0');
        sim.spawn('ioctl', function* () {
          outcomes.add((yield* w.vmb.bind(q, [{ op: 'unmap', addr: 4, range: 4 }])).ret);
          yield* w.vmb.closeQueues();
        });
        return hooks(w);
      },
    };
    assertClean(exploreAll(p));
    expect(outcomes).toEqual(new Set([0, -ENOMEM]));
  });

  it('submit pattern: overlapping jobs on different queues are ordered by implicit dependencies', () => {
    assertClean(exploreAll(crossQueueOverlap({})));
  });

  it('bug noImplicitDeps: overlapping jobs on two queues write page tables out of tree order (caught)', () => {
    const r = exploreAll(crossQueueOverlap({ noImplicitDeps: true }));
    expect(r.failures.length).toBe(1);
    expect(r.failures[0]!.violation.message).toMatch(/device page table/);
  });

  it('bug noUnwind: a failed multi-op ioctl leaves earlier ops applied (caught)', () => {
    const r = runOnce(
      {
        name: 'no unwind',
        setup(sim) {
          const w = world(sim, 'submit', { bugs: { noUnwind: true } });
          const q = w.vmb.createQueue('q0');
          sim.spawn('ioctl', function* () {
            const res = yield* w.vmb.bind(q, [
              { op: 'map', addr: 0, range: 4, obj: w.A },
              { op: 'map', addr: 60, range: 8, obj: w.A },
            ]);
            expect(res.ret).toBe(-EINVAL);
            yield* w.vmb.closeQueues();
          });
          return hooks(w);
        },
      },
      [],
    );
    expect(r.violation?.message).toMatch(/device page table matches the VA tree|nothing leaked|no job left/);
  });

  it('bug lockTreeInRunJob (submit pattern): the VM lock is held across allocation, so taking it in run_job is a lockdep cycle', () => {
    const r = runOnce(splitProgram('submit', { lockTreeInRunJob: true }), []);
    expect(r.violation?.kind).toBe('lock-order');
    expect(r.violation?.details?.join('\n')).toMatch(/fs_reclaim/);
  });

  it('bug putInRunJob (run-job pattern, PowerVR flags): a destroying vm_bo put in run_job is flagged', () => {
    const r = runOnce(splitProgram('run-job', { putInRunJob: true }, GpuvmFlags.IMMEDIATE_MODE, true), []);
    expect(r.violation?.kind).toBe('fence-signalling');
    expect(r.violation?.message).toMatch(/drm_gem_object_put\(X\)/);
  });

  it('bug putInRunJob in a RESV_PROTECTED VM (panthor flags): the destroy needs the VM resv (lockdep)', () => {
    const r = runOnce(splitProgram('run-job', { putInRunJob: true }, undefined, true), []);
    expect(r.violation?.kind).toBe('lockdep-assert');
  });

  it('run-job pattern: a map inside one va consumes exactly the worst case (1 MAP + 2 pieces)', () => {
    let consumed = -1;
    const r = runOnce(
      {
        name: 'worst case',
        setup(sim) {
          const w = world(sim, 'run-job');
          w.vmb.prepopulateNow(0, 16, w.X, 0);
          const q = w.vmb.createQueue('q0');
          sim.spawn('ioctl', function* () {
            const res = yield* w.vmb.bind(q, [{ op: 'map', addr: 4, range: 4, obj: w.A }]);
            yield* res.job!.done.wait();
            consumed = res.job!.prealloc.consumedVas;
            yield* w.vmb.closeQueues();
          });
          return hooks(w);
        },
      },
      [],
    );
    expect(r.violation).toBeUndefined();
    expect(consumed).toBe(3);
  });

  it('sanity: pct over three ioctl threads on two queues keeps every check', () => {
    for (const pattern of PATTERNS) {
      const p: Program = {
        name: `three ioctls (${pattern})`,
        setup(sim) {
          const w = world(sim, pattern);
          w.vmb.prepopulateNow(0, 16, w.X, 0);
          const qa = w.vmb.createQueue('qa');
          const qb = w.vmb.createQueue('qb');
          const ts = [
            sim.spawn('T0', function* () {
              yield* w.vmb.bind(qa, [{ op: 'map', addr: 2, range: 4, obj: w.A }]);
            }),
            sim.spawn('T1', function* () {
              yield* w.vmb.bind(qb, [{ op: 'unmap', addr: 4, range: 6 }], { sync: true });
            }),
            sim.spawn('T2', function* () {
              yield* w.vmb.bind(qa, [{ op: 'map', addr: 8, range: 8, obj: null }]);
            }),
          ];
          sim.spawn('teardown', function* () {
            for (const t of ts) yield* sim.join(t);
            yield* w.vmb.closeQueues();
          });
          return {
            ...hooks(w),
            properties: { ...w.vmb.checks(), gpuvm: () => checkGpuvm(w.vmb.vm) ?? true },
          };
        },
      };
      const r = explore(p, { strategy: pct({ depth: 3, seed: 11 }), budgets: { maxRuns: 300 } });
      assertClean(r);
    }
  });
});

function crossQueueOverlap(bugs: VmBindBugs): Program {
  return {
    name: 'overlap across queues (submit)',
    setup(sim) {
      const w = world(sim, 'submit', { bugs });
      const qa = w.vmb.createQueue('qa');
      const qb = w.vmb.createQueue('qb');
      const gate = new DmaFence(sim, 'gate');
      const t = sim.spawn('ioctl', function* () {
        expect(
          (yield* w.vmb.bind(qa, [{ op: 'map', addr: 0, range: 4, obj: w.A }], { inFences: [gate] })).ret,
        ).toBe(0);
        expect((yield* w.vmb.bind(qb, [{ op: 'map', addr: 2, range: 4, obj: w.X }])).ret).toBe(0);
      });
      sim.spawn('producer + teardown', function* () {
        yield* gate.signal();
        yield* sim.join(t);
        yield* w.vmb.closeQueues();
      });
      return hooks(w);
    },
  };
}
