/**
 * HMM throughput (suite `mm-hmm`).
 *
 * `hmm_range_fault`: a snapshot (`default_flags = REQ_FAULT`, every page already mapped, so nothing
 * is faulted) of ranges of 1, 512 and 262,144 pages (1 GiB of 4 KiB pages) of a populated
 * anonymous mapping, in pages per second. The 1 GiB of page tables (512 PTE tables of 512 present
 * entries, mapping 512 PTE-mapped THPs) is built once at setup time, without scheduling points;
 * each timed call drives `mmu_interval_read_begin` + `mmap_read_lock` + `hmm_range_fault` on one
 * thread of that simulation, every operation executed in order (no scheduler). The walk takes one
 * step per PMD entry and one per PTE table (1,027 steps for 1 GiB), so the per-page cost should
 * be flat from 512 pages up; the notes store the per-page cost ratios (262,144 vs 1 page, and
 * 262,144 vs 512 pages) and the steps per call.
 *
 * `migrate_vma`: a round trip of a range to device-private memory and back (setup, allocate and
 * copy, pages, finalize; then the same with SELECT_DEVICE_PRIVATE), in pages migrated per second
 * (2 × the range per call): 64 base pages (test_hmm's chunk), 512 base pages, and one 512-page THP
 * migrated whole with MIGRATE_VMA_SELECT_COMPOUND.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchCase, resultsDir, runSuite } from '@hmmkit/bench-utils';
import { type Routine, Sim, type Thread } from '@hmmkit/sim';
import { HMM_PFN_REQ_FAULT, HMM_PFN_VALID, type HmmRange, hmmRangeFault } from '../src/hmm/index.js';
import {
  cpuWrite,
  type Folio,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  type Mm,
  PAGE_SIZE,
  type Pgmap,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  PteTable,
  System,
  VM_HUGEPAGE,
} from '../src/index.js';
import {
  allocDevicePage,
  allocSystemPage,
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  type MigrateVma,
  migratePfn,
  migratePfnToPfn,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
} from '../src/migrate-device/index.js';
import {
  MmuIntervalNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalSetSeq,
} from '../src/notifier/index.js';
import { AnonVma } from '../src/vma.js';

const SUITE = 'mm-hmm';
const RW = PROT_READ | PROT_WRITE;
const BASE = PMD_SIZE * 512; // 1 GiB aligned
const GIB_PAGES = 262_144;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;

/**
 * A simulation with one thread on which the benchmarked routines are driven directly: every
 * yielded operation is executed at once, in order (as the notifier benchmark does), so the numbers
 * are the cost of the model code and its steps, without the scheduler's choice machinery. An
 * operation that would block is an error (nothing runs concurrently here).
 */
class Bench1 {
  readonly sim = new Sim({ maxSteps: Number.MAX_SAFE_INTEGER });
  readonly t: Thread = this.sim.spawn('bench', function* () {});
  /** Steps of the last call. */
  steps = 0;

  run<R>(name: string, body: () => Routine<R>): R {
    const { sim, t } = this;
    sim.current = t;
    this.steps = 0;
    try {
      const gen = body();
      let r = gen.next();
      while (!r.done) {
        const op = r.value;
        if (op.obj && !op.obj.enabled(op, t)) throw new Error(`${name}: ${op.describe()} would block`);
        this.steps++;
        r = gen.next(op.obj ? op.obj.exec(op, t) : undefined);
      }
      return r.value;
    } finally {
      sim.current = null;
    }
  }
}

