import { EBUSY, EFAULT, EINVAL, EPERM, type Routine } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  HMM_PFN_DMA_MAPPED,
  HMM_PFN_ERROR,
  HMM_PFN_FLAGS,
  HMM_PFN_INOUT_FLAGS,
  HMM_PFN_ORDER_SHIFT,
  HMM_PFN_P2PDMA,
  HMM_PFN_P2PDMA_BUS,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  HMM_RANGE_DEFAULT_TIMEOUT,
  type HmmRange,
  hmmPfnToMapOrder,
  hmmPfnToPfn,
  hmmRangeFault,
} from '../../src/hmm/index.js';
import {
  cpuRead,
  cpuWrite,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  type Mm,
  mprotect,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  type PteTable,
  peekPte,
  pteAlloc,
  remapIoPages,
  VM_HUGEPAGE,
  VM_MIXEDMAP,
  zapPageRangeSingle,
} from '../../src/index.js';
import {
  MmuIntervalNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalSetSeq,
} from '../../src/notifier/index.js';
import { runThread } from '../helpers.js';
import { ToyDevice } from '../hmmkit-helpers.js';

const RW = PROT_READ | PROT_WRITE;
const BASE = 0x200000;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
/** A pfn no output carries: marks entries that still hold their input. */
const MARKER = 0x1abcdn;

interface Req {
  dflt?: bigint;
  mask?: bigint;
  owner?: unknown;
  input?: bigint[];
  /** Return the first -EBUSY instead of retrying from read_begin (the caller protocol). */
  once?: boolean;
}

/** A subscriber whose callback only publishes the sequence (single-threaded tests). */
function* subscribe(mm: Mm, start = 0, length = 2 ** 40): Routine<MmuIntervalNotifier> {
  const sub = new MmuIntervalNotifier(mm.sim, 'test->notifier');
  yield* mmuIntervalNotifierInsert(sub, mm, start, length, {
    *invalidate(s, _r, seq) {
      yield* mmuIntervalSetSeq(s, seq);
      return true;
    },
  });
  return sub;
}

/** read_begin + mmap_read_lock + hmm_range_fault over `n` pages from `start`. */
function* hmm(
  sub: MmuIntervalNotifier,
  mm: Mm,
  start: number,
  n: number,
  req: Req = {},
): Routine<{ ret: number; pfns: bigint[] }> {
  for (;;) {
    const range: HmmRange = {
      notifier: sub,
      notifierSeq: yield* mmuIntervalReadBegin(sub),
      start,
      end: start + n * PAGE_SIZE,
      hmmPfns: BigUint64Array.from(req.input ?? new Array<bigint>(n).fill(MARKER)),
      defaultFlags: req.dflt ?? 0n,
      pfnFlagsMask: req.mask ?? 0n,
      devPrivateOwner: req.owner ?? null,
    };
    yield* mm.mmapLock.downRead();
    const ret = yield* hmmRangeFault(range);
    yield* mm.mmapLock.upRead();
    if (ret !== -EBUSY || req.once) return { ret, pfns: [...range.hmmPfns] };
  }
}

/** Invariant 13 on one result: every entry written, requests met, flags consistent. */
function invariant13(pfns: bigint[], req: Req): string | undefined {
  for (let i = 0; i < pfns.length; i++) {
    const v = pfns[i]!;
    const asked = ((req.input?.[i] ?? 0n) & (req.mask ?? 0n)) | (req.dflt ?? 0n);
    if ((v & ~HMM_PFN_FLAGS) === MARKER) return `entry ${i} not written`;
    if (v & HMM_PFN_ERROR && v & (HMM_PFN_VALID | HMM_PFN_WRITE)) return `entry ${i}: ERROR with VALID/WRITE`;
    if (v & HMM_PFN_WRITE && !(v & HMM_PFN_VALID)) return `entry ${i}: WRITE without VALID`;
    if (asked & HMM_PFN_REQ_FAULT && !(v & HMM_PFN_VALID)) return `entry ${i}: requested, not VALID`;
    if (asked & HMM_PFN_REQ_FAULT && asked & HMM_PFN_REQ_WRITE && !(v & HMM_PFN_WRITE)) {
      return `entry ${i}: write requested, not WRITE`;
    }
  }
  return undefined;
}

