/**
 * An augmented interval tree modelled on the Linux kernel's generic interval tree
 * (`include/linux/interval_tree_generic.h`, instantiated by `lib/interval_tree.c`).
 *
 * Semantics that follow the kernel:
 * - intervals are closed, `[start, last]`, and `last` is inclusive;
 * - duplicates (even identical intervals) are allowed; nodes are ordered by `start`, and a node
 *   whose `start` equals existing ones is placed after them (the kernel's red-black insertion
 *   descends to the right on ties), so tree order is "ascending start, then insertion order";
 * - every node caches the largest `last` of its subtree, which makes a query cost
 *   O(log n + k) for k results;
 * - {@link IntervalTree.iterFirst} / {@link IntervalTree.iterNext} mirror
 *   `interval_tree_iter_first()` / `interval_tree_iter_next()`.
 *
 * The implementation is independent (not a translation of kernel code): a red-black tree in a
 * struct-of-arrays layout with a sentinel at index 0, so that no operation except capacity growth
 * allocates.
 *
 * @module
 */

/**
 * Handle of one stored interval: a small positive integer, valid until the interval is removed.
 *
 * Ids of removed intervals are recycled by later inserts, so a stale id may name a different,
 * newer interval; do not keep ids of removed intervals.
 */
export type NodeId = number;

/** Colour of a black node (also the colour of the sentinel). */
const BLACK = 0;
/** Colour of a red node. */
const RED = 1;
/** Marks an id that is on the free list. */
const FREE = 2;
/** The sentinel: index 0 stands for "no node" inside the arrays. */
const NIL = 0;
/** Largest accepted endpoint. */
const MAX_VALUE = Number.MAX_SAFE_INTEGER;

/** True for an integer in `[0, 2^53 - 1]` (false for NaN, infinities, fractions, non-numbers). */
function isEndpoint(x: number): boolean {
  return x >= 0 && x <= MAX_VALUE && Math.floor(x) === x;
}

function badEndpoint(method: string, name: string, x: unknown): RangeError {
  return new RangeError(
    `IntervalTree.${method}: ${name} must be an integer in [0, 2^53 - 1], got ${String(x)}`,
  );
}

/**
 * Augmented red-black interval tree over closed intervals `[start, last]` of non-negative safe
 * integers, each carrying a value of type `T`.
 *
 * Costs: {@link IntervalTree.insert}, {@link IntervalTree.remove} O(log n);
 * {@link IntervalTree.iterFirst} O(log n); a full query O(log n + k) for k results;
 * {@link IntervalTree.iterNext} amortised O(1) per result within a query
 * (worst case O(log n)). Storage is a set of typed arrays that doubles when full; ids of removed
 * nodes are reused (last freed, first reused).
 *
 * Mutating the tree while iterating a query is not allowed, with one exception documented on
 * {@link IntervalTree.forEachOverlap} and {@link IntervalTree.overlapping}: the node just handed
 * out may be removed.
 *
 * @typeParam T - the value stored with each interval.
 */
export class IntervalTree<T> {
  /** `start` of each node. */
  private lo: Float64Array;
  /** `last` of each node. */
  private hi: Float64Array;
  /** Largest `last` in each node's subtree; `mx[NIL]` is -1 so that it never satisfies a query. */
  private mx: Float64Array;
  /** Left child; for a free id, the next free id. */
  private lt: Int32Array;
  /** Right child. */
  private rt: Int32Array;
  /** Parent (`NIL` for the root). */
  private up: Int32Array;
  /** `BLACK`, `RED`, or `FREE`. */
  private colour: Uint8Array;
  /** Value of each node; index 0 is a permanent `undefined` so the array stays packed. */
  private vals: (T | undefined)[] = [undefined];
  private root: number = NIL;
  /** Node with the lowest start (first in tree order), as the kernel's cached leftmost. */
  private leftmost: number = NIL;
  private count = 0;
  /** Lowest id never handed out. */
  private highWater = 1;
  /** Head of the free-id list (linked through `lt`). */
  private freeHead: number = NIL;
  /** Length of every array (ids `1 .. capacity - 1` fit). */
  private capacity: number;

