import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IntervalTree, type NodeId } from '../src/interval-tree/index.js';

/** One stored interval in the naive reference. `seq` is the global insertion counter. */
interface Entry {
  id: NodeId;
  start: number;
  last: number;
  value: number;
  seq: number;
}

/** Naive model: an unordered array; queries filter and sort into the kernel's order. */
class Reference {
  entries: Entry[] = [];
  private seq = 0;

  add(id: NodeId, start: number, last: number, value: number): void {
    this.entries.push({ id, start, last, value, seq: this.seq++ });
  }

  delete(id: NodeId): void {
    const i = this.entries.findIndex((e) => e.id === id);
    if (i < 0) throw new Error(`reference has no id ${id}`);
    this.entries.splice(i, 1);
  }

  /** All entries in tree order: ascending start, ties by insertion order. */
  ordered(): Entry[] {
    return [...this.entries].sort((a, b) => a.start - b.start || a.seq - b.seq);
  }

  overlapping(start: number, last: number): NodeId[] {
    return this.ordered()
      .filter((e) => e.start <= last && start <= e.last)
      .map((e) => e.id);
  }
}

function viaIter(tree: IntervalTree<unknown>, start: number, last: number): NodeId[] {
  const out: NodeId[] = [];
  for (let n = tree.iterFirst(start, last); n !== -1; n = tree.iterNext(n, start, last)) out.push(n);
  return out;
}

function viaForEach(tree: IntervalTree<unknown>, start: number, last: number): NodeId[] {
  const out: NodeId[] = [];
  tree.forEachOverlap(start, last, (n) => {
    out.push(n);
  });
  return out;
}

function inOrder(tree: IntervalTree<unknown>): NodeId[] {
  const out: NodeId[] = [];
  for (let n = tree.firstNode(); n !== -1; n = tree.nextNode(n)) out.push(n);
  return out;
}

function reverseOrder(tree: IntervalTree<unknown>): NodeId[] {
  const out: NodeId[] = [];
  for (let n = tree.lastNode(); n !== -1; n = tree.prevNode(n)) out.push(n);
  return out;
}

type Op =
  | { kind: 'insert'; start: number; len: number }
  | { kind: 'remove'; pick: number }
  | { kind: 'query'; start: number; len: number };

/** Random operation sequences over `[base, base + span]` with interval lengths up to `maxLen`. */
function opsArb(base: number, span: number, maxLen: number, maxOps: number): fc.Arbitrary<Op[]> {
  const start = fc.integer({ min: 0, max: span }).map((x) => base + x);
  const len = fc.integer({ min: 0, max: maxLen });
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('insert' as const), start, len }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('query' as const), start, len }) },
  );
  return fc.array(op, { maxLength: maxOps, size: 'max' });
}

/** Replays `ops` on a tree and the reference, asserting agreement after every step. */
function replay(ops: Op[]): void {
  const tree = new IntervalTree<number>(2);
  const ref = new Reference();
  let value = 0;
  for (const op of ops) {
    if (op.kind === 'insert') {
      const id = tree.insert(op.start, op.start + op.len, value);
      expect(ref.entries.some((e) => e.id === id)).toBe(false);
      ref.add(id, op.start, op.start + op.len, value);
      value++;
    } else if (op.kind === 'remove') {
      if (ref.entries.length === 0) continue;
      const victim = ref.entries[op.pick % ref.entries.length]!;
      tree.remove(victim.id);
      ref.delete(victim.id);
    } else {
      const last = op.start + op.len;
      const expected = ref.overlapping(op.start, last);
      expect(viaIter(tree, op.start, last)).toEqual(expected);
      expect(viaForEach(tree, op.start, last)).toEqual(expected);
      expect([...tree.overlapping(op.start, last)]).toEqual(expected);
    }
    tree.checkInvariants();
    expect(tree.size).toBe(ref.entries.length);
  }
  const ordered = ref.ordered();
  expect(inOrder(tree)).toEqual(ordered.map((e) => e.id));
  expect(reverseOrder(tree)).toEqual(ordered.map((e) => e.id).reverse());
  for (const e of ordered) {
    expect(tree.start(e.id)).toBe(e.start);
    expect(tree.last(e.id)).toBe(e.last);
    expect(tree.value(e.id)).toBe(e.value);
  }
}

