/**
 * The two code-reading observations of reference drivers.md §1.11 on nouveau_svm_fault(), explored:
 *
 * (a) `atomic` is set by an ATOMIC group and never reset, so every later group of the batch takes
 *     the device-exclusive path;
 * (b) the sort puts READ before WRITE at one address while the duplicate-skip test assumes the
 *     opposite, so a WRITE behind a READ of the same page is skipped.
 *
 * Each program runs two GPU warps of one channel whose faults may land in one batch, against the
 * driver as upstream has it and with the proposed fix (`proposedFixes`).
 */
import { cpuRead, cpuWrite, mmput, PAGE_SIZE, PROT_READ } from '@hmmkit/mm';
import { Completion, type Program, renderRaceDiagram } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { type NouveauOptions, nouveauChannelNew, nouveauCliFini, nouveauDrmUnload } from '../src/drm.js';
import {
  FAULT_ACCESS_ATOMIC,
  FAULT_ACCESS_READ,
  FAULT_ACCESS_WRITE,
  type FaultAccess,
  type GpuAccessResult,
  type NvChannel,
  nvGpuAccess,
} from '../src/gpu.js';
import { nouveauSvmmBind, nouveauSvmmInit } from '../src/svm.js';
import { BASE, explore, world } from './helpers.js';

const RO = BASE + 0x10000;

interface Outcome {
  /** Faults skipped as duplicates although the new mapping did not satisfy them. */
  skippedUnsatisfied: number;
  results: (GpuAccessResult | null)[];
  batchedTogether: boolean;
  /** The GPU entry of b's page after both accesses: mapped for atomics? */
  bAtomic: boolean;
  /** Pages migrated back to system memory while the warps ran. */
  toRam: number;
  /** What the CPU reads at b's page afterwards. */
  cpuB: unknown;
}

/**
 * Two warps: `a` and `b` (address, access). The page at BASE holds 'A' (CPU-written), the page at
 * RO is a PROT_READ anonymous page the CPU has read (the zero page). `vramB`: b's page is migrated
 * to VRAM first.
 */
function twoWarps(
  name: string,
  options: NouveauOptions,
  a: [number, FaultAccess],
  b: [number, FaultAccess],
  check: (o: Outcome) => true | string,
  prep: { vramB?: boolean; cpuReadOnlyB?: boolean } = {},
): Program {
  return {
    name,
    setup(sim) {
      const w = world(sim, { ...options, onRetriesExhausted: 'ebusy' }, 3);
      w.sys.mmapSetup(w.mm, { addr: RO, len: PAGE_SIZE, prot: PROT_READ });
      sim.runNow(() => cpuWrite(w.mm, BASE, 'A'));
      sim.runNow(() => cpuWrite(w.mm, BASE + PAGE_SIZE, 'B'));
      sim.runNow(() => cpuRead(w.mm, RO));
      if (prep.cpuReadOnlyB) sim.runNow(() => cpuRead(w.mm, b[0]));
      const ready = new Completion(sim, 'channel ready');
      const out: Outcome = {
        skippedUnsatisfied: 0,
        results: [null, null],
        batchedTogether: false,
        bAtomic: false,
        toRam: 0,
        cpuB: null,
      };
      let chan: NvChannel | null = null;
      const warps = [a, b].map(([addr, access], i) =>
        sim.spawn(`warp${i}`, function* () {
          yield* ready.wait();
          out.results[i] = yield* nvGpuAccess(w.sys.mem, w.drm.hw, chan!, addr, access, `D${i}`);
        }),
      );
      sim.spawn('client', function* () {
        expect(yield* nouveauSvmmInit(w.cli, 0, 0)).toBe(0);
        chan = (yield* nouveauChannelNew(w.cli)) as NvChannel;
        if (prep.vramB) yield* nouveauSvmmBind(w.cli, b[0], b[0] + PAGE_SIZE);
        const before = w.drm.dmem!.stats.toRam;
        yield* ready.completeAll();
        for (const t of warps) yield* sim.join(t);
        out.toRam = w.drm.dmem!.stats.toRam - before;
        const pte = w.cli.svm.vmm!.ptes.get(b[0] / PAGE_SIZE);
        out.bAtomic = pte?.kind === 'pfn' && pte.atomic;
        const r = yield* cpuRead(w.mm, b[0]);
        out.cpuB = r.ok ? r.value : r.signal;
        yield* nouveauCliFini(w.cli);
        yield* nouveauDrmUnload(w.drm);
        yield* mmput(w.mm);
      });
      // Both faults were handled in one batch when a batch handled two groups.
      const svm = w.drm.svm!;
      const batches = () => svm.stats;
      return {
        properties: {
          outcome: () => {
            out.batchedTogether = batches().handled > batches().batches;
            out.skippedUnsatisfied = batches().skippedUnsatisfied;
            return check(out);
          },
        },
      };
    },
  };
}

