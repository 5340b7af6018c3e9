/**
 * gpuvm.md §8 part A: init, ranges, lookup, iteration (plain, no simulated threads), and the VM
 * lifecycle (§8 D25).
 */
import { EEXIST, EINVAL, Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { checkTree, GemObject, GpuVa, GpuVm, U64_LIMIT, U64_MAX } from '../src/index.js';
import { fixture, place } from './helpers.js';

const A = 'A' as const;

describe('A1 init and the kernel-reserved node', () => {
  it('without a reservation the tree is empty; name defaults to "unknown"', () => {
    const sim = new Sim();
    const vm = new GpuVm(sim, {
      rObj: new GemObject(sim, 'r'),
      start: 0,
      range: 100,
      ops: { vmFree: () => {} },
    });
    expect(vm.name).toBe('unknown');
    expect(vm.size).toBe(0);
    expect(vm.kref).toBe(1);
    expect(vm.rObj.refcount).toBe(2);
  });

  it('the reserved node is in for_each_va, takes no VM reference, and remove() on it WARNs and does nothing', () => {
    const f = fixture({ reserveOffset: 100, reserveRange: 28 });
    place(f, [
      [0, 4, A, 0],
      [200, 4, A, 0],
    ]);
    expect([...f.vm.vas()].map((v) => v.toString())).toEqual([
      '[0,4)->A@0',
      '[100,128)->-@0',
      '[200,204)->A@0',
    ]);
    expect(f.vm.kref).toBe(3);
    f.vm.remove(f.vm.kernelAllocNode);
    expect(f.vm.warnings).toEqual(["WARNING: vm: Can't destroy kernel reserved node."]);
    expect(f.vm.size).toBe(3);
    expect(f.vm.kref).toBe(3);
  });

  it('the reserved node may lie outside the window and is inserted without validity check', () => {
    const f = fixture({ reserveOffset: 5000, reserveRange: 10 });
    expect(f.vm.kernelAllocNode.inserted).toBe(true);
    expect(f.vm.findFirst(5000, 1)).toBe(f.vm.kernelAllocNode);
  });

  it('an overflowing window or reservation WARNs; the overflowing reservation is not inserted', () => {
    const sim = new Sim();
    const vm = new GpuVm(sim, {
      name: 'ovf',
      rObj: new GemObject(sim, 'r'),
      start: U64_MAX - 10,
      range: 100,
      reserveOffset: U64_MAX - 1,
      reserveRange: 4,
      ops: { vmFree: () => {} },
    });
    expect(vm.warnings.length).toBe(2);
    expect(vm.kernelAllocNode.inserted).toBe(false);
  });
});

describe('A2 range_valid', () => {
  const f = fixture({ start: 16, range: 1000, reserveOffset: 500, reserveRange: 100 });
  const cases: [string, number, number, boolean][] = [
    ['below the window', 8, 16, false],
    ['starting at the window start', 16, 4, true],
    ['above the window', 1016, 1, false],
    ['ending exactly at the window end', 1000, 16, true],
    ['ending one past the window end', 1001, 16, false],
    ['addr + range == 2^53 (the model word; 2^64 upstream)', 1, U64_LIMIT - 1, false],
    ['overlapping the reserved node at its start', 490, 11, false],
    ['touching the reserved node start', 490, 10, true],
    ['overlapping the reserved node at its end', 599, 2, false],
    ['touching the reserved node end', 600, 5, true],
    ['inside the reserved node', 520, 10, false],
    ['containing the reserved node', 400, 300, false],
    ['range 0 outside the reserved node', 300, 0, true],
    ['range 0 strictly inside the reserved node', 550, 0, false],
    ['range 0 at the reserved node start', 500, 0, true],
  ];
  it.each(cases)('%s', (_n, addr, range, valid) => {
    expect(f.vm.rangeValid(addr, range)).toBe(valid);
  });
  it('non-integers and negatives are a misuse of the model (RangeError), not an errno', () => {
    expect(() => f.vm.rangeValid(-1, 1)).toThrow(RangeError);
    expect(() => f.vm.rangeValid(1.5, 1)).toThrow(RangeError);
  });
});

describe('A3 insert and remove', () => {
  it('success, -EINVAL, -EEXIST at the start, at the end and by containment; VM refs', () => {
    const f = fixture();
    const [va] = place(f, [[10, 10, A, 0]]);
    expect(f.vm.kref).toBe(2);
    expect(va!.vm).toBe(f.vm);
    expect(f.vm.insert(new GpuVa(1020, 8))).toBe(-EINVAL);
    expect(f.vm.insert(new GpuVa(5, 6))).toBe(-EEXIST);
    expect(f.vm.insert(new GpuVa(19, 3))).toBe(-EEXIST);
    expect(f.vm.insert(new GpuVa(12, 2))).toBe(-EEXIST);
    expect(f.vm.insert(new GpuVa(8, 20))).toBe(-EEXIST);
    expect(f.vm.insert(new GpuVa(5, 5))).toBe(0);
    expect(f.vm.insert(new GpuVa(20, 5))).toBe(0);
    expect(f.vm.kref).toBe(4);
    f.vm.remove(va!);
    expect(f.vm.kref).toBe(3);
    expect(va!.vm).toBe(f.vm);
    expect(va!.inserted).toBe(false);
    expect(checkTree(f.vm)).toBeNull();
  });
  it('removing a va that is not in the tree is reported', () => {
    const f = fixture();
    expect(() => f.vm.remove(new GpuVa(0, 1))).toThrow(/gpuva-not-inserted/);
  });
  it('zero-length insert: -EEXIST over a straddler (as upstream); otherwise refused with -EINVAL (model)', () => {
    const f = fixture();
    place(f, [[10, 10, A, 0]]);
    expect(f.vm.insert(new GpuVa(15, 0))).toBe(-EEXIST);
    expect(f.vm.insert(new GpuVa(30, 0))).toBe(-EINVAL);
  });
});

describe('A4 find and find_first', () => {
  const f = fixture();
  place(f, [
    [10, 10, A, 0],
    [30, 5, A, 0],
  ]);
  it('find matches only the exact va', () => {
    expect(f.vm.find(10, 10)?.toString()).toBe('[10,20)->A@0');
    expect(f.vm.find(10, 9)).toBeNull();
    expect(f.vm.find(11, 9)).toBeNull();
  });
  it('find_first returns the lowest intersecting va of the closed interval', () => {
    expect(f.vm.findFirst(0, 100)?.va.addr).toBe(10);
    expect(f.vm.findFirst(25, 10)?.va.addr).toBe(30);
    expect(f.vm.findFirst(0, 10)).toBeNull();
    expect(f.vm.findFirst(0, 11)?.va.addr).toBe(10);
    expect(f.vm.findFirst(20, 10)).toBeNull();
    expect(f.vm.findFirst(19, 1)?.va.addr).toBe(10);
  });
});

describe('A5 find_prev and find_next with their quirks', () => {
  const f = fixture({ reserveOffset: 100, reserveRange: 10 });
  place(f, [
    [10, 10, A, 0],
    [21, 4, A, 0],
    [30, 5, A, 0],
    [35, 5, A, 0],
  ]);
  it('find_prev: the va covering start-1', () => {
    expect(f.vm.findPrev(25)?.va.addr).toBe(21);
    expect(f.vm.findPrev(30)?.va.addr).toBe(30);
    expect(f.vm.findPrev(35)?.va.addr).toBe(30);
  });
  it('find_prev quirk: nothing covers start-1 but a va begins at start', () => {
    expect(f.vm.findPrev(21)?.va.addr).toBe(21);
  });
  it('find_prev: NULL for start == 0, start-1 outside the window, start-1 in the reserved node', () => {
    expect(f.vm.findPrev(0)).toBeNull();
    expect(f.vm.findPrev(105)).toBeNull();
    expect(f.vm.findPrev(50)).toBeNull();
  });
  it('find_next: the va covering end', () => {
    expect(f.vm.findNext(30)?.va.addr).toBe(30);
    expect(f.vm.findNext(35)?.va.addr).toBe(35);
  });
  it('find_next quirk: nothing covers end but a va begins at end+1', () => {
    expect(f.vm.findNext(20)?.va.addr).toBe(21);
  });
  it('find_next: NULL when [end, end+1) is invalid', () => {
    expect(f.vm.findNext(1024)).toBeNull();
    expect(f.vm.findNext(100)).toBeNull();
    expect(f.vm.findNext(50)).toBeNull();
  });
});

describe('A6 iteration', () => {
  it('ascending order after random inserts and removes; the safe variant tolerates removing the current va', () => {
    const f = fixture();
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const live: GpuVa[] = [];
    for (let i = 0; i < 400; i++) {
      if (live.length && rand() % 3 === 0) {
        const va = live.splice(rand() % live.length, 1)[0]!;
        f.vm.remove(va);
      } else {
        const va = new GpuVa(rand() % 1000, 1 + (rand() % 20));
        if (f.vm.insert(va) === 0) live.push(va);
      }
      expect(checkTree(f.vm)).toBeNull();
    }
    const addrs = [...f.vm.vas()].map((v) => v.va.addr);
    expect(addrs).toEqual([...live].map((v) => v.va.addr).sort((a, b) => a - b));
    let seen = 0;
    for (const va of f.vm.vasSafe()) {
      f.vm.remove(va);
      seen++;
    }
    expect(seen).toBe(live.length);
    expect(f.vm.size).toBe(0);
  });
  it('range iteration starts at find_first and stops before end; the reserved node is not skipped', () => {
    const f = fixture({ reserveOffset: 50, reserveRange: 10 });
    place(f, [
      [40, 5, A, 0],
      [45, 10 - 5, A, 0],
      [60, 5, A, 0],
      [70, 5, A, 0],
    ]);
    expect([...f.vm.vasRange(42, 70)].map((v) => v.va.addr)).toEqual([40, 45, 50, 60]);
    const out: number[] = [];
    for (const va of f.vm.vasRangeSafe(0, 1024)) {
      out.push(va.va.addr);
      if (!va.reserved) f.vm.remove(va);
    }
    expect(out).toEqual([40, 45, 50, 60, 70]);
  });
});

describe('A7 interval_empty', () => {
  it('over gaps, vas and the reserved node', () => {
    const f = fixture({ reserveOffset: 100, reserveRange: 10 });
    place(f, [[10, 10, A, 0]]);
    expect(f.vm.intervalEmpty(0, 10)).toBe(true);
    expect(f.vm.intervalEmpty(0, 11)).toBe(false);
    expect(f.vm.intervalEmpty(20, 80)).toBe(true);
    expect(f.vm.intervalEmpty(20, 81)).toBe(false);
  });
});

describe('D25 VM teardown', () => {
  it('a clean final put removes the reserved node, drops r_obj and calls vm_free', () => {
    let freed = 0;
    const f = fixture({ reserveOffset: 100, reserveRange: 10, ops: { vmFree: () => freed++ } });
    const [va] = place(f, [[0, 4, A, 0]]);
    f.vm.put();
    expect(f.vm.freed).toBe(false);
    f.vm.remove(va!);
    expect(f.vm.freed).toBe(true);
    expect(freed).toBe(1);
    expect(f.vm.warnings).toEqual([]);
    expect(f.vm.kernelAllocNode.inserted).toBe(false);
    expect(f.vm.name).toBeNull();
    expect(f.vm.rObj.refcount).toBe(1);
  });
  it('vas pin the VM: a driver that drops its reference with mappings left never frees it', () => {
    const f = fixture();
    place(f, [[0, 4, A, 0]]);
    f.vm.put();
    expect(f.vm.freed).toBe(false);
    expect(f.vm.kref).toBe(1);
  });
  it('a missing vm_free WARNs at the final put', () => {
    const sim = new Sim();
    const vm = new GpuVm(sim, { name: 'nofree', rObj: new GemObject(sim, 'r'), start: 0, range: 10 });
    vm.put();
    expect(vm.warnings.some((w) => /vm_free/.test(w))).toBe(true);
  });
  it('using a freed VM is a use-after-free; failOnWarn turns WARNs into violations', () => {
    const f = fixture();
    f.vm.put();
    expect(() => f.vm.insert(new GpuVa(0, 1))).toThrow(/use-after-free/);
    const g = fixture({ failOnWarn: true, reserveOffset: 0, reserveRange: 1 });
    expect(() => g.vm.remove(g.vm.kernelAllocNode)).toThrow(/drm-warn/);
  });
});

describe('drm_gpuvm_resv_object_alloc', () => {
  it('allocates a private GEM to serve as the VM resv holder (may fail)', async () => {
    const { runOnce } = await import('@hmmkit/sim');
    const { gpuvmResvObjectAlloc } = await import('../src/index.js');
    const seen: (string | null)[] = [];
    for (const choices of [[], [1]]) {
      runOnce(
        {
          name: 'resv object',
          options: { allocFailures: 1 },
          setup(sim) {
            sim.spawn('T', function* () {
              const obj = yield* gpuvmResvObjectAlloc(sim);
              seen.push(obj ? obj.name : null);
              if (obj) {
                const vm = new GpuVm(sim, { rObj: obj, start: 0, range: 8, ops: { vmFree: () => {} } });
                vm.put();
                obj.put();
                expect(obj.freed).toBe(true);
              }
            });
          },
        },
        choices,
      );
    }
    expect(seen).toEqual(['drm_gpuvm r_obj', null]);
  });
});
