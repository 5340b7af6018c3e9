/**
 * hmm-tests.c, reads under concurrency, snapshots and two devices:
 * anon_read_multiple, anon_teardown, mixedmap, snapshot (hmm2), compound, double_map (hmm2).
 */
import { cpuRead, cpuWrite, MAP_ANONYMOUS, MAP_PRIVATE, munmap, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { explore, pct, type Routine, renderRaceDiagram } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_PROT_NONE,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_PROT_ZERO,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_SNAPSHOT,
} from '../../src/index.js';
import {
  ALIGN,
  cpuFill,
  FIXTURE_VARIANTS,
  HMM_BUFFER_SIZE,
  type HmmSelf,
  hmmBuffer,
  hmmBufferFree,
  hmmDmirrorCmd,
  hmmIsCoherentType,
  hmmMigrateSysToDev,
  hmmMmapDevice,
  hmmProgram,
  I,
  mirrorCheck,
  mmapOk,
  mprotect,
  NTIMES,
  TEST_F,
  TEST_F_SKIP,
} from './harness.js';

TEST_F('hmm', 'anon_read_multiple', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  for (let c = 0; c < NTIMES; c++) {
    const buffer = hmmBuffer(size);
    buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    yield* cpuFill(self.mm, buffer.ptr, size, (p) => p + c);
    expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expect(buffer.faults).toBe(1);
    mirrorCheck(buffer, npages, (p) => p + c);
    yield* hmmBufferFree(self.mm, buffer);
  }
});

/**
 * anon_teardown: a thread unmaps the second half of the buffer while the device reads it. The
 * kernel test samples ten schedules with a random delay; the port explores the interleavings,
 * checking after every step the mirror invariant, the page tables and the notifier state.
 */
function anonTeardownBody(npages: number, c: number) {
  return function* (self: HmmSelf): Routine<void> {
    const size = npages << self.page_shift;
    const buffer = hmmBuffer(size);
    buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    yield* cpuFill(self.mm, buffer.ptr, size, (p) => p + c);
    const ptr = buffer.ptr;
    // models unmap_buffer(): munmap of the second half, racing the device read.
    const thread = self.sim.spawn('unmap_buffer', () => munmap(self.mm, ptr + size / 2, size / 2));
    const rc = yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_READ, buffer, npages);
    if (rc === 0) {
      expect(buffer.cpages).toBe(npages);
      expect(buffer.faults).toBe(1);
      mirrorCheck(buffer, npages, (p) => p + c);
    }
    yield* self.sim.join(thread);
    yield* munmap(self.mm, ptr, size / 2);
  };
}

describe('hmm.anon_teardown', () => {
  for (const v of FIXTURE_VARIANTS) {
    it(`hmm_${v}: 300 PCT schedules of a 4-page read racing the unmap, checked after every step`, () => {
      const program = hmmProgram('hmm', v, 'anon_teardown', anonTeardownBody(4, 0), { checkEveryStep: true });
      const res = explore(program, {
        strategy: pct({ depth: 4, seed: 3 }),
        budgets: { maxRuns: 300, maxTimeMs: 20_000, maxSteps: 200_000 },
      });
      const f = res.failures[0];
      if (f) throw new Error(`${f.violation.kind}: ${f.violation.message}\n${renderRaceDiagram(f.trace)}`);
      expect(res.runs).toBe(300);
    });
    it(`hmm_${v}: NTIMES full-size schedules (PCT)`, () => {
      const program = hmmProgram('hmm', v, 'anon_teardown', function* (self) {
        const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
        yield* anonTeardownBody(npages, 0)(self);
      });
      const res = explore(program, {
        strategy: pct({ depth: 3, seed: 1 }),
        budgets: { maxRuns: NTIMES, maxTimeMs: 20_000, maxSteps: 5_000_000 },
      });
      const f = res.failures[0];
      if (f) throw new Error(`${f.violation.kind}: ${f.violation.message}`);
      expect(res.runs).toBe(NTIMES);
    });
  }
});