describe('IntervalTree against a naive reference (fast-check)', () => {
  it('small domain: many duplicates and equal starts', () => {
    fc.assert(
      fc.property(opsArb(0, 40, 8, 200), (ops) => replay(ops)),
      { numRuns: 300 },
    );
  });

  it('wide domain with long intervals', () => {
    fc.assert(
      fc.property(opsArb(0, 1_000_000, 200_000, 300), (ops) => replay(ops)),
      { numRuns: 100 },
    );
  });

  it('values near 2^52 and near 2^53 - 1', () => {
    fc.assert(
      fc.property(opsArb(2 ** 52 - 50, 100, 60, 150), (ops) => replay(ops)),
      { numRuns: 100 },
    );
    fc.assert(
      fc.property(opsArb(Number.MAX_SAFE_INTEGER - 300, 200, 100, 150), (ops) => replay(ops)),
      { numRuns: 100 },
    );
  });

  it('iterNext from any live node returns the next overlapping node in tree order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 10 })), {
          minLength: 1,
          maxLength: 80,
          size: 'max',
        }),
        fc.integer({ min: 0, max: 70 }),
        fc.integer({ min: 0, max: 10 }),
        (intervals, qs, qlen) => {
          const tree = new IntervalTree<number>();
          const ref = new Reference();
          for (const [i, [s, len]] of intervals.entries()) ref.add(tree.insert(s, s + len, i), s, s + len, i);
          const ordered = ref.ordered();
          const ql = qs + qlen;
          ordered.forEach((e, i) => {
            const after = ordered.slice(i + 1).find((o) => o.start <= ql && qs <= o.last);
            expect(tree.iterNext(e.id, qs, ql)).toBe(after ? after.id : -1);
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('removing each visited node from inside forEachOverlap and overlapping()', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 20 })), {
          maxLength: 120,
          size: 'max',
        }),
        fc.integer({ min: 0, max: 110 }),
        fc.integer({ min: 0, max: 30 }),
        fc.boolean(),
        (intervals, qs, qlen, useGenerator) => {
          const tree = new IntervalTree<number>();
          const ref = new Reference();
          for (const [i, [s, len]] of intervals.entries()) ref.add(tree.insert(s, s + len, i), s, s + len, i);
          const ql = qs + qlen;
          const expected = ref.overlapping(qs, ql);
          const seen: NodeId[] = [];
          if (useGenerator) {
            for (const n of tree.overlapping(qs, ql)) {
              seen.push(n);
              tree.remove(n);
            }
          } else {
            tree.forEachOverlap(qs, ql, (n) => {
              seen.push(n);
              tree.remove(n);
            });
          }
          expect(seen).toEqual(expected);
          for (const id of expected) ref.delete(id);
          tree.checkInvariants();
          expect(tree.size).toBe(ref.entries.length);
          expect(viaIter(tree, qs, ql)).toEqual([]);
          expect(inOrder(tree)).toEqual(ref.ordered().map((e) => e.id));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('IntervalTree edge cases', () => {
  it('closed ends: touching endpoints overlap, disjoint ones do not', () => {
    const tree = new IntervalTree<string>();
    const a = tree.insert(5, 5, 'a');
    const b = tree.insert(1, 4, 'b');
    const c = tree.insert(9, 12, 'c');
    const d = tree.insert(10, 12, 'd');
    expect(viaIter(tree, 5, 9)).toEqual([a, c]);
    expect(viaIter(tree, 4, 4)).toEqual([b]);
    expect(viaIter(tree, 0, 0)).toEqual([]);
    expect(viaIter(tree, 13, 100)).toEqual([]);
    expect(viaIter(tree, 0, 100)).toEqual([b, a, c, d]);
    expect(viaIter(tree, 12, 12)).toEqual([c, d]);
    expect(tree.value(a)).toBe('a');
  });

  it('empty tree', () => {
    const tree = new IntervalTree<number>();
    expect(tree.size).toBe(0);
    expect(tree.iterFirst(0, Number.MAX_SAFE_INTEGER)).toBe(-1);
    expect(tree.firstNode()).toBe(-1);
    expect(tree.lastNode()).toBe(-1);
    expect([...tree.overlapping(0, 10)]).toEqual([]);
    let calls = 0;
    tree.forEachOverlap(0, 10, () => {
      calls++;
    });
    expect(calls).toBe(0);
    tree.checkInvariants();
  });

  it('removing the root repeatedly until the tree is empty', () => {
    const tree = new IntervalTree<number>();
    const ref = new Reference();
    for (let i = 0; i < 200; i++)
      ref.add(tree.insert((i * 37) % 101, ((i * 37) % 101) + (i % 7), i), 0, 0, i);
    const root = () => (tree as unknown as { root: number }).root;
    while (tree.size > 0) {
      const r = root();
      tree.remove(r);
      ref.delete(r);
      tree.checkInvariants();
      expect(inOrder(tree)).toHaveLength(ref.entries.length);
    }
    expect(tree.firstNode()).toBe(-1);
    expect(tree.iterFirst(0, 1000)).toBe(-1);
  });

  it('duplicates keep insertion order, also after removals', () => {
    const tree = new IntervalTree<number>();
    const ids = [0, 1, 2, 3, 4].map((v) => tree.insert(3, 7, v));
    const other = tree.insert(1, 3, 99);
    expect(new Set(ids).size).toBe(5);
    expect(viaIter(tree, 7, 7)).toEqual(ids);
    expect(viaIter(tree, 3, 3)).toEqual([other, ...ids]);
    tree.remove(ids[2]!);
    const late = tree.insert(3, 7, 5);
    expect(viaIter(tree, 4, 4)).toEqual([ids[0], ids[1], ids[3], ids[4], late]);
    expect(viaIter(tree, 4, 4).map((n) => tree.value(n))).toEqual([0, 1, 3, 4, 5]);
    tree.checkInvariants();
  });

  it('handles addresses up to 2^53 - 1 exactly', () => {
    const tree = new IntervalTree<string>();
    const user = 2 ** 47;
    const a = tree.insert(user - 4096, user - 1, 'top of user space');
    const b = tree.insert(2 ** 52, 2 ** 52 + 1, 'near 2^52');
    const c = tree.insert(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'max');
    const d = tree.insert(0, Number.MAX_SAFE_INTEGER, 'everything');
    expect(viaIter(tree, user - 1, user)).toEqual([d, a]);
    expect(viaIter(tree, user, user)).toEqual([d]);
    expect(viaIter(tree, 2 ** 52 + 1, 2 ** 52 + 1)).toEqual([d, b]);
    expect(viaIter(tree, 2 ** 52 + 2, Number.MAX_SAFE_INTEGER - 1)).toEqual([d]);
    expect(viaIter(tree, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)).toEqual([d, c]);
    expect(tree.last(c)).toBe(Number.MAX_SAFE_INTEGER);
    tree.checkInvariants();
  });

  it('rejects bad endpoints with a RangeError naming the argument', () => {
    const tree = new IntervalTree<number>();
    expect(() => tree.insert(1.5, 2, 0)).toThrow(RangeError);
    expect(() => tree.insert(1.5, 2, 0)).toThrow(/start/);
    expect(() => tree.insert(-1, 2, 0)).toThrow(/start/);
    expect(() => tree.insert(Number.NaN, 2, 0)).toThrow(/start/);
    expect(() => tree.insert(2 ** 53, 2 ** 53, 0)).toThrow(/start/);
    expect(() => tree.insert(Number.POSITIVE_INFINITY, 1, 0)).toThrow(/start/);
    expect(() => tree.insert('1' as unknown as number, 2, 0)).toThrow(/start/);
    expect(() => tree.insert(1, 2.5, 0)).toThrow(/last/);
    expect(() => tree.insert(1, Number.NaN, 0)).toThrow(/last/);
    expect(() => tree.insert(1, -3, 0)).toThrow(/last/);
    expect(() => tree.insert(5, 4, 0)).toThrow(RangeError);
    expect(() => tree.insert(5, 4, 0)).toThrow(/last \(4\) must not be below start \(5\)/);
    expect(() => tree.iterFirst(3, 1)).toThrow(RangeError);
    expect(() => tree.iterFirst(0.5, 1)).toThrow(/start/);
    expect(() => tree.forEachOverlap(0, -1, () => {})).toThrow(/last/);
    expect(() => tree.overlapping(-1, 1)).toThrow(/start/);
    expect(() => new IntervalTree(-1)).toThrow(/initialCapacity/);
    expect(tree.size).toBe(0);
    tree.checkInvariants();
  });

  it('rejects dead and unknown node ids', () => {
    const tree = new IntervalTree<number>();
    const a = tree.insert(1, 2, 0);
    const b = tree.insert(3, 4, 1);
    for (const bad of [0, -1, 1.5, 999, Number.NaN]) {
      expect(() => tree.remove(bad)).toThrow(RangeError);
      expect(() => tree.value(bad)).toThrow(/node/);
    }
    tree.remove(a);
    expect(() => tree.remove(a)).toThrow(/not a live node/);
    expect(() => tree.start(a)).toThrow(RangeError);
    expect(() => tree.last(a)).toThrow(RangeError);
    expect(() => tree.iterNext(a, 0, 10)).toThrow(RangeError);
    expect(() => tree.nextNode(a)).toThrow(RangeError);
    expect(() => tree.prevNode(a)).toThrow(RangeError);
    expect(tree.size).toBe(1);
    expect(tree.value(b)).toBe(1);
    tree.checkInvariants();
  });

  it('reuses the ids of removed nodes', () => {
    const tree = new IntervalTree<number>();
    const a = tree.insert(1, 2, 0);
    tree.insert(3, 4, 1);
    tree.remove(a);
    const c = tree.insert(10, 20, 2);
    expect(c).toBe(a);
    expect(tree.start(c)).toBe(10);
    expect(tree.value(c)).toBe(2);
    tree.checkInvariants();
  });

  it('grows from capacity 0 and survives a large random workload', () => {
    const tree = new IntervalTree<number>(0);
    const live: NodeId[] = [];
    let s = 12345;
    const rand = () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return s >>> 0;
    };
    for (let i = 0; i < 20_000; i++) {
      if (live.length > 0 && rand() % 3 === 0) {
        const k = rand() % live.length;
        tree.remove(live[k]!);
        live[k] = live[live.length - 1]!;
        live.pop();
      } else {
        const start = rand() * 1024;
        live.push(tree.insert(start, start + (rand() % 5000), i));
      }
      if (i % 5000 === 0) tree.checkInvariants();
    }
    tree.checkInvariants();
    expect(tree.size).toBe(live.length);
    for (const id of live) expect(viaIter(tree, tree.start(id), tree.start(id))).toContain(id);
  });

  it('forEachOverlap stops when the callback returns false', () => {
    const tree = new IntervalTree<number>();
    for (let i = 0; i < 10; i++) tree.insert(i, i + 10, i);
    const seen: number[] = [];
    tree.forEachOverlap(5, 5, (n) => {
      seen.push(tree.value(n));
      return seen.length < 3;
    });
    expect(seen).toEqual([0, 1, 2]);
  });

  it('clear() empties the tree and invalidates ids', () => {
    const tree = new IntervalTree<number>();
    const ids = [tree.insert(1, 2, 0), tree.insert(3, 4, 1), tree.insert(5, 6, 2)];
    tree.remove(ids[1]!);
    tree.clear();
    expect(tree.size).toBe(0);
    expect(tree.iterFirst(0, 10)).toBe(-1);
    for (const id of ids) expect(() => tree.value(id)).toThrow(RangeError);
    tree.checkInvariants();
    const again = tree.insert(7, 8, 3);
    expect(tree.value(again)).toBe(3);
    expect(viaIter(tree, 0, 10)).toEqual([again]);
    tree.checkInvariants();
  });

  it('checkInvariants detects a corrupted subtree maximum and colouring', () => {
    const tree = new IntervalTree<number>();
    for (let i = 0; i < 50; i++) tree.insert(i, i + 3, i);
    tree.checkInvariants();
    const internals = tree as unknown as { mx: Float64Array; colour: Uint8Array; root: number };
    const saved = internals.mx[internals.root]!;
    internals.mx[internals.root] = saved + 1;
    expect(() => tree.checkInvariants()).toThrow(/subtree max/);
    internals.mx[internals.root] = saved;
    internals.colour[internals.root] = 1;
    expect(() => tree.checkInvariants()).toThrow(/not black/);
  });
});