/** 1 GiB of anonymous memory mapped by PTEs (512 PTE-mapped THPs), and an interval subscription. */
function hmmWorld(): { b: Bench1; mm: Mm; sub: MmuIntervalNotifier } {
  const b = new Bench1();
  const sim = b.sim;
  const sys = new System(sim, { memoryPages: GIB_PAGES + 1024, thp: 'never' });
  const mm = sys.createMm();
  sys.mmapSetup(mm, { addr: BASE, len: GIB_PAGES * PAGE_SIZE, prot: RW, flags: FIXED });
  const vma = mm.vmaLookup(BASE)!;
  vma.anonVma = new AnonVma(sim);
  vma.anonVma.vmas.add(vma);
  for (let t = 0; t < GIB_PAGES / 512; t++) {
    const addr = BASE + t * PMD_SIZE;
    const folio = sys.mem.allocNow(9)!;
    folio.anon = true;
    folio.anonVma = vma.anonVma;
    folio.index = vma.linearPageIndex(addr);
    folio.mapcount.fill(1);
    folio.anonExclusive.fill(true);
    folio.refcount = 512;
    const table = new PteTable(sim, mm, addr);
    for (let i = 0; i < 512; i++) {
      table.slot(addr + i * PAGE_SIZE).entry = {
        kind: 'present',
        pfn: folio.pfn + i,
        write: true,
        dirty: true,
        young: true,
      };
    }
    mm.pageTable.pmdSlot(addr).entry = { kind: 'table', table };
  }
  mm.rss.anon = GIB_PAGES;
  const sub = new MmuIntervalNotifier(sim, 'bench->notifier');
  b.run('insert', () =>
    mmuIntervalNotifierInsert(sub, mm, BASE, GIB_PAGES * PAGE_SIZE, {
      *invalidate(s, _r, seq) {
        yield* mmuIntervalSetSeq(s, seq);
        return true;
      },
    }),
  );
  return { b, mm, sub };
}

const stepsPerCall: Record<string, number> = {};

function hmmCase(world: ReturnType<typeof hmmWorld>, npages: number): () => void {
  const { b, mm, sub } = world;
  const range: HmmRange = {
    notifier: sub,
    notifierSeq: 0,
    start: BASE,
    end: BASE + npages * PAGE_SIZE,
    hmmPfns: new BigUint64Array(npages),
    defaultFlags: HMM_PFN_REQ_FAULT,
    pfnFlagsMask: 0n,
    devPrivateOwner: null,
  };
  return () => {
    b.run('device', function* () {
      range.notifierSeq = yield* mmuIntervalReadBegin(sub);
      yield* mm.mmapLock.downRead();
      const ret = yield* hmmRangeFault(range);
      yield* mm.mmapLock.upRead();
      if (ret !== 0 || !(range.hmmPfns[npages - 1]! & HMM_PFN_VALID))
        throw new Error(`hmm_range_fault: ${ret}`);
    });
    stepsPerCall[`hmm_range_fault ${npages} pages`] = b.steps;
  };
}

/** A range of `pages` anonymous pages (a THP if `thp`) and device memory for it. */
function migrateWorld(pages: number, thp: boolean) {
  const b = new Bench1();
  const sys = new System(b.sim, { memoryPages: 4 * pages + 1024, thp: 'madvise' });
  const mm = sys.createMm();
  sys.mmapSetup(mm, {
    addr: PMD_SIZE,
    len: pages * PAGE_SIZE,
    prot: RW,
    flags: FIXED,
    vmFlags: thp ? VM_HUGEPAGE : 0,
  });
  const owner = { name: 'bench-gpu' };
  const pgmap: Pgmap = sys.mem.addPgmap('device-private', owner, 2 * pages, {});
  b.run('populate', function* () {
    if (thp) yield* cpuWrite(mm, PMD_SIZE, 0);
    else for (let i = 0; i < pages; i++) yield* cpuWrite(mm, PMD_SIZE + i * PAGE_SIZE, i);
  });
  return { b, sys, mm, pgmap, owner };
}

