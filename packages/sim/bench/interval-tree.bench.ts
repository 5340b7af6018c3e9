/**
 * Benchmark of `@hmmkit/sim/interval-tree` against `@flatten-js/interval-tree` and
 * `node-interval-tree` (suite `sim-interval-tree`).
 *
 * Workload (deterministic, seeded splitmix32): n random intervals with starts uniform in a 2^40
 * space and lengths 1..1000, for n = 10^3, 10^4, 10^5, 10^6. One group per (operation, n):
 *
 * - `insert n=…`: a batch of `b = min(1000, n / 10)` fresh intervals is inserted into the tree of
 *   n intervals and then removed again; only the inserts are timed.
 * - `remove n=…`: a batch of `b` stored intervals (a different slice of the random data on each
 *   call) is removed and then re-inserted; only the removals are timed.
 * - `query n=…`: 1000 stabbing queries per call, half points and half short ranges (length
 *   1..1000), each anchored inside a stored interval so every query hits; every library returns
 *   or visits all overlaps (hmmkit via `iterFirst`/`iterNext`, reading each value).
 *
 * The untimed half of the insert and remove cases keeps the tree at n intervals for every call; it
 * is excluded by returning tinybench's `overriddenDuration` (measured with `performance.now()`)
 * from the case function, which `runSuite` hands to tinybench unchanged, together with
 * `overriddenIterationCost` so the time budget counts the whole call.
 *
 * Each group measures hmmkit twice, once with baseline `@flatten-js/interval-tree` and once
 * (`hmmkit (2nd run)`) with baseline `node-interval-tree`, so both ratios appear in the table.
 */

import { IntervalTree as FlattenTree } from '@flatten-js/interval-tree';
import { type BenchCase, type BenchRow, runSuite } from '@hmmkit/bench-utils';
import { IntervalTree as NitTree } from 'node-interval-tree';
import { IntervalTree } from '../src/interval-tree/index.js';

const SUITE = 'sim-interval-tree';
const SIZES = [1e3, 1e4, 1e5, 1e6] as const;
const SPACE = 2 ** 40;
const MAX_LEN = 1000;
const QUERIES_PER_CALL = 1000;
const QUERY_POOL = 16 * QUERIES_PER_CALL;
const SEED = 0x5eed_1e55;

const FLATTEN = '@flatten-js/interval-tree';
const NIT = 'node-interval-tree';
const HMMKIT = 'hmmkit';
const HMMKIT_AGAIN = 'hmmkit (2nd run)';

/** splitmix32-style generator: a Weyl sequence through a 32-bit finaliser; returns uint32. */
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

/** Everything one size needs, generated once and shared by all libraries. */
interface Data {
  n: number;
  /** Inserts or removals per timed call. */
  batch: number;
  start: Float64Array;
  last: Float64Array;
  /** Pool of fresh intervals for the insert cases (`8 * batch` of them, used cyclically). */
  extraStart: Float64Array;
  extraLast: Float64Array;
  queryStart: Float64Array;
  queryLast: Float64Array;
  /** Total hits of the whole query pool, from the first library that ran it (cross-check). */
  expectedHits: number;
}

function fillIntervals(rand: () => number, start: Float64Array, last: Float64Array): void {
  for (let i = 0; i < start.length; i++) {
    const s = Math.min(((rand() & 0xff) * 2 ** 32 + rand()) % SPACE, SPACE - MAX_LEN);
    start[i] = s;
    last[i] = s + (rand() % MAX_LEN); // length 1..1000
  }
}

function makeData(n: number): Data {
  const rand = splitmix32(SEED ^ n);
  const batch = Math.min(1000, n / 10);
  const d: Data = {
    n,
    batch,
    start: new Float64Array(n),
    last: new Float64Array(n),
    extraStart: new Float64Array(8 * batch),
    extraLast: new Float64Array(8 * batch),
    queryStart: new Float64Array(QUERY_POOL),
    queryLast: new Float64Array(QUERY_POOL),
    expectedHits: -1,
  };
  fillIntervals(rand, d.start, d.last);
  fillIntervals(rand, d.extraStart, d.extraLast);
  for (let q = 0; q < QUERY_POOL; q++) {
    const i = rand() % n;
    const s = d.start[i]!;
    const p = s + (rand() % (d.last[i]! - s + 1));
    d.queryStart[q] = p;
    d.queryLast[q] = q % 2 === 0 ? p : p + (rand() % MAX_LEN);
  }
  return d;
}