  /**
   * Creates an empty tree.
   *
   * @param initialCapacity - how many intervals fit before the storage first grows (default 16);
   *   a non-negative integer.
   */
  constructor(initialCapacity = 16) {
    if (!(isEndpoint(initialCapacity) && initialCapacity < 0x7fff_fffe)) {
      throw new RangeError(
        `IntervalTree: initialCapacity must be a non-negative integer below 2^31 - 2, got ${String(initialCapacity)}`,
      );
    }
    const cap = Math.max(2, initialCapacity + 1);
    this.capacity = cap;
    this.lo = new Float64Array(cap);
    this.hi = new Float64Array(cap);
    this.mx = new Float64Array(cap);
    this.lt = new Int32Array(cap);
    this.rt = new Int32Array(cap);
    this.up = new Int32Array(cap);
    this.colour = new Uint8Array(cap);
    this.mx[NIL] = -1;
  }

  /** Number of intervals stored. */
  get size(): number {
    return this.count;
  }

  /**
   * Stores `[start, last]` with `value`; models `interval_tree_insert()`. An interval whose start
   * equals existing ones goes after them in tree order. Identical intervals may be stored twice.
   *
   * @param start - first point of the interval, an integer in `[0, 2^53 - 1]`.
   * @param last - last point (inclusive), an integer in `[start, 2^53 - 1]`.
   * @param value - payload returned by {@link IntervalTree.value}.
   * @returns the new node's id (possibly a recycled id of a removed node).
   * @throws RangeError naming `start` or `last` when an endpoint is invalid or `start > last`.
   */
  insert(start: number, last: number, value: T): NodeId {
    if (!isEndpoint(start)) throw badEndpoint('insert', 'start', start);
    if (!isEndpoint(last)) throw badEndpoint('insert', 'last', last);
    if (start > last) {
      throw new RangeError(`IntervalTree.insert: last (${last}) must not be below start (${start})`);
    }
    const z = this.allocate();
    const lo = this.lo;
    const mx = this.mx;
    const lt = this.lt;
    const rt = this.rt;
    lo[z] = start;
    this.hi[z] = last;
    mx[z] = last;
    lt[z] = NIL;
    rt[z] = NIL;
    this.colour[z] = RED;
    this.vals[z] = value;

    // Descend as the kernel does: raise the cached subtree maximum on the way, go right on ties.
    let parent = NIL;
    let x = this.root;
    let left = false;
    let leftmost = true;
    while (x !== NIL) {
      parent = x;
      if (mx[x]! < last) mx[x] = last;
      if (start < lo[x]!) {
        x = lt[x]!;
        left = true;
      } else {
        x = rt[x]!;
        left = false;
        leftmost = false;
      }
    }
    this.up[z] = parent;
    if (parent === NIL) this.root = z;
    else if (left) lt[parent] = z;
    else rt[parent] = z;
    if (leftmost) this.leftmost = z;
    this.count++;
    this.insertFixup(z);
    return z;
  }

