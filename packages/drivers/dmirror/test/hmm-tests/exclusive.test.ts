/**
 * hmm-tests.c, device-exclusive access and device memory under fork / GUP:
 * exclusive, exclusive_mprotect, exclusive_cow, hmm_gup_test, hmm_cow_in_device.
 */
import {
  cpuRead,
  cpuWrite,
  FOLL_GET,
  FOLL_WRITE,
  folioPut,
  fork,
  getUserPageVmaRemote,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  type Mm,
  PROT_READ,
  PROT_WRITE,
} from '@hmmkit/mm';
import { Completion, EPERM, type Routine } from '@hmmkit/sim';
import { expect } from 'vitest';
import {
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
} from '../../src/index.js';
import {
  ALIGN,
  cpuCheck,
  cpuFill,
  HMM_BUFFER_SIZE,
  hmmBuffer,
  hmmBufferFree,
  hmmDmirrorCmd,
  hmmIsCoherentType,
  hmmMigrateSysToDev,
  I,
  mirrorCheck,
  mmapOk,
  mmput,
  mprotect,
  TEST_F,
} from './harness.js';

/** `ASSERT_EQ(ptr[i]++, i)` over the pages: a load, then a store of the value plus one. */
function* cpuIncrement(mm: Mm, addr: number, npages: number): Routine {
  for (let p = 0; p < npages; p++) {
    const r = yield* cpuRead(mm, addr + p * 4096);
    expect(r).toEqual({ ok: true, value: p });
    expect((yield* cpuWrite(mm, addr + p * 4096, p + 1)).ok).toBe(true);
  }
}

TEST_F('hmm', 'exclusive', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  yield* cpuFill(self.mm, buffer.ptr, size, I);
  // Map the memory exclusively for device access.
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_EXCLUSIVE, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  mirrorCheck(buffer, npages, I);
  // Each first CPU touch restores a page and revokes the device's atomic mapping.
  yield* cpuIncrement(self.mm, buffer.ptr, npages);
  yield* cpuCheck(self.mm, buffer.ptr, size, (p) => p + 1);
  // The atomic access was revoked everywhere.
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_CHECK_EXCLUSIVE, buffer, npages)).toBe(0);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'exclusive_mprotect', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  yield* cpuFill(self.mm, buffer.ptr, size, I);
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_EXCLUSIVE, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  mirrorCheck(buffer, npages, I);
  expect(yield* mprotect(self.mm, buffer.ptr, size, PROT_READ)).toBe(0);
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(-EPERM);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'exclusive_cow', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  yield* cpuFill(self.mm, buffer.ptr, size, I);
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_EXCLUSIVE, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  const child = yield* fork(self.mm);
  expect(typeof child).not.toBe('number');
  const childMm = child as Mm;
  // The child verifies COW on its own, then _exit(0)s.
  const t = self.sim.spawn('child', function* () {
    yield* cpuIncrement(childMm, buffer.ptr, npages);
    yield* cpuCheck(childMm, buffer.ptr, size, (p) => p + 1);
    yield* mmput(childMm);
  });
  // The parent increments too.
  yield* cpuIncrement(self.mm, buffer.ptr, npages);
  yield* cpuCheck(self.mm, buffer.ptr, size, (p) => p + 1);
  // waitpid(): the child exited with status 0 (a failed assertion would have failed the run).
  yield* self.sim.join(t);
  yield* hmmBufferFree(self.mm, buffer);
});

/**
 * The gup_test debugfs ioctl for one page: `get_user_pages()` with FOLL_WRITE, then put. Only the
 * short-term forms are modelled (GUP_BASIC_TEST, GUP_FAST_BENCHMARK; @hmmkit/mm has no
 * FOLL_PIN/FOLL_LONGTERM): a device-private page is faulted back to system memory, a
 * device-coherent page is returned as it is.
 */
function* gupTestExec(mm: Mm, addr: number): Routine<number> {
  yield* mm.mmapLock.downRead('mmap_read_lock');
  const r = yield* getUserPageVmaRemote(mm, addr, FOLL_WRITE | FOLL_GET);
  yield* mm.mmapLock.upRead('mmap_read_unlock');
  if (typeof r === 'number') return -r;
  yield* folioPut(mm.system.mem, r.folio);
  return 0;
}

TEST_F(
  'hmm',
  'hmm_gup_test',
  function* (self) {
    const npages = 4;
    const size = npages << self.page_shift;
    const buffer = hmmBuffer(size);
    buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    yield* cpuFill(self.mm, buffer.ptr, size, I);
    expect(yield* hmmMigrateSysToDev(self.fd, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    mirrorCheck(buffer, npages, I);
    // GUP_BASIC_TEST, GUP_FAST_BENCHMARK on pages 0 and 1; PIN_FAST_BENCHMARK (FOLL_LONGTERM) and
    // PIN_LONGTERM_BENCHMARK on pages 2 and 3 act as plain GUP in the model (no FOLL_LONGTERM),
    // which for device-private pages is the same outcome: the page comes back to system memory.
    for (let p = 0; p < 4; p++) expect(yield* gupTestExec(self.mm, buffer.ptr + p * self.page_size)).toBe(0);
    const snap = hmmBuffer(size, new Uint8Array(npages));
    snap.ptr = buffer.ptr;
    expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_SNAPSHOT, snap, npages)).toBe(0);
    expect(snap.cpages).toBe(npages);
    const m = snap.mirror as Uint8Array;
    if (hmmIsCoherentType(self.variant.device_number)) {
      expect(m[0]).toBe(HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE);
      expect(m[1]).toBe(HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE);
    } else {
      expect(m[0]).toBe(HMM_DMIRROR_PROT_WRITE);
      expect(m[1]).toBe(HMM_DMIRROR_PROT_WRITE);
    }
    expect(m[2]).toBe(HMM_DMIRROR_PROT_WRITE);
    expect(m[3]).toBe(HMM_DMIRROR_PROT_WRITE);
    // No corrupted data.
    yield* cpuCheck(self.mm, buffer.ptr, size, I);
    yield* hmmBufferFree(self.mm, buffer);
  },
  {
    only: ['device_private'],
    skipReason:
      'needs FOLL_LONGTERM GUP (migrate_device_coherent_folio), which @hmmkit/mm does not model, to move pages 2-3 out of coherent memory',
  },
);

TEST_F('hmm', 'hmm_cow_in_device', function* (self) {
  const npages = 4;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  yield* cpuFill(self.mm, buffer.ptr, size, I);
  expect(yield* hmmMigrateSysToDev(self.fd, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  const child = (yield* fork(self.mm)) as Mm;
  expect(typeof child).not.toBe('number');
  // The child spins until SIGKILL.
  const sigkill = new Completion(self.sim, 'SIGKILL');
  const t = self.sim.spawn('child', function* () {
    yield* sigkill.wait();
    yield* mmput(child);
  });
  // The parent writes the COW pages: a private page is first migrated back to system memory, a
  // coherent one is copied straight from device memory.
  yield* cpuFill(self.mm, buffer.ptr, size, I);
  yield* sigkill.complete('kill(pid, SIGKILL)');
  yield* self.sim.join(t);
  const snap = hmmBuffer(size, new Uint8Array(npages));
  snap.ptr = buffer.ptr;
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_SNAPSHOT, snap, npages)).toBe(0);
  expect(snap.cpages).toBe(npages);
  for (let p = 0; p < npages; p++) expect((snap.mirror as Uint8Array)[p]).toBe(HMM_DMIRROR_PROT_WRITE);
  yield* hmmBufferFree(self.mm, buffer);
});