describe('HMM_PFN encoding (mainline v6.15+ layout)', () => {
  it('has the kernel bit positions and helpers', () => {
    expect(HMM_PFN_VALID).toBe(1n << 63n);
    expect(HMM_PFN_WRITE).toBe(1n << 62n);
    expect(HMM_PFN_ERROR).toBe(1n << 61n);
    expect(HMM_PFN_DMA_MAPPED).toBe(1n << 60n);
    expect(HMM_PFN_P2PDMA).toBe(1n << 59n);
    expect(HMM_PFN_P2PDMA_BUS).toBe(1n << 58n);
    expect(HMM_PFN_ORDER_SHIFT).toBe(53n);
    expect(HMM_PFN_REQ_FAULT).toBe(HMM_PFN_VALID);
    expect(HMM_PFN_REQ_WRITE).toBe(HMM_PFN_WRITE);
    expect(HMM_PFN_FLAGS).toBe(0xffe0_0000_0000_0000n);
    expect(HMM_PFN_INOUT_FLAGS).toBe(HMM_PFN_DMA_MAPPED | HMM_PFN_P2PDMA | HMM_PFN_P2PDMA_BUS);
    const v = HMM_PFN_VALID | (9n << 53n) | 0x12345n;
    expect(hmmPfnToPfn(v)).toBe(0x12345);
    expect(hmmPfnToMapOrder(v)).toBe(9);
    expect(HMM_RANGE_DEFAULT_TIMEOUT).toBe(1000);
  });
});

/**
 * The mixed layout: A = 3 RW anon pages (written, zero page, untouched), a hole, B = 1 read-only
 * page (zero page), C = PROT_NONE, D = a VM_IO/VM_PFNMAP page.
 */
function layout(mm: Mm, sys: import('../../src/index.js').System) {
  sys.mmapSetup(mm, { addr: BASE, len: 3 * PAGE_SIZE, prot: RW, flags: FIXED });
  sys.mmapSetup(mm, { addr: BASE + 4 * PAGE_SIZE, len: PAGE_SIZE, prot: PROT_READ, flags: FIXED });
  sys.mmapSetup(mm, { addr: BASE + 5 * PAGE_SIZE, len: PAGE_SIZE, prot: PROT_NONE, flags: FIXED });
  const io = remapIoPages(mm, ['io'], PROT_READ | PROT_WRITE, BASE + 6 * PAGE_SIZE);
  expect(io).toBe(BASE + 6 * PAGE_SIZE);
  return function* () {
    yield* cpuWrite(mm, BASE, 'a0');
    yield* cpuRead(mm, BASE + PAGE_SIZE);
    yield* cpuRead(mm, BASE + 4 * PAGE_SIZE);
  };
}