  /**
   * Removes a node; models `interval_tree_remove()`. Other nodes keep their ids; the removed id
   * becomes free and will be handed out again by a later {@link IntervalTree.insert}.
   *
   * @param node - id of a live node of this tree.
   * @throws RangeError when `node` is not a live node (never inserted, or already removed).
   */
  remove(node: NodeId): void {
    this.assertLive('remove', node);
    const z = node;
    const lt = this.lt;
    const rt = this.rt;
    const up = this.up;
    const colour = this.colour;
    if (z === this.leftmost) this.leftmost = this.successor(z);

    const zl = lt[z]!;
    const zr = rt[z]!;
    let x: number;
    let xParent: number;
    let removedColour: number;
    if (zl === NIL || zr === NIL) {
      // At most one child: splice z out.
      x = zl === NIL ? zr : zl;
      xParent = up[z]!;
      removedColour = colour[z]!;
      if (x !== NIL) up[x] = xParent;
      if (xParent === NIL) this.root = x;
      else if (lt[xParent] === z) lt[xParent] = x;
      else rt[xParent] = x;
      this.propagate(xParent, NIL);
    } else {
      // Two children: the in-order successor y takes z's place (relinked, so ids stay put).
      let y = zr;
      while (lt[y] !== NIL) y = lt[y]!;
      removedColour = colour[y]!;
      x = rt[y]!;
      if (y === zr) {
        xParent = y;
      } else {
        xParent = up[y]!;
        lt[xParent] = x;
        if (x !== NIL) up[x] = xParent;
        rt[y] = zr;
        up[zr] = y;
      }
      const zp = up[z]!;
      up[y] = zp;
      if (zp === NIL) this.root = y;
      else if (lt[zp] === z) lt[zp] = y;
      else rt[zp] = y;
      lt[y] = zl;
      up[zl] = y;
      colour[y] = colour[z]!;
      // y now spans z's old subtree minus z: start from z's cached value and repair bottom-up.
      this.mx[y] = this.mx[z]!;
      if (xParent !== y) this.propagate(xParent, y);
      this.propagate(y, NIL);
    }

    colour[z] = FREE;
    lt[z] = this.freeHead;
    this.freeHead = z;
    this.vals[z] = undefined;
    this.count--;
    if (removedColour === BLACK) this.removeFixup(x, xParent);
  }

  /**
   * First point of a node's interval.
   *
   * @param node - id of a live node.
   * @throws RangeError when `node` is not live.
   */
  start(node: NodeId): number {
    this.assertLive('start', node);
    return this.lo[node]!;
  }

  /**
   * Last point (inclusive) of a node's interval.
   *
   * @param node - id of a live node.
   * @throws RangeError when `node` is not live.
   */
  last(node: NodeId): number {
    this.assertLive('last', node);
    return this.hi[node]!;
  }

  /**
   * Value stored with a node.
   *
   * @param node - id of a live node.
   * @throws RangeError when `node` is not live.
   */
  value(node: NodeId): T {
    this.assertLive('value', node);
    return this.vals[node] as T;
  }

  /**
   * First node (lowest start; among equal starts, the earliest inserted) whose interval overlaps
   * `[start, last]`; models `interval_tree_iter_first()`.
   *
   * @param start - first point of the query, an integer in `[0, 2^53 - 1]`.
   * @param last - last point of the query (inclusive), `>= start`.
   * @returns the node id, or -1 when nothing overlaps.
   * @throws RangeError naming `start` or `last` when the query is invalid.
   */
  iterFirst(start: number, last: number): NodeId | -1 {
    this.assertQuery('iterFirst', start, last);
    const n = this.first(start, last);
    return n === NIL ? -1 : n;
  }

  /**
   * Next node after `node` in tree order (ascending start, then insertion order) whose interval
   * overlaps `[start, last]`; models `interval_tree_iter_next()`. Normally `node` is the previous
   * result of {@link IntervalTree.iterFirst} / {@link IntervalTree.iterNext} for the same query.
   *
   * @param node - id of a live node.
   * @param start - first point of the query.
   * @param last - last point of the query (inclusive).
   * @returns the node id, or -1 when no further node overlaps.
   * @throws RangeError when `node` is not live or the query is invalid.
   */
  iterNext(node: NodeId, start: number, last: number): NodeId | -1 {
    this.assertLive('iterNext', node);
    this.assertQuery('iterNext', start, last);
    const n = this.next(node, start, last);
    return n === NIL ? -1 : n;
  }

  /**
   * Iterates the ids of all nodes overlapping `[start, last]` in tree order. Arguments are checked
   * at the call, not at the first `next()`. The body of a `for...of` loop may remove the node it
   * was just given; any other mutation during the iteration gives unspecified results.
   *
   * @param start - first point of the query.
   * @param last - last point of the query (inclusive).
   * @throws RangeError naming `start` or `last` when the query is invalid.
   */
  overlapping(start: number, last: number): IterableIterator<NodeId> {
    this.assertQuery('overlapping', start, last);
    return this.overlapGenerator(start, last);
  }