/** The violations an exploration finds (message, then the race diagram's tail on the next lines). */
function failures(p: Program, runs = 600): string[] {
  const r = explore(p, { budgets: { maxRuns: runs, maxSteps: 5000 } });
  return r.failures.map((f) => `${f.violation.message}\n${renderRaceDiagram(f.trace, { tail: 40 })}`);
}

const readSucceeds = (o: Outcome) =>
  o.results[1]?.ret === 0 ? true : `the READ of the PROT_READ page failed (${o.results[1]?.ret})`;

describe('§1.11 (a): the atomic flag is never reset within a batch', () => {
  it('upstream: a legal READ behind an ATOMIC in the same batch is cancelled (channel killed)', () => {
    const p = twoWarps(
      'atomic then read-only read',
      {},
      [BASE, FAULT_ACCESS_ATOMIC],
      [RO, FAULT_ACCESS_READ],
      readSucceeds,
    );
    const f = failures(p);
    expect(f.length).toBe(1);
    expect(f[0]).toContain('READ of the PROT_READ page failed');
  });

  it('with the atomic flag reset per group, the READ never fails', () => {
    const p = twoWarps(
      'atomic then read-only read (fixed)',
      { proposedFixes: { resetAtomicPerGroup: true } },
      [BASE, FAULT_ACCESS_ATOMIC],
      [RO, FAULT_ACCESS_READ],
      readSucceeds,
    );
    expect(failures(p)).toEqual([]);
  });
});

describe('§1.11 (a): what else the sticky atomic flag does', () => {
  it('upstream: a READ of a writable page is made device-exclusive and mapped for atomics', () => {
    const notExclusive = (o: Outcome) =>
      !o.bAtomic ? true : 'the READ fault left a V|W|A mapping (the page was made device-exclusive)';
    const up = twoWarps(
      'atomic then read',
      {},
      [BASE, FAULT_ACCESS_ATOMIC],
      [BASE + PAGE_SIZE, FAULT_ACCESS_READ],
      notExclusive,
    );
    expect(failures(up).length).toBe(1);
    const fixed = twoWarps(
      'atomic then read (fixed)',
      { proposedFixes: { resetAtomicPerGroup: true } },
      [BASE, FAULT_ACCESS_ATOMIC],
      [BASE + PAGE_SIZE, FAULT_ACCESS_READ],
      notExclusive,
    );
    expect(failures(fixed)).toEqual([]);
  });
});

describe('§1.11 (b): READ sorted before WRITE at one address', () => {
  const P2 = BASE + 2 * PAGE_SIZE;
  // The write always lands and the CPU sees it.
  const writeLands = (o: Outcome) =>
    o.results[1]?.ret === 0 && o.cpuB === 'D1'
      ? true
      : `write ret ${o.results[1]?.ret}, CPU reads ${String(o.cpuB)}`;
  // ... but was it skipped behind the READ (and so replayed to fault again)?
  const neverSkipped = (o: Outcome) => {
    const w = writeLands(o);
    if (w !== true) return w;
    return o.skippedUnsatisfied === 0
      ? true
      : 'a WRITE fault was skipped behind the READ of its page (mapping read-only): it faults again after the replay';
  };
  const rw = (name: string, opts: NouveauOptions, check: (o: Outcome) => true | string) =>
    twoWarps(name, opts, [P2, FAULT_ACCESS_READ], [P2, FAULT_ACCESS_WRITE], check, { cpuReadOnlyB: true });

  it('upstream: never a wrong mapping or a lost write', () => {
    expect(failures(rw('read+write same page', {}, writeLands))).toEqual([]);
  });

  it('upstream: but the WRITE can be skipped and must fault again (an extra round trip)', () => {
    const f = failures(rw('read+write same page (skips)', {}, neverSkipped));
    expect(f.length).toBe(1);
    expect(f[0]).toContain('skipped behind the READ');
  });

  it("sorting writes first, or checking each fault's own access, removes the extra round trip", () => {
    expect(failures(rw('writes first', { proposedFixes: { sortWritesFirst: true } }, neverSkipped))).toEqual(
      [],
    );
    expect(
      failures(rw('own access', { proposedFixes: { skipChecksEachFault: true } }, neverSkipped)),
    ).toEqual([]);
  });
});
