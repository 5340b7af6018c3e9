/**
 * hmm-tests.c, migration to device memory and back:
 * migrate, migrate_file_private, migrate_fault, migrate_release, migrate_shared,
 * migrate_mixed (hmm2), migrate_multiple.
 */
import { cpuRead, cpuWrite, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { EINVAL, ENOENT } from '@hmmkit/sim';
import { expect } from 'vitest';
import { HMM_DMIRROR_RELEASE } from '../../src/index.js';
import {
  ALIGN,
  cpuCheck,
  cpuFill,
  HMM_BUFFER_SIZE,
  hmmBuffer,
  hmmBufferFree,
  hmmDmirrorCmd,
  hmmIsCoherentType,
  hmmMigrateDevToSys,
  hmmMigrateSysToDev,
  I,
  mirrorCheck,
  mmapOk,
  mprotect,
  munmap,
  NTIMES,
  TEST_F,
} from './harness.js';

TEST_F('hmm', 'migrate', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  yield* cpuFill(self.mm, buffer.ptr, size, I);
  expect(yield* hmmMigrateSysToDev(self.fd, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  mirrorCheck(buffer, npages, I);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'migrate_file_private', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const fd = self.sys.createFile('tmpfile', new Array(npages).fill(0));
  const buffer = hmmBuffer(size);
  buffer.fd = fd;
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
  // CPU writes make anonymous (COW) folios in a file VMA.
  yield* cpuFill(self.mm, buffer.ptr, size, I);
  expect(yield* hmmMigrateSysToDev(self.fd, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  mirrorCheck(buffer, npages, I);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'migrate_fault', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  yield* cpuFill(self.mm, buffer.ptr, size, I);
  expect(yield* hmmMigrateSysToDev(self.fd, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  mirrorCheck(buffer, npages, I);
  // Fault half the pages back to system memory and check them.
  yield* cpuCheck(self.mm, buffer.ptr, size / 2, I);
  // Migrate the mix of system and device memory to the device again.
  expect(yield* hmmMigrateSysToDev(self.fd, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  mirrorCheck(buffer, npages, I);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'migrate_release', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  yield* cpuFill(self.mm, buffer.ptr, size, I);
  expect(yield* hmmMigrateSysToDev(self.fd, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  mirrorCheck(buffer, npages, I);
  // Release device memory.
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_RELEASE, buffer, npages)).toBe(0);
  // Fault pages back to system memory and check them.
  yield* cpuCheck(self.mm, buffer.ptr, size / 2, I);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'migrate_shared', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
  expect(yield* hmmMigrateSysToDev(self.fd, buffer, npages)).toBe(-ENOENT);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm2', 'migrate_mixed', function* (self) {
  const npages = 6;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  const P = self.page_size;
  // Reserve a range of addresses.
  buffer.ptr = yield* mmapOk(self.mm, size, 0, MAP_PRIVATE | MAP_ANONYMOUS);
  const p = buffer.ptr;
  // Migrating a protected area is an error.
  expect(yield* hmmMigrateSysToDev(self.fd1, buffer, npages)).toBe(-EINVAL);
  // Punch a hole after the first page.
  expect(yield* munmap(self.mm, buffer.ptr + P, P)).toBe(0);
  // An error if the VMA does not cover the range.
  expect(yield* hmmMigrateSysToDev(self.fd1, buffer, 3)).toBe(-EINVAL);
  // Page 2: a read-only zero page.
  expect(yield* mprotect(self.mm, p + 2 * P, P, PROT_READ)).toBe(0);
  const r = yield* cpuRead(self.mm, p + 2 * P);
  expect(r).toEqual({ ok: true, value: 0 });
  const val = 0 + 3;
  // Page 3: read-only with data.
  expect(yield* mprotect(self.mm, p + 3 * P, P, PROT_READ | PROT_WRITE)).toBe(0);
  expect((yield* cpuWrite(self.mm, p + 3 * P, val)).ok).toBe(true);
  expect(yield* mprotect(self.mm, p + 3 * P, P, PROT_READ)).toBe(0);
  // Pages 4-5: read-write.
  expect(yield* mprotect(self.mm, p + 4 * P, 2 * P, PROT_READ | PROT_WRITE)).toBe(0);
  expect((yield* cpuWrite(self.mm, p + 4 * P, val)).ok).toBe(true);
  expect((yield* cpuWrite(self.mm, p + 5 * P, val)).ok).toBe(true);
  // Migrate pages 2-5 to device 1.
  buffer.ptr = p + 2 * P;
  expect(yield* hmmMigrateSysToDev(self.fd1, buffer, 4)).toBe(0);
  expect(buffer.cpages).toBe(4);
  // Page 5 is not migrated to device 0: it lives on device 1.
  buffer.ptr = p + 5 * P;
  expect(yield* hmmMigrateSysToDev(self.fd0, buffer, 1)).toBe(-ENOENT);
  buffer.ptr = p;
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'migrate_multiple', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  for (let c = 0; c < NTIMES; c++) {
    const buffer = hmmBuffer(size);
    buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    yield* cpuFill(self.mm, buffer.ptr, size, I);
    expect(yield* hmmMigrateSysToDev(self.fd, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    mirrorCheck(buffer, npages, I);
    // Coherent memory is CPU-accessible (no fault brings it back): migrate it back explicitly.
    if (hmmIsCoherentType(self.variant.device_number)) {
      expect(yield* hmmMigrateDevToSys(self.fd, buffer, npages)).toBe(0);
      expect(buffer.cpages).toBe(npages);
    }
    yield* cpuCheck(self.mm, buffer.ptr, size, I);
    yield* hmmBufferFree(self.mm, buffer);
  }
});