  /**
   * Calls `fn` with the id of every node overlapping `[start, last]`, in tree order, without
   * allocating. `fn` may return `false` to stop early, and may remove the node it was given (the
   * following node is located before `fn` runs); any other mutation during the walk gives
   * unspecified results.
   *
   * @param start - first point of the query.
   * @param last - last point of the query (inclusive).
   * @param fn - visitor; returning `false` stops the walk.
   * @throws RangeError naming `start` or `last` when the query is invalid.
   */
  forEachOverlap(start: number, last: number, fn: (node: NodeId) => void | boolean): void {
    this.assertQuery('forEachOverlap', start, last);
    let n = this.first(start, last);
    while (n !== NIL) {
      const following = this.next(n, start, last);
      if (fn(n) === false) return;
      n = following;
    }
  }

  /** Node first in tree order (lowest start), or -1 for an empty tree; like `rb_first()`. */
  firstNode(): NodeId | -1 {
    return this.leftmost === NIL ? -1 : this.leftmost;
  }

  /** Node last in tree order (highest start, latest among equals), or -1 for an empty tree. */
  lastNode(): NodeId | -1 {
    let n = this.root;
    if (n === NIL) return -1;
    const rt = this.rt;
    while (rt[n] !== NIL) n = rt[n]!;
    return n;
  }

  /**
   * Node after `node` in tree order, or -1 if `node` is the last; like `rb_next()`.
   *
   * @param node - id of a live node.
   * @throws RangeError when `node` is not live.
   */
  nextNode(node: NodeId): NodeId | -1 {
    this.assertLive('nextNode', node);
    const n = this.successor(node);
    return n === NIL ? -1 : n;
  }

  /**
   * Node before `node` in tree order, or -1 if `node` is the first; like `rb_prev()`.
   *
   * @param node - id of a live node.
   * @throws RangeError when `node` is not live.
   */
  prevNode(node: NodeId): NodeId | -1 {
    this.assertLive('prevNode', node);
    const lt = this.lt;
    const up = this.up;
    let n = node;
    if (lt[n] !== NIL) {
      n = lt[n]!;
      const rt = this.rt;
      while (rt[n] !== NIL) n = rt[n]!;
      return n;
    }
    let p = up[n]!;
    while (p !== NIL && lt[p] === n) {
      n = p;
      p = up[p]!;
    }
    return p === NIL ? -1 : p;
  }

  /**
   * Removes every interval and invalidates every id (ids restart from 1). Keeps the allocated
   * storage.
   */
  clear(): void {
    this.root = NIL;
    this.leftmost = NIL;
    this.count = 0;
    this.highWater = 1;
    this.freeHead = NIL;
    this.vals.length = 1;
  }

