/**
 * hmm-tests.c, device reads and writes of anonymous, shared and file memory:
 * open_close, anon_read, anon_read_prot, anon_write, anon_write_prot, anon_write_child,
 * anon_write_child_shared, anon_write_huge, anon_write_hugetlbfs, file_read, file_write.
 */
import {
  cpuRead,
  type File,
  fork,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  type Mm,
  type PageValue,
  PROT_READ,
  PROT_WRITE,
  type System,
} from '@hmmkit/mm';
import { EFAULT, EPERM } from '@hmmkit/sim';
import { expect } from 'vitest';
import { HMM_DMIRROR_READ, HMM_DMIRROR_WRITE } from '../../src/index.js';
import {
  ALIGN,
  cpuCheck,
  cpuFill,
  HMM_BUFFER_SIZE,
  hmmBuffer,
  hmmBufferFree,
  hmmClose,
  hmmDmirrorCmd,
  hmmMigrateSysToDev,
  hmmOpen,
  I,
  madvise,
  mirrorCheck,
  mirrorFill,
  mmapOk,
  mmput,
  mprotect,
  NEG,
  readPmdPagesize,
  TEST_F,
  TEST_F_SKIP,
} from './harness.js';

TEST_F('hmm', 'open_close', function* () {});

TEST_F('hmm', 'anon_read', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  expect(npages).not.toBe(0);
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  // Initialise the buffer but leave the first two pages zero (pte_none and the zero page).
  yield* cpuFill(self.mm, buffer.ptr + 2 * self.page_size, size - 2 * self.page_size, (p) => p + 2);
  expect(yield* mprotect(self.mm, buffer.ptr, size, PROT_READ)).toBe(0);
  // Populate the CPU page table with the zero page.
  const val = yield* cpuRead(self.mm, buffer.ptr + self.page_size);
  expect(val).toEqual({ ok: true, value: 0 });
  const ret = yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_READ, buffer, npages);
  expect(ret).toBe(0);
  expect(buffer.cpages).toBe(npages);
  expect(buffer.faults).toBe(1);
  mirrorCheck(buffer, npages, (p) => (p < 2 ? 0 : p));
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'anon_read_prot', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  yield* cpuFill(self.mm, buffer.ptr, size, I);
  mirrorFill(buffer, npages, NEG);
  expect(yield* mprotect(self.mm, buffer.ptr, size, 0)).toBe(0);
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_READ, buffer, npages)).toBe(-EFAULT);
  expect(yield* mprotect(self.mm, buffer.ptr, size, PROT_READ)).toBe(0);
  yield* cpuCheck(self.mm, buffer.ptr, size, I);
  mirrorCheck(buffer, npages, NEG);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'anon_write', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  mirrorFill(buffer, npages, I);
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  expect(buffer.faults).toBe(1);
  yield* cpuCheck(self.mm, buffer.ptr, size, I);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'anon_write_prot', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
  // A device read of a zero page.
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_READ, buffer, 1)).toBe(0);
  expect(buffer.cpages).toBe(1);
  expect(buffer.faults).toBe(1);
  mirrorFill(buffer, npages, I);
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(-EPERM);
  yield* cpuCheck(self.mm, buffer.ptr, size, () => 0);
  // Now allow writing and see that the zero page is replaced.
  expect(yield* mprotect(self.mm, buffer.ptr, size, PROT_WRITE | PROT_READ)).toBe(0);
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  expect(buffer.faults).toBe(1);
  yield* cpuCheck(self.mm, buffer.ptr, size, I);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'anon_write_child', function* (self) {
  for (let migrate = 0; migrate < 2; ++migrate) {
    for (let useThp = 0; useThp < 2; ++useThp) {
      const npages = ALIGN(useThp ? readPmdPagesize() : HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
      const size = npages << self.page_shift;
      const buffer = hmmBuffer(size * 2);
      buffer.ptr = yield* mmapOk(self.mm, size * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      const oldPtr = buffer.ptr;
      if (useThp) {
        const map = ALIGN(buffer.ptr, size);
        expect(yield* madvise(self.mm, map, size, MADV_HUGEPAGE)).toBe(0);
        buffer.ptr = map;
      }
      yield* cpuFill(self.mm, buffer.ptr, size, I);
      mirrorFill(buffer, npages, NEG);
      if (migrate) {
        expect(yield* hmmMigrateSysToDev(self.fd, buffer, npages)).toBe(0);
        expect(buffer.cpages).toBe(npages);
      }
      const child = yield* fork(self.mm);
      expect(typeof child).not.toBe('number');
      const childMm = child as Mm;
      const childBuffer = { ...buffer, mirror: [...(buffer.mirror as PageValue[])] };
      const t = self.sim.spawn('child', function* () {
        // Check that we see the parent's values.
        yield* cpuCheck(childMm, childBuffer.ptr, size, I);
        if (!migrate) mirrorCheck(childBuffer, npages, NEG);
        // The child needs its own mirror of its own mm.
        const childFd = yield* hmmOpen(self, 0, childMm);
        expect(yield* hmmDmirrorCmd(childFd, HMM_DMIRROR_WRITE, childBuffer, npages)).toBe(0);
        expect(childBuffer.cpages).toBe(npages);
        expect(childBuffer.faults).toBe(1);
        if (!migrate) yield* cpuCheck(childMm, childBuffer.ptr, size, NEG);
        yield* hmmClose(childFd);
        // _exit(0)
        yield* mmput(childMm);
      });
      // waitpid(): the child exited normally.
      yield* self.sim.join(t);
      // The parent's buffer did not change.
      yield* cpuCheck(self.mm, buffer.ptr, size, I);
      buffer.ptr = oldPtr;
      yield* hmmBufferFree(self.mm, buffer);
    }
  }
});

TEST_F('hmm', 'anon_write_child_shared', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
  yield* cpuFill(self.mm, buffer.ptr, size, I);
  mirrorFill(buffer, npages, NEG);
  const childMm = (yield* fork(self.mm)) as Mm;
  expect(typeof childMm).not.toBe('number');
  const t = self.sim.spawn('child', function* () {
    yield* cpuCheck(childMm, buffer.ptr, size, I);
    mirrorCheck(buffer, npages, NEG);
    const childFd = yield* hmmOpen(self, 0, childMm);
    const b = { ...buffer };
    expect(yield* hmmDmirrorCmd(childFd, HMM_DMIRROR_WRITE, b, npages)).toBe(0);
    expect(b.cpages).toBe(npages);
    expect(b.faults).toBe(1);
    yield* cpuCheck(childMm, buffer.ptr, size, NEG);
    yield* hmmClose(childFd);
    yield* mmput(childMm);
  });
  yield* self.sim.join(t);
  // Shared memory: the parent sees what the child's device wrote.
  yield* cpuCheck(self.mm, buffer.ptr, size, NEG);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'anon_write_huge', function* (self) {
  let size = 2 * readPmdPagesize();
  const buffer = hmmBuffer(size);
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  size /= 2;
  const npages = size >> self.page_shift;
  const map = ALIGN(buffer.ptr, size);
  expect(yield* madvise(self.mm, map, size, MADV_HUGEPAGE)).toBe(0);
  const oldPtr = buffer.ptr;
  buffer.ptr = map;
  mirrorFill(buffer, npages, I);
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  expect(buffer.faults).toBe(1);
  yield* cpuCheck(self.mm, buffer.ptr, size, I);
  buffer.ptr = oldPtr;
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F_SKIP(
  'hmm',
  'anon_write_hugetlbfs',
  'hugetlbfs (MAP_HUGETLB) is not modelled by @hmmkit/mm; the kernel test SKIPs too without free huge pages',
);

/** `hmm_create_file()` + `pwrite()` of `pages` values: an O_TMPFILE of that content. */
function tmpFile(self: { sys: System }, npages: number, value: (p: number) => PageValue) {
  return self.sys.createFile(
    `tmpfile${npages}`,
    Array.from({ length: npages }, (_, p) => value(p)),
  );
}

/** `pread()` of page `p`: the page cache if the page is cached, else the file. */
function pread(file: File, p: number): PageValue {
  return file.pageCache.get(p)?.data[0] ?? file.store[p]!;
}

TEST_F('hmm', 'file_read', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const fd = tmpFile(self, npages, I);
  const buffer = hmmBuffer(size);
  buffer.fd = fd;
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ, MAP_SHARED, fd);
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  expect(buffer.faults).toBe(1);
  mirrorCheck(buffer, npages, I);
  yield* hmmBufferFree(self.mm, buffer);
});

TEST_F('hmm', 'file_write', function* (self) {
  const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
  const size = npages << self.page_shift;
  const fd = tmpFile(self, npages, () => 0);
  const buffer = hmmBuffer(size);
  buffer.fd = fd;
  buffer.ptr = yield* mmapOk(self.mm, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
  mirrorFill(buffer, npages, I);
  expect(yield* hmmDmirrorCmd(self.fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(0);
  expect(buffer.cpages).toBe(npages);
  expect(buffer.faults).toBe(1);
  yield* cpuCheck(self.mm, buffer.ptr, size, I);
  // The device also wrote the file.
  for (let p = 0; p < npages; p++) expect(pread(fd, p), `file page ${p}`).toBe(p);
  yield* hmmBufferFree(self.mm, buffer);
});