describe('hmm_range_fault', () => {
  it('§7.13 success writes every entry, meets every request, never ERROR with VALID/WRITE (snapshot, read, write, per-page requests)', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const populate = layout(mm, sys);
      return function* () {
        yield* populate();
        const sub = yield* subscribe(mm);
        const out: Record<string, { ret: number; pfns: bigint[]; bad?: string }> = {};
        const cases: [string, number, Req][] = [
          ['snapshot', 7, {}],
          ['fault A', 3, { dflt: HMM_PFN_REQ_FAULT }],
          ['write A', 3, { dflt: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE }],
          [
            'per-page write',
            3,
            {
              dflt: HMM_PFN_REQ_FAULT,
              mask: HMM_PFN_REQ_WRITE,
              input: [MARKER, MARKER | HMM_PFN_REQ_WRITE, MARKER],
            },
          ],
        ];
        for (const [name, n, req] of cases) {
          const r = yield* hmm(sub, mm, BASE, n, req);
          out[name] = { ...r, ...(r.ret === 0 ? { bad: invariant13(r.pfns, req) } : {}) };
        }
        return out;
      };
    });
    for (const [name, r] of Object.entries(result)) {
      expect(r.ret, name).toBe(0);
      expect(r.bad, name).toBeUndefined();
    }
    const s = result.snapshot!.pfns;
    expect(s[0]! & (HMM_PFN_VALID | HMM_PFN_WRITE)).toBe(HMM_PFN_VALID | HMM_PFN_WRITE);
    expect(s[1]).toBe(HMM_PFN_VALID); // the zero page, pfn 0, read-only
    expect(s[2]).toBe(0n); // none: faultable
    expect(s[3]).toBe(HMM_PFN_ERROR); // no VMA
    expect(s[4]).toBe(HMM_PFN_VALID); // read-only VMA, zero page
    expect(s[5]).toBe(HMM_PFN_ERROR); // PROT_NONE
    expect(s[6]).toBe(HMM_PFN_ERROR); // VM_IO | VM_PFNMAP
    expect(hmmPfnToPfn(result['write A']!.pfns[1]!)).not.toBe(0); // the zero page was COW-replaced
    const per = result['per-page write']!.pfns;
    expect(per[0]! & HMM_PFN_VALID).toBe(HMM_PFN_VALID);
  });

  it('errors: -EFAULT (no VMA, PROT_NONE, VM_IO), -EPERM (write on a read-only VMA), -EINVAL (empty range)', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const populate = layout(mm, sys);
      return function* () {
        yield* populate();
        const sub = yield* subscribe(mm);
        const F = { dflt: HMM_PFN_REQ_FAULT };
        return {
          hole: (yield* hmm(sub, mm, BASE + 3 * PAGE_SIZE, 1, F)).ret,
          protNone: (yield* hmm(sub, mm, BASE + 5 * PAGE_SIZE, 1, F)).ret,
          io: (yield* hmm(sub, mm, BASE + 6 * PAGE_SIZE, 1, F)).ret,
          roWrite: (yield* hmm(sub, mm, BASE + 4 * PAGE_SIZE, 1, {
            dflt: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
          })).ret,
          empty: (yield* hmm(sub, mm, BASE, 0)).ret,
        };
      };
    });
    expect(result).toEqual({
      hole: -EFAULT,
      protNone: -EFAULT,
      io: -EFAULT,
      roWrite: -EPERM,
      empty: -EINVAL,
    });
  });

  it('a VM_MIXEDMAP VMA is walked; its special (pfn-only) pages are ERROR, or -EFAULT when requested', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: BASE, len: PAGE_SIZE, prot: RW, flags: FIXED, vmFlags: VM_MIXEDMAP });
      return function* () {
        const sub = yield* subscribe(mm);
        // models vm_insert_pfn(): a special PTE with no struct page.
        const pmd = mm.pageTable.pmdSlot(BASE);
        yield* pteAlloc(mm, pmd);
        const table = (pmd.entry as { table: PteTable }).table;
        yield* table.ptl.lock();
        yield* table
          .slot(BASE)
          .set({ kind: 'present', pfn: 0x99999, write: true, dirty: false, young: true, special: true });
        yield* table.ptl.unlock();
        const snap = yield* hmm(sub, mm, BASE, 1);
        const req = yield* hmm(sub, mm, BASE, 1, { dflt: HMM_PFN_REQ_FAULT });
        yield* zapPageRangeSingle(mm.vmaLookup(BASE)!, BASE, PAGE_SIZE);
        return { snap, req: req.ret };
      };
    });
    expect(result.snap).toEqual({ ret: 0, pfns: [HMM_PFN_ERROR] });
    expect(result.req).toBe(-EFAULT);
  });

  it('§7.14 the sticky DMA bits of every entry survive success and every error', () => {
    const STICKY = [HMM_PFN_DMA_MAPPED, HMM_PFN_P2PDMA | HMM_PFN_DMA_MAPPED, HMM_PFN_P2PDMA_BUS, 0n];
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const populate = layout(mm, sys);
      return function* () {
        yield* populate();
        const sub = yield* subscribe(mm);
        const input = (n: number) => Array.from({ length: n }, (_, i) => STICKY[i % 4]! | MARKER);
        const runs = [
          yield* hmm(sub, mm, BASE, 7, { input: input(7) }),
          yield* hmm(sub, mm, BASE, 3, { input: input(3), dflt: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE }),
          yield* hmm(sub, mm, BASE, 7, { input: input(7), dflt: HMM_PFN_REQ_FAULT }),
          yield* hmm(sub, mm, BASE + 4 * PAGE_SIZE, 1, {
            input: input(1),
            dflt: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
          }),
        ];
        return runs.map((r) => ({ ret: r.ret, sticky: r.pfns.map((v) => v & HMM_PFN_INOUT_FLAGS) }));
      };
    });
    expect(result.map((r) => r.ret)).toEqual([0, 0, -EFAULT, -EPERM]);
    for (const r of result) expect(r.sticky).toEqual(r.sticky.map((_, i) => STICKY[i % 4]!));
  });

  it('§7.15 a device-private page is reported only to its owner; other owners get 0 or fault it back through migrate_to_ram', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: BASE, len: 2 * PAGE_SIZE, prot: RW, flags: FIXED });
      const devA = new ToyDevice(sys, 'devA', 4);
      const devB = new ToyDevice(sys, 'devB', 4);
      return function* () {
        yield* cpuWrite(mm, BASE, 'on device');
        yield* cpuWrite(mm, BASE + PAGE_SIZE, 'cpu');
        yield* devA.toDevice(mm, BASE, BASE + PAGE_SIZE);
        const devPfn = peekPte(mm, BASE).folio!.pfn;
        const sub = yield* subscribe(mm);
        const owner = yield* hmm(sub, mm, BASE, 1, {
          owner: devA.owner,
          dflt: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
        });
        const otherSnap = yield* hmm(sub, mm, BASE, 1, { owner: devB.owner });
        const noOwner = yield* hmm(sub, mm, BASE, 1);
        const stillOnDevice = peekPte(mm, BASE).entry.kind;
        const otherFault = yield* hmm(sub, mm, BASE, 1, { owner: devB.owner, dflt: HMM_PFN_REQ_FAULT });
        const after = peekPte(mm, BASE);
        return {
          devPfn,
          owner,
          otherSnap,
          noOwner,
          stillOnDevice,
          otherFault,
          back: after.entry.kind,
          zone: after.folio?.zone,
          data: after.folio?.data[0],
          calls: devA.toRamCalls,
        };
      };
    });
    expect(result.owner).toEqual({ ret: 0, pfns: [BigInt(result.devPfn) | HMM_PFN_VALID | HMM_PFN_WRITE] });
    expect(result.otherSnap).toEqual({ ret: 0, pfns: [0n] });
    expect(result.noOwner).toEqual({ ret: 0, pfns: [0n] });
    expect(result.stillOnDevice).toBe('device-private');
    expect(result.otherFault.ret).toBe(0);
    expect(hmmPfnToPfn(result.otherFault.pfns[0]!)).not.toBe(result.devPfn);
    expect(result).toMatchObject({ back: 'present', zone: 'normal', data: 'on device', calls: 1 });
  });

  it('§7.16 a PMD-mapped THP is reported with order 9; every entry of the block has the same flags and consecutive pfns', () => {
    const { result } = runThread(
      ({ sys }) => {
        const mm = sys.createMm();
        sys.mmapSetup(mm, {
          addr: 2 * PMD_SIZE,
          len: 2 * PMD_SIZE,
          prot: RW,
          flags: FIXED,
          vmFlags: VM_HUGEPAGE,
        });
        return function* () {
          yield* cpuWrite(mm, 2 * PMD_SIZE, 'thp');
          const sub = yield* subscribe(mm);
          // 8 pages straddling the end of the THP: 4 in it, 4 in the next (untouched) PMD.
          const start = 3 * PMD_SIZE - 4 * PAGE_SIZE;
          const snap = yield* hmm(sub, mm, start, 8);
          const ro = yield* mprotect(mm, 2 * PMD_SIZE, PMD_SIZE, PROT_READ);
          const snapRo = yield* hmm(sub, mm, start, 4);
          return { start, snap, ro, snapRo, folioPfn: peekPte(mm, 2 * PMD_SIZE).folio!.pfn };
        };
      },
      { memoryPages: 2048, thp: 'madvise' },
    );
    const { start, snap, snapRo, folioPfn } = result;
    expect(snap.ret).toBe(0);
    for (const [r, write] of [
      [snap, true],
      [snapRo, false],
    ] as const) {
      const block = r.pfns.slice(0, 4);
      for (let i = 0; i < 4; i++) {
        const v = block[i]!;
        expect(hmmPfnToMapOrder(v)).toBe(9);
        expect(v & HMM_PFN_FLAGS).toBe(block[0]! & HMM_PFN_FLAGS);
        expect(!!(v & HMM_PFN_WRITE)).toBe(write);
        const pfn = hmmPfnToPfn(v);
        // Naturally aligned: the pfn's offset in the 512-page block is the address's.
        expect(pfn - folioPfn).toBe((start - 2 * PMD_SIZE) / PAGE_SIZE + i);
        expect(pfn % 512).toBe((start / PAGE_SIZE + i) % 512);
      }
    }
    expect(snap.pfns.slice(4)).toEqual([0n, 0n, 0n, 0n]);
  });

  it('§7.17 on -EFAULT / -EPERM / -EBUSY the entries before the failure are outputs, the rest still inputs', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: BASE, len: 2 * PAGE_SIZE, prot: RW, flags: FIXED });
      sys.mmapSetup(mm, { addr: BASE + 3 * PAGE_SIZE, len: PAGE_SIZE, prot: RW, flags: FIXED });
      sys.mmapSetup(mm, { addr: BASE + 4 * PAGE_SIZE, len: PAGE_SIZE, prot: PROT_READ, flags: FIXED });
      return function* () {
        yield* cpuWrite(mm, BASE, 'p0');
        yield* cpuRead(mm, BASE + PAGE_SIZE); // zero page: a write request must COW it
        yield* cpuWrite(mm, BASE + 3 * PAGE_SIZE, 'p3');
        const sub = yield* subscribe(mm);
        // -EFAULT at the hole (page 2): pages 0-1 written, pages 2-3 untouched.
        const efault = yield* hmm(sub, mm, BASE, 4, { dflt: HMM_PFN_REQ_FAULT });
        // -EPERM at the read-only page 4 (write asked of page 4 only).
        const input = [MARKER, MARKER | HMM_PFN_REQ_WRITE];
        const eperm = yield* hmm(sub, mm, BASE + 3 * PAGE_SIZE, 2, {
          dflt: HMM_PFN_REQ_FAULT,
          mask: HMM_PFN_REQ_WRITE,
          input,
        });
        // -EBUSY: the write fault on page 1 COWs the zero page (MMU_NOTIFY_CLEAR on our own
        // notifier); the next pass sees the sequence moved.
        const ebusy = yield* hmm(sub, mm, BASE, 2, {
          dflt: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
          once: true,
        });
        return { efault, eperm, ebusy };
      };
    });
    const isInput = (v: bigint) => (v & ~HMM_PFN_FLAGS) === MARKER;
    expect(result.efault.ret).toBe(-EFAULT);
    expect(result.efault.pfns.map(isInput)).toEqual([false, false, true, true]);
    expect(result.eperm.ret).toBe(-EPERM);
    expect(result.eperm.pfns.map(isInput)).toEqual([false, true]);
    expect(result.ebusy.ret).toBe(-EBUSY);
    expect(result.ebusy.pfns.map(isInput)).toEqual([false, true]);
  });

  it('over-faults the rest of the unit with the same flags (a fault needed by page 0 faults pages 1-3 too)', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { addr: BASE, len: 4 * PAGE_SIZE, prot: RW, flags: FIXED });
      return function* () {
        const sub = yield* subscribe(mm);
        const input = [MARKER | HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, MARKER, MARKER, MARKER];
        const r = yield* hmm(sub, mm, BASE, 4, { mask: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, input });
        return { r, kinds: [0, 1, 2, 3].map((i) => peekPte(mm, BASE + i * PAGE_SIZE).entry) };
      };
    });
    expect(result.r.ret).toBe(0);
    expect(result.kinds.every((e) => e.kind === 'present' && e.write)).toBe(true);
  });
});