TEST_F('hmm', 'mixedmap', function* (self) {
  const npages = 1;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size, new Uint8Array(npages));
  // Map the device file itself.
  buffer.ptr = yield* hmmMmapDevice(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  expect(buffer.ptr).toBeGreaterThan(0);
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  expect((buffer.mirror as Uint8Array)[0]).toBe(HMM_DMIRROR_PROT_READ);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm2', 'snapshot', function* (self) {
  const npages = 7;
  const size = npages << self.page_shift;
  const P = self.page_size;
  const buffer = hmmBuffer(size, new Uint8Array(npages));
  buffer.ptr = yield* mmapOk(self.mm, size, 0, MAP_PRIVATE | MAP_ANONYMOUS);
  const p = buffer.ptr;
  expect(yield* munmap(self.mm, p + P, P)).toBe(0);
  // Page 2: read-only zero page.
  expect(yield* mprotect(self.mm, p + 2 * P, P, PROT_READ)).toBe(0);
  expect(yield* cpuRead(self.mm, p + 2 * P)).toEqual({ ok: true, value: 0 });
  const val = 3;
  // Page 3: read-only.
  expect(yield* mprotect(self.mm, p + 3 * P, P, PROT_READ | PROT_WRITE)).toBe(0);
  expect((yield* cpuWrite(self.mm, p + 3 * P, val)).ok).toBe(true);
  expect(yield* mprotect(self.mm, p + 3 * P, P, PROT_READ)).toBe(0);
  // Pages 4-6: read-write.
  expect(yield* mprotect(self.mm, p + 4 * P, 3 * P, PROT_READ | PROT_WRITE)).toBe(0);
  expect((yield* cpuWrite(self.mm, p + 4 * P, val)).ok).toBe(true);
  // Page 5 to device 0, page 6 to device 1.
  const one = hmmBuffer(P);
  one.ptr = p + 5 * P;
  expect(yield* hmmMigrateSysToDev(self.fd0, one, 1)).toBe(0);
  expect(one.cpages).toBe(1);
  one.ptr = p + 6 * P;
  expect(yield* hmmMigrateSysToDev(self.fd1, one, 1)).toBe(0);
  expect(one.cpages).toBe(1);
  // A device snapshot of the CPU page tables.
  buffer.ptr = p;
  expect(yield* hmmDmirrorCmd(self.fd0, HMM_DMIRROR_SNAPSHOT, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  const m = buffer.mirror as Uint8Array;
  expect(m[0]).toBe(HMM_DMIRROR_PROT_ERROR);
  expect(m[1]).toBe(HMM_DMIRROR_PROT_ERROR);
  expect(m[2]).toBe(HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
  expect(m[3]).toBe(HMM_DMIRROR_PROT_READ);
  expect(m[4]).toBe(HMM_DMIRROR_PROT_WRITE);
  if (!hmmIsCoherentType(self.variant.device_number0)) {
    expect(m[5]).toBe(HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE);
    expect(m[6]).toBe(HMM_DMIRROR_PROT_NONE);
  } else {
    expect(m[5]).toBe(HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE);
    expect(m[6]).toBe(HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE | HMM_DMIRROR_PROT_WRITE);
  }
  yield* munmap(self.mm, p, size);
});

TEST_F_SKIP(
  'hmm',
  'compound',
  'needs a hugetlbfs page (MAP_HUGETLB), which @hmmkit/mm does not model; the kernel test SKIPs too without free huge pages',
);

TEST_F('hmm2', 'double_map', function* (self) {
  const npages = 6;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  yield* cpuFill(self.mm, buffer.ptr, size, I);
  expect(yield* mprotect(self.mm, buffer.ptr, size, PROT_READ)).toBe(0);
  // Device 0 reads.
  expect(yield* hmmDmirrorCmd(self.fd0, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  expect(buffer.faults).toBe(1);
  mirrorCheck(buffer, npages, I);
  // Device 1 reads.
  expect(yield* hmmDmirrorCmd(self.fd1, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  expect(buffer.faults).toBe(1);
  mirrorCheck(buffer, npages, I);
  // Migrate to device 1, then read from device 0.
  expect(yield* hmmMigrateSysToDev(self.fd1, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  expect(yield* hmmDmirrorCmd(self.fd0, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  expect(buffer.faults).toBe(1);
  mirrorCheck(buffer, npages, I);
  yield* hmmBufferFree(self.mm, buffer);
});
