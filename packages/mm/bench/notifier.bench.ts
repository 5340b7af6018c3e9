/**
 * Benchmark of the notifier layer (suite `mm-notifier`): the cost of one invalidation
 * (`mmu_notifier_invalidate_range_start` + `_end`) on an mm with n interval subscriptions, for
 * n = 1, 10^3 and 10^5.
 *
 * Workload (deterministic, seeded): n disjoint one-page subscriptions at random page-aligned
 * addresses in a 2^36 space. Each call invalidates one page, cycling through a pool of queries:
 * - `hit`: the page of an existing subscription (exactly one overlap: one callback, which calls
 *   `mmu_interval_set_seq()`, a window opened and closed);
 * - `miss`: a page no subscription covers (no callback; the PARTIAL state).
 * The interval tree makes both logarithmic in n (plus the overlaps), so t(10^5)/t(1) stays small;
 * the ratio is stored in the notes.
 *
 * The model code is driven directly (each yielded operation executed in order on one thread),
 * without the scheduler, so the numbers are the cost of the notifier model itself.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchCase, type BenchRow, resultsDir, runSuite } from '@hmmkit/bench-utils';
import { type Routine, RwSemaphore, Sim, type Thread } from '@hmmkit/sim';
import type { Mm } from '../src/mm.js';
import {
  MmuIntervalNotifier,
  type MmuIntervalNotifierOps,
  MmuNotifierRange,
  MmuNotifierSubscriptions,
  MmuNotifyEvent,
  mmuIntervalSetSeq,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
} from '../src/notifier/index.js';
import { itreeInsert } from '../src/notifier/interval.js';

const SUITE = 'mm-notifier';
const SIZES = [1, 1e3, 1e5] as const;
const PAGE = 4096;
const SPACE_PAGES = 2 ** 24; // 2^36 bytes
const POOL = 4096;
const CALLS = 64;

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

/** Runs a routine to completion on `t`, executing each yielded operation at once. */
function drive<R>(sim: Sim, t: Thread, gen: Routine<R>): R {
  sim.current = t;
  let r = gen.next();
  while (!r.done) {
    const op = r.value;
    r = gen.next(op.obj ? op.obj.exec(op, t) : undefined);
  }
  sim.current = null;
  return r.value;
}

interface World {
  sim: Sim;
  t: Thread;
  mm: Mm;
  hits: MmuNotifierRange[];
  misses: MmuNotifierRange[];
}

function makeWorld(n: number): World {
  const sim = new Sim();
  const t = sim.spawn('bench', function* () {});
  const mm = {
    sim,
    mmapLock: new RwSemaphore(sim, 'mm->mmap_lock'),
    mmUsers: 1,
    mmCount: 1,
    notifierSubscriptions: null,
  } as unknown as Mm;
  const subs = new MmuNotifierSubscriptions(mm, null);
  mm.notifierSubscriptions = subs;
  subs.head.hasItree = true;
  const ops: MmuIntervalNotifierOps = {
    *invalidate(sub, _range, curSeq) {
      yield* mmuIntervalSetSeq(sub, curSeq);
      return true;
    },
  };
  const rand = splitmix32(0x5eed ^ n);
  const used = new Set<number>();
  const pages: number[] = [];
  while (pages.length < n) {
    const p = rand() % SPACE_PAGES;
    if (used.has(p)) continue;
    used.add(p);
    pages.push(p);
    const sub = new MmuIntervalNotifier(sim, `sub${pages.length}`);
    sub.mm = mm;
    sub.ops = ops;
    sub.start = p * PAGE;
    sub.last = p * PAGE + PAGE - 1;
    sub.invalidateSeq.value = 1;
    sub.state = 'inserted';
    itreeInsert(subs, sub);
  }
  const range = (p: number) =>
    new MmuNotifierRange({ mm, start: p * PAGE, end: p * PAGE + PAGE, event: MmuNotifyEvent.CLEAR });
  const hits: MmuNotifierRange[] = [];
  const misses: MmuNotifierRange[] = [];
  for (let i = 0; i < POOL; i++) hits.push(range(pages[rand() % n]!));
  while (misses.length < POOL) {
    const p = rand() % SPACE_PAGES;
    if (!used.has(p)) misses.push(range(p));
  }
  return { sim, t, mm, hits, misses };
}

function invalidateCase(group: string, n: number, which: 'hits' | 'misses', baseline?: string): BenchCase {
  let w: World | null = null;
  let next = 0;
  return {
    name: `n=${n}`,
    group,
    ops: CALLS,
    unit: 'invalidations',
    ...(baseline ? { baseline } : {}),
    setup: () => {
      w = makeWorld(n);
      next = 0;
    },
    fn: () => {
      const world = w!;
      const pool = world[which];
      for (let i = 0; i < CALLS; i++) {
        const r = pool[next++ % POOL]!;
        drive(world.sim, world.t, mmuNotifierInvalidateRangeStart(r));
        drive(world.sim, world.t, mmuNotifierInvalidateRangeEnd(r));
      }
    },
  };
}

export async function benchNotifier(): Promise<void> {
  const cases: BenchCase[] = [];
  for (const n of SIZES)
    cases.push(invalidateCase('invalidate, one overlap', n, 'hits', n === 1 ? undefined : 'n=1'));
  for (const n of SIZES)
    cases.push(invalidateCase('invalidate, no overlap', n, 'misses', n === 1 ? undefined : 'n=1'));
  const notes: Record<string, unknown> = {
    workload: `one-page invalidations (start + end) on n disjoint one-page interval subscriptions; ${CALLS} per call`,
    target: 'logarithmic in n: t(1e5)/t(1) small (a linear walk would be ~1e5)',
  };
  const rows = await runSuite(SUITE, cases, { notes });
  for (const group of ['invalidate, one overlap', 'invalidate, no overlap']) {
    const t1 = rows.find((r) => r.group === group && r.name === 'n=1')!.meanMs;
    const t5 = rows.find((r) => r.group === group && r.name === 'n=100000')!.meanMs;
    notes[`t(1e5)/t(1) ${group}`] = Number((t5 / t1).toFixed(2));
    console.log(`${group}: t(1e5)/t(1) = ${(t5 / t1).toFixed(2)}`);
  }
  writeWithNotes(rows, notes);
}

/** Rewrites the results file with the ratios in the notes (runSuite wrote it before they were known). */
function writeWithNotes(rows: BenchRow[], notes: Record<string, unknown>): void {
  const timeMs = Number(process.env.HMMKIT_BENCH_TIME_MS ?? 300);
  writeFileSync(
    join(resultsDir, `${SUITE}.json`),
    `${JSON.stringify({ suite: SUITE, node: process.version, timeMs, notes, rows }, null, 2)}\n`,
  );
}