/** One migrate_vma pass over the whole range, to device memory or back. */
function* migrateOnce(
  w: ReturnType<typeof migrateWorld>,
  pages: number,
  toDevice: boolean,
  compound: boolean,
): Routine<number> {
  const { sys, mm, pgmap, owner } = w;
  const mem = sys.mem;
  const args: MigrateVma = {
    vma: mm.vmaLookup(PMD_SIZE)!,
    start: PMD_SIZE,
    end: PMD_SIZE + pages * PAGE_SIZE,
    src: new Array<number>(pages).fill(0),
    dst: new Array<number>(pages).fill(0),
    cpages: 0,
    npages: 0,
    pgmapOwner: owner,
    flags:
      (toDevice ? MIGRATE_VMA_SELECT_SYSTEM : MIGRATE_VMA_SELECT_DEVICE_PRIVATE) |
      (compound ? MIGRATE_VMA_SELECT_COMPOUND : 0),
    faultPage: null,
  };
  yield* mm.mmapLock.downRead();
  if (yield* migrateVmaSetup(args)) throw new Error('migrate_vma_setup');
  for (let i = 0; i < args.npages; i++) {
    const s = args.src[i]!;
    if (!(s & MIGRATE_PFN_MIGRATE)) continue;
    const big = (s & MIGRATE_PFN_COMPOUND) !== 0;
    const d: Folio | null = toDevice
      ? yield* allocDevicePage(mem, pgmap, big ? 9 : 0)
      : yield* allocSystemPage(mem, big ? 9 : 0);
    if (!d) throw new Error('out of memory');
    const sf = s & MIGRATE_PFN_VALID ? mem.folioAt(migratePfnToPfn(s))! : null;
    if (sf) {
      const data = yield* sf.inspect('copy_highpage', (f) => f.data.slice());
      for (let j = 0; j < d.nr; j++) d.data[j] = data[j] ?? 0;
    }
    args.dst[i] = migratePfn(d.pfn) | (big ? MIGRATE_PFN_COMPOUND : 0);
  }
  yield* migrateVmaPages(args);
  let n = 0;
  for (let i = 0; i < args.npages; i++)
    if (args.src[i]! & MIGRATE_PFN_MIGRATE) n += args.src[i]! & MIGRATE_PFN_COMPOUND ? 512 : 1;
  yield* migrateVmaFinalize(args);
  yield* mm.mmapLock.upRead();
  return n;
}

function migrateCase(pages: number, thp: boolean): () => void {
  const w = migrateWorld(pages, thp);
  return () => {
    w.b.run('round trip', function* () {
      const there = yield* migrateOnce(w, pages, true, thp);
      const back = yield* migrateOnce(w, pages, false, thp);
      if (there !== pages || back !== pages) throw new Error(`migrated ${there} / ${back} of ${pages}`);
    });
    stepsPerCall[`migrate_vma round trip ${pages} pages${thp ? ' (THP)' : ''}`] = w.b.steps;
  };
}

export async function benchHmm(): Promise<void> {
  const world = hmmWorld();
  const cases: BenchCase[] = [];
  const sizes = [1, 512, GIB_PAGES];
  for (const n of sizes) {
    cases.push({
      group: 'hmm_range_fault (snapshot, populated)',
      name: `${n} pages`,
      ops: n,
      unit: 'pages',
      ...(n === 1 ? {} : { baseline: '1 pages' }),
      fn: hmmCase(world, n),
    });
  }
  const mig: [string, number, boolean][] = [
    ['64 pages', 64, false],
    ['512 pages', 512, false],
    ['1 THP (512 pages, compound)', 512, true],
  ];
  for (const [name, pages, thp] of mig) {
    cases.push({
      group: 'migrate_vma round trip (to device and back)',
      name,
      ops: 2 * pages,
      unit: 'pages',
      ...(name === '64 pages' ? {} : { baseline: '64 pages' }),
      fn: migrateCase(pages, thp),
    });
  }
  const rows = await runSuite(SUITE, cases, { notes: { gibPages: GIB_PAGES } });
  // Per-page cost ratios (largest vs smallest range), stored beside the rows.
  const perPage = (n: number) => {
    const row = rows.find((r) => r.group.startsWith('hmm_range_fault') && r.name === `${n} pages`)!;
    return row.meanMs / n;
  };
  const notes = {
    gibPages: GIB_PAGES,
    perPageCostRatio_262144_vs_1: perPage(GIB_PAGES) / perPage(1),
    perPageCostRatio_262144_vs_512: perPage(GIB_PAGES) / perPage(512),
    stepsPerCall,
  };
  const file = join(resultsDir, `${SUITE}.json`);
  const json = JSON.parse(readFileSync(file, 'utf8')) as { notes: Record<string, unknown> };
  json.notes = notes;
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  console.log(
    `per-page cost ratio: 262,144 vs 1 page ${notes.perPageCostRatio_262144_vs_1.toFixed(4)}, 262,144 vs 512 pages ${notes.perPageCostRatio_262144_vs_512.toFixed(3)}`,
  );
}