/** One library under test; each method is written out per library so its call sites stay monomorphic. */
interface Driver {
  readonly name: string;
  /** Builds a tree holding `d`'s n intervals (value = index). */
  build(d: Data): void;
  /** Inserts `d.batch` fresh intervals from `from`, then removes them; returns ms spent inserting. */
  insertBatch(d: Data, from: number): number;
  /** Removes stored intervals `from .. from + d.batch`, then re-inserts them; returns ms spent removing. */
  removeBatch(d: Data, from: number): number;
  /** Runs `QUERIES_PER_CALL` queries from `from`; returns the number of hits. */
  queryBatch(d: Data, from: number): number;
  /** Number of intervals stored (may be O(n)). */
  size(): number;
  release(): void;
}

function hmmkitDriver(): Driver {
  let tree = new IntervalTree<number>();
  let ids = new Int32Array(0);
  const fresh = new Int32Array(1000);
  /** Each hit's value is read, as the other libraries return values; kept to defeat elimination. */
  let lastValue = 0;
  return {
    name: HMMKIT,
    build(d) {
      tree = new IntervalTree<number>();
      ids = new Int32Array(d.n);
      for (let i = 0; i < d.n; i++) ids[i] = tree.insert(d.start[i]!, d.last[i]!, i);
    },
    insertBatch(d, from) {
      const b = d.batch;
      const xs = d.extraStart;
      const xl = d.extraLast;
      const t0 = performance.now();
      for (let i = 0; i < b; i++) fresh[i] = tree.insert(xs[from + i]!, xl[from + i]!, i);
      const t1 = performance.now();
      for (let i = 0; i < b; i++) tree.remove(fresh[i]!);
      return t1 - t0;
    },
    removeBatch(d, from) {
      const end = from + d.batch;
      const t0 = performance.now();
      for (let j = from; j < end; j++) tree.remove(ids[j]!);
      const t1 = performance.now();
      for (let j = from; j < end; j++) ids[j] = tree.insert(d.start[j]!, d.last[j]!, j);
      return t1 - t0;
    },
    queryBatch(d, from) {
      const qs = d.queryStart;
      const ql = d.queryLast;
      let hits = 0;
      for (let q = from, end = from + QUERIES_PER_CALL; q < end; q++) {
        const s = qs[q]!;
        const l = ql[q]!;
        for (let n = tree.iterFirst(s, l); n !== -1; n = tree.iterNext(n, s, l)) {
          hits++;
          lastValue = tree.value(n);
        }
      }
      return hits;
    },
    size: () => tree.size,
    release() {
      if (lastValue < -1) throw new Error('unreachable');
      tree = new IntervalTree<number>();
      ids = new Int32Array(0);
    },
  };
}

function flattenDriver(): Driver {
  let tree = new FlattenTree<number>();
  return {
    name: FLATTEN,
    build(d) {
      tree = new FlattenTree<number>();
      for (let i = 0; i < d.n; i++) tree.insert([d.start[i]!, d.last[i]!], i);
    },
    insertBatch(d, from) {
      const b = d.batch;
      const xs = d.extraStart;
      const xl = d.extraLast;
      const t0 = performance.now();
      for (let i = 0; i < b; i++) tree.insert([xs[from + i]!, xl[from + i]!], -1 - i);
      const t1 = performance.now();
      for (let i = 0; i < b; i++) tree.remove([xs[from + i]!, xl[from + i]!], -1 - i);
      return t1 - t0;
    },
    removeBatch(d, from) {
      const end = from + d.batch;
      const t0 = performance.now();
      for (let j = from; j < end; j++) tree.remove([d.start[j]!, d.last[j]!], j);
      const t1 = performance.now();
      for (let j = from; j < end; j++) tree.insert([d.start[j]!, d.last[j]!], j);
      return t1 - t0;
    },
    queryBatch(d, from) {
      const qs = d.queryStart;
      const ql = d.queryLast;
      let hits = 0;
      for (let q = from, end = from + QUERIES_PER_CALL; q < end; q++)
        hits += tree.search([qs[q]!, ql[q]!]).length;
      return hits;
    },
    size: () => tree.size,
    release() {
      tree = new FlattenTree<number>();
    },
  };
}