  /**
   * Verifies the structure and throws an `Error` describing the first violation found: sentinel
   * intact, parent/child links consistent, in-order starts non-decreasing, red-black rules (black
   * root, no red node with a red child, equal black height on every path), cached subtree maximum
   * correct, cached leftmost correct, size and free list consistent. O(n); meant for tests.
   */
  checkInvariants(): void {
    const { lo, hi, mx, lt, rt, up, colour } = this;
    const fail = (msg: string): never => {
      throw new Error(`IntervalTree invariant violated: ${msg}`);
    };
    if (mx[NIL] !== -1 || colour[NIL] !== BLACK) fail('sentinel node 0 was modified');
    const root = this.root;
    if (root === NIL) {
      if (this.count !== 0) fail(`empty tree but size is ${this.count}`);
      if (this.leftmost !== NIL) fail('empty tree but leftmost is set');
    } else {
      if (up[root] !== NIL) fail(`root ${root} has parent ${up[root]}`);
      if (colour[root] !== BLACK) fail(`root ${root} is not black`);
    }
    let visited = 0;
    let previous = NIL;
    // Recursive in-order walk (depth is at most 2 log2(n + 1)); returns the black height.
    const check = (n: number): number => {
      if (n === NIL) return 1;
      if (n < 1 || n >= this.highWater) fail(`link to unknown id ${n}`);
      if (colour[n] === FREE) fail(`free id ${n} is linked into the tree`);
      if (colour[n] !== RED && colour[n] !== BLACK) fail(`node ${n} has colour ${colour[n]}`);
      visited++;
      if (visited > this.count) fail(`more than size=${this.count} nodes reachable (cycle?)`);
      const l = lt[n]!;
      const r = rt[n]!;
      if (l !== NIL && up[l] !== n) fail(`left child ${l} of ${n} has parent ${up[l]}`);
      if (r !== NIL && up[r] !== n) fail(`right child ${r} of ${n} has parent ${up[r]}`);
      if (colour[n] === RED && (colour[l] === RED || colour[r] === RED))
        fail(`red node ${n} has a red child`);
      if (!(lo[n]! <= hi[n]!)) fail(`node ${n} has start ${lo[n]} > last ${hi[n]}`);
      const bl = check(l);
      if (previous !== NIL && lo[previous]! > lo[n]!) {
        fail(`order: node ${previous} (start ${lo[previous]}) precedes node ${n} (start ${lo[n]})`);
      }
      if (previous === NIL && n !== this.leftmost) fail(`leftmost is ${this.leftmost}, expected ${n}`);
      previous = n;
      const br = check(r);
      if (bl !== br) fail(`black heights differ under node ${n}: left ${bl}, right ${br}`);
      const expected = Math.max(hi[n]!, l === NIL ? -1 : mx[l]!, r === NIL ? -1 : mx[r]!);
      if (mx[n] !== expected) fail(`node ${n} caches subtree max ${mx[n]}, expected ${expected}`);
      return bl + (colour[n] === BLACK ? 1 : 0);
    };
    check(root);
    if (visited !== this.count) fail(`${visited} nodes reachable but size is ${this.count}`);
    let free = 0;
    for (let f = this.freeHead; f !== NIL; f = lt[f]!) {
      if (f < 1 || f >= this.highWater) fail(`free list holds unknown id ${f}`);
      if (colour[f] !== FREE) fail(`free list holds live node ${f}`);
      free++;
      if (free > this.highWater) fail('free list has a cycle');
    }
    if (free + this.count !== this.highWater - 1) {
      fail(`${free} free + ${this.count} live ids != ${this.highWater - 1} ids handed out`);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Internals. "Raw" helpers use NIL (0) for "no node"; the public API converts it to -1.

  private *overlapGenerator(start: number, last: number): Generator<NodeId, void, undefined> {
    let n = this.first(start, last);
    while (n !== NIL) {
      const following = this.next(n, start, last);
      yield n;
      n = following;
    }
  }

  private assertLive(method: string, node: number): void {
    if (!(node >= 1 && node < this.highWater && Math.floor(node) === node && this.colour[node] !== FREE)) {
      throw new RangeError(`IntervalTree.${method}: node ${String(node)} is not a live node of this tree`);
    }
  }

  private assertQuery(method: string, start: number, last: number): void {
    if (!isEndpoint(start)) throw badEndpoint(method, 'start', start);
    if (!isEndpoint(last)) throw badEndpoint(method, 'last', last);
    if (start > last) {
      throw new RangeError(`IntervalTree.${method}: last (${last}) must not be below start (${start})`);
    }
  }

  /** Takes an id from the free list, or the next never-used id (growing the arrays if needed). */
  private allocate(): number {
    const z = this.freeHead;
    if (z !== NIL) {
      this.freeHead = this.lt[z]!;
      return z;
    }
    if (this.highWater === this.capacity) this.grow();
    return this.highWater++;
  }

  private grow(): void {
    if (this.capacity >= 0x7fff_ffff) throw new RangeError('IntervalTree: more than 2^31 - 2 nodes');
    const cap = Math.min(this.capacity * 2, 0x7fff_ffff);
    const f64 = (old: Float64Array) => {
      const a = new Float64Array(cap);
      a.set(old);
      return a;
    };
    const i32 = (old: Int32Array) => {
      const a = new Int32Array(cap);
      a.set(old);
      return a;
    };
    this.lo = f64(this.lo);
    this.hi = f64(this.hi);
    this.mx = f64(this.mx);
    this.lt = i32(this.lt);
    this.rt = i32(this.rt);
    this.up = i32(this.up);
    const c = new Uint8Array(cap);
    c.set(this.colour);
    this.colour = c;
    this.capacity = cap;
  }

  /** In-order successor of a live node, or NIL. */
  private successor(node: number): number {
    const lt = this.lt;
    const rt = this.rt;
    let n = node;
    if (rt[n] !== NIL) {
      n = rt[n]!;
      while (lt[n] !== NIL) n = lt[n]!;
      return n;
    }
    const up = this.up;
    let p = up[n]!;
    while (p !== NIL && rt[p] === n) {
      n = p;
      p = up[p]!;
    }
    return p;
  }

  /** Recomputes cached maxima from `n` upwards, stopping at `stop` or at the first unchanged node. */
  private propagate(n: number, stop: number): void {
    const hi = this.hi;
    const mx = this.mx;
    const lt = this.lt;
    const rt = this.rt;
    const up = this.up;
    while (n !== stop) {
      let m = hi[n]!;
      const a = mx[lt[n]!]!;
      const b = mx[rt[n]!]!;
      if (a > m) m = a;
      if (b > m) m = b;
      if (mx[n] === m) return;
      mx[n] = m;
      n = up[n]!;
    }
  }

  /**
   * Rotates `x` down to the left; its right child takes its place. The subtree as a whole keeps
   * the same nodes, so only the two rotated nodes' cached maxima change.
   */
  private rotateLeft(x: number): void {
    const lt = this.lt;
    const rt = this.rt;
    const up = this.up;
    const mx = this.mx;
    const y = rt[x]!;
    const b = lt[y]!;
    rt[x] = b;
    up[b] = x; // harmless when b is the sentinel
    const p = up[x]!;
    up[y] = p;
    if (p === NIL) this.root = y;
    else if (lt[p] === x) lt[p] = y;
    else rt[p] = y;
    lt[y] = x;
    up[x] = y;
    mx[y] = mx[x]!;
    let m = this.hi[x]!;
    const a = mx[lt[x]!]!;
    const c = mx[b]!;
    if (a > m) m = a;
    if (c > m) m = c;
    mx[x] = m;
  }

  /** Mirror image of `rotateLeft`. */
  private rotateRight(x: number): void {
    const lt = this.lt;
    const rt = this.rt;
    const up = this.up;
    const mx = this.mx;
    const y = lt[x]!;
    const b = rt[y]!;
    lt[x] = b;
    up[b] = x;
    const p = up[x]!;
    up[y] = p;
    if (p === NIL) this.root = y;
    else if (rt[p] === x) rt[p] = y;
    else lt[p] = y;
    rt[y] = x;
    up[x] = y;
    mx[y] = mx[x]!;
    let m = this.hi[x]!;
    const a = mx[rt[x]!]!;
    const c = mx[b]!;
    if (a > m) m = a;
    if (c > m) m = c;
    mx[x] = m;
  }

  private insertFixup(z: number): void {
    const colour = this.colour;
    const up = this.up;
    const lt = this.lt;
    const rt = this.rt;
    let p = up[z]!;
    while (colour[p] === RED) {
      const g = up[p]!; // a red node is never the root, so g exists
      if (p === lt[g]) {
        const u = rt[g]!;
        if (colour[u] === RED) {
          colour[p] = BLACK;
          colour[u] = BLACK;
          colour[g] = RED;
          z = g;
          p = up[z]!;
          continue;
        }
        if (z === rt[p]) {
          this.rotateLeft(p);
          z = p;
          p = up[z]!;
        }
        colour[p] = BLACK;
        colour[g] = RED;
        this.rotateRight(g);
        break;
      }
      const u = lt[g]!;
      if (colour[u] === RED) {
        colour[p] = BLACK;
        colour[u] = BLACK;
        colour[g] = RED;
        z = g;
        p = up[z]!;
        continue;
      }
      if (z === lt[p]) {
        this.rotateRight(p);
        z = p;
        p = up[z]!;
      }
      colour[p] = BLACK;
      colour[g] = RED;
      this.rotateLeft(g);
      break;
    }
    colour[this.root] = BLACK;
  }

  /**
   * Restores the red-black rules after a black node was unlinked; `x` (possibly the sentinel)
   * carries an extra black and `parent` is its parent, tracked explicitly so the sentinel's
   * parent link is never relied upon.
   */
  private removeFixup(x: number, parent: number): void {
    const colour = this.colour;
    const up = this.up;
    const lt = this.lt;
    const rt = this.rt;
    while (x !== this.root && colour[x] === BLACK) {
      if (x === lt[parent]) {
        let w = rt[parent]!;
        if (colour[w] === RED) {
          colour[w] = BLACK;
          colour[parent] = RED;
          this.rotateLeft(parent);
          w = rt[parent]!;
        }
        if (colour[lt[w]!] === BLACK && colour[rt[w]!] === BLACK) {
          colour[w] = RED;
          x = parent;
          parent = up[x]!;
          continue;
        }
        if (colour[rt[w]!] === BLACK) {
          colour[lt[w]!] = BLACK;
          colour[w] = RED;
          this.rotateRight(w);
          w = rt[parent]!;
        }
        colour[w] = colour[parent]!;
        colour[parent] = BLACK;
        colour[rt[w]!] = BLACK;
        this.rotateLeft(parent);
        x = this.root;
        break;
      }
      let w = lt[parent]!;
      if (colour[w] === RED) {
        colour[w] = BLACK;
        colour[parent] = RED;
        this.rotateRight(parent);
        w = lt[parent]!;
      }
      if (colour[lt[w]!] === BLACK && colour[rt[w]!] === BLACK) {
        colour[w] = RED;
        x = parent;
        parent = up[x]!;
        continue;
      }
      if (colour[lt[w]!] === BLACK) {
        colour[rt[w]!] = BLACK;
        colour[w] = RED;
        this.rotateLeft(w);
        w = lt[parent]!;
      }
      colour[w] = colour[parent]!;
      colour[parent] = BLACK;
      colour[lt[w]!] = BLACK;
      this.rotateRight(parent);
      x = this.root;
      break;
    }
    colour[x] = BLACK;
  }

  /** Query start: the leftmost overlapping node, or NIL. Arguments already validated. */
  private first(start: number, last: number): number {
    const root = this.root;
    if (root === NIL || this.mx[root]! < start || this.lo[this.leftmost]! > last) return NIL;
    return this.subtreeSearch(root, start, last);
  }

  /**
   * Leftmost node of the subtree at `n` overlapping `[start, last]`, or NIL. Requires
   * `start <= mx[n]`. Relies on `mx[NIL] = -1 < start` to skip explicit sentinel tests.
   */
  private subtreeSearch(n: number, start: number, last: number): number {
    const lo = this.lo;
    const hi = this.hi;
    const mx = this.mx;
    const lt = this.lt;
    const rt = this.rt;
    while (true) {
      const l = lt[n]!;
      if (start <= mx[l]!) {
        // Some node on the left reaches `start`; the leftmost such node decides.
        n = l;
        continue;
      }
      if (lo[n]! <= last) {
        if (start <= hi[n]!) return n;
        n = rt[n]!;
        if (start <= mx[n]!) continue;
      }
      return NIL;
    }
  }

  /** Next overlapping node after `n` in tree order, or NIL. Arguments already validated. */
  private next(n: number, start: number, last: number): number {
    const lo = this.lo;
    const hi = this.hi;
    const mx = this.mx;
    const rt = this.rt;
    const up = this.up;
    let r = rt[n]!;
    while (true) {
      if (start <= mx[r]!) return this.subtreeSearch(r, start, last);
      // Climb until we arrive from a left child: that parent is the next node in order.
      let from: number;
      do {
        from = n;
        n = up[n]!;
        if (n === NIL) return NIL;
        r = rt[n]!;
      } while (from === r);
      if (last < lo[n]!) return NIL;
      if (start <= hi[n]!) return n;
    }
  }
}