interface NitRecord {
  low: number;
  high: number;
  id: number;
}

function nitDriver(): Driver {
  let tree = new NitTree<NitRecord>();
  let records: NitRecord[] = [];
  let extra: NitRecord[] = [];
  return {
    name: NIT,
    build(d) {
      tree = new NitTree<NitRecord>();
      records = Array.from({ length: d.n }, (_, i) => ({ low: d.start[i]!, high: d.last[i]!, id: i }));
      extra = Array.from({ length: d.extraStart.length }, (_, i) => ({
        low: d.extraStart[i]!,
        high: d.extraLast[i]!,
        id: -1 - i,
      }));
      for (const r of records) tree.insert(r);
    },
    insertBatch(d, from) {
      const end = from + d.batch;
      const t0 = performance.now();
      for (let i = from; i < end; i++) tree.insert(extra[i]!);
      const t1 = performance.now();
      for (let i = from; i < end; i++) tree.remove(extra[i]!);
      return t1 - t0;
    },
    removeBatch(d, from) {
      const end = from + d.batch;
      const t0 = performance.now();
      for (let j = from; j < end; j++) tree.remove(records[j]!);
      const t1 = performance.now();
      for (let j = from; j < end; j++) tree.insert(records[j]!);
      return t1 - t0;
    },
    queryBatch(d, from) {
      const qs = d.queryStart;
      const ql = d.queryLast;
      let hits = 0;
      for (let q = from, end = from + QUERIES_PER_CALL; q < end; q++)
        hits += tree.search(qs[q]!, ql[q]!).length;
      return hits;
    },
    size: () => tree.count,
    release() {
      tree = new NitTree<NitRecord>();
      records = [];
      extra = [];
    },
  };
}

/** Keeps one size's data and trees alive at a time (the 10^6 trees of the npm packages are large). */
class Fixture {
  readonly drivers = [flattenDriver(), nitDriver(), hmmkitDriver()];
  private data: Data | undefined;
  private readonly built = new Set<Driver>();
  private readonly checked = new Set<Driver>();
  /** Defeats dead-code elimination of query results. */
  sink = 0;

  driver(name: string): Driver {
    const d = this.drivers.find((x) => x.name === name);
    if (!d) throw new Error(`no driver ${name}`);
    return d;
  }

  /** Data for size n with `driver`'s tree built; releases everything of other sizes. */
  prepare(n: number, driver: Driver): Data {
    if (this.data?.n !== n) {
      this.releaseAll();
      this.data = makeData(n);
    }
    const d = this.data;
    if (!this.built.has(driver)) {
      driver.build(d);
      this.built.add(driver);
    }
    return d;
  }

  /** Runs the whole query pool once and checks the hit count agrees across libraries. */
  crossCheck(driver: Driver, d: Data): void {
    if (this.checked.has(driver)) return;
    let hits = 0;
    for (let from = 0; from < QUERY_POOL; from += QUERIES_PER_CALL) hits += driver.queryBatch(d, from);
    if (hits < QUERY_POOL) throw new Error(`${driver.name}: only ${hits} hits for ${QUERY_POOL} queries`);
    if (d.expectedHits < 0) d.expectedHits = hits;
    else if (hits !== d.expectedHits) {
      throw new Error(`${driver.name}: ${hits} hits at n=${d.n}, another library found ${d.expectedHits}`);
    }
    this.checked.add(driver);
  }

  /** Checks that the untimed halves restored every tree to n intervals, then frees them. */
  releaseAll(): void {
    for (const drv of this.built) {
      const size = drv.size();
      if (size !== this.data?.n)
        throw new Error(`${drv.name} holds ${size} intervals, expected ${this.data?.n}`);
    }
    for (const drv of this.drivers) drv.release();
    this.built.clear();
    this.checked.clear();
    this.data = undefined;
  }
}

function sizeLabel(n: number): string {
  return `1e${Math.round(Math.log10(n))}`;
}

function makeCases(fx: Fixture): BenchCase[] {
  const cases: BenchCase[] = [];
  const variants: Array<{ name: string; driver: string; baseline?: string }> = [
    { name: FLATTEN, driver: FLATTEN },
    { name: NIT, driver: NIT },
    { name: HMMKIT, driver: HMMKIT, baseline: FLATTEN },
    { name: HMMKIT_AGAIN, driver: HMMKIT, baseline: NIT },
  ];
  for (const n of SIZES) {
    const batch = Math.min(1000, n / 10);
    for (const op of ['insert', 'remove', 'query'] as const) {
      for (const v of variants) {
        const drv = fx.driver(v.driver);
        let d: Data | undefined;
        let cursor = 0;
        const base = {
          name: v.name,
          group: `${op} n=${sizeLabel(n)}`,
          ...(v.baseline ? { baseline: v.baseline } : {}),
        };
        if (op === 'insert') {
          cases.push({
            ...base,
            ops: batch,
            unit: 'inserts',
            setup: () => {
              d = fx.prepare(n, drv);
            },
            fn: () => {
              const t0 = performance.now();
              const ms = drv.insertBatch(d!, cursor);
              cursor = (cursor + batch) % d!.extraStart.length;
              return { overriddenDuration: ms, overriddenIterationCost: performance.now() - t0 };
            },
          });
        } else if (op === 'remove') {
          cases.push({
            ...base,
            ops: batch,
            unit: 'removes',
            setup: () => {
              d = fx.prepare(n, drv);
            },
            fn: () => {
              const t0 = performance.now();
              const ms = drv.removeBatch(d!, cursor);
              cursor = (cursor + batch) % n;
              return { overriddenDuration: ms, overriddenIterationCost: performance.now() - t0 };
            },
          });
        } else {
          cases.push({
            ...base,
            ops: QUERIES_PER_CALL,
            unit: 'queries',
            setup: () => {
              d = fx.prepare(n, drv);
              fx.crossCheck(drv, d);
            },
            fn: () => {
              fx.sink += drv.queryBatch(d!, cursor);
              cursor = (cursor + QUERIES_PER_CALL) % QUERY_POOL;
            },
          });
        }
      }
    }
  }
  return cases;
}

function summarise(rows: BenchRow[]): void {
  const compared = rows.filter((r) => r.ratioToBaseline !== undefined);
  const losses = compared.filter((r) => !(r.ratioToBaseline! > 1));
  const worst = compared.reduce((a, b) => (b.ratioToBaseline! < a.ratioToBaseline! ? b : a), compared[0]!);
  console.log(
    `hmmkit faster in ${compared.length - losses.length}/${compared.length} comparisons; smallest ratio ` +
      `${worst.ratioToBaseline!.toFixed(2)}x (${worst.group} vs ${worst.baseline})`,
  );
  for (const r of losses)
    console.log(`  NOT faster: ${r.group} vs ${r.baseline}: ${r.ratioToBaseline!.toFixed(2)}x`);
}

/** Runs the `sim-interval-tree` suite: insert, remove and stabbing-query throughput at 10^3..10^6. */
export async function benchIntervalTree(): Promise<void> {
  const fx = new Fixture();
  const rows = await runSuite(SUITE, makeCases(fx), {
    notes: {
      workload:
        'n random intervals, starts uniform in [0, 2^40), lengths 1..1000, seeded splitmix32; ' +
        'insert/remove: batches of min(1000, n/10) on a tree kept at n (restoring half untimed); ' +
        'query: 1000 stabbing queries per call (half points, half ranges of length 1..1000), all hitting',
      sizes: SIZES,
      seed: SEED,
    },
  });
  fx.releaseAll();
  summarise(rows);
}
