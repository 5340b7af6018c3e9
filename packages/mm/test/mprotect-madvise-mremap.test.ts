import { EAGAIN, EFAULT, EINVAL, ENOMEM } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  cpuRead,
  cpuWrite,
  EACCES,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  madvise,
  mprotect,
  mremap,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  peekPte,
  swapOutPage,
  VM_HUGEPAGE,
  VM_NOHUGEPAGE,
  VM_WRITE,
} from '../src/index.js';
import { runThread } from './helpers.js';

const RW = PROT_READ | PROT_WRITE;

describe('mprotect', () => {
  it('errno for bad arguments', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: RW });
      const ro = sys.createFile('ro', [1], { writable: false });
      const b = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: PROT_READ, flags: MAP_SHARED, file: ro });
      return function* () {
        return [
          yield* mprotect(mm, a + 1, PAGE_SIZE, PROT_READ),
          yield* mprotect(mm, a, PAGE_SIZE, 0x100),
          yield* mprotect(mm, 0x7000_0000, PAGE_SIZE, PROT_READ),
          yield* mprotect(mm, b, PAGE_SIZE, RW),
          yield* mprotect(mm, a, 0, PROT_READ),
        ];
      };
    });
    expect(result).toEqual([-EINVAL, -EINVAL, -ENOMEM, -EACCES, 0]);
  });

  it('splits the VMA and write-protects only the range; a hole after it gives -ENOMEM after applying', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 3 * PAGE_SIZE, prot: RW });
      return function* () {
        for (let i = 0; i < 3; i++) yield* cpuWrite(mm, a + i * PAGE_SIZE, i);
        const r = yield* mprotect(mm, a + PAGE_SIZE, 5 * PAGE_SIZE, PROT_READ);
        return {
          r,
          vmas: mm.vmas.map((v) => [v.start - a, v.end - a, (v.flags & VM_WRITE) !== 0]),
          ptes: [0, 1, 2].map((i) => (peekPte(mm, a + i * PAGE_SIZE).entry as { write: boolean }).write),
        };
      };
    });
    expect(result.r).toBe(-ENOMEM);
    expect(result.vmas).toEqual([
      [0, PAGE_SIZE, true],
      [PAGE_SIZE, 3 * PAGE_SIZE, false],
    ]);
    expect(result.ptes).toEqual([true, false, false]);
  });
});

describe('madvise', () => {
  it('MADV_DONTNEED on anonymous memory: the next read gives zero and the page is freed', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 99);
        const r = yield* madvise(mm, a, PAGE_SIZE, MADV_DONTNEED);
        const live = sys.mem.stats().liveFolios;
        return { r, live, read: yield* cpuRead(mm, a) };
      };
    });
    expect(result).toEqual({ r: 0, live: 0, read: { ok: true, value: 0 } });
  });

  it('MADV_DONTNEED on a private file mapping drops the COW copy: the file content is back', () => {
    const { result } = runThread(({ sys }) => {
      const file = sys.createFile('f', ['disk']);
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW, flags: MAP_PRIVATE, file });
      return function* () {
        yield* cpuWrite(mm, a, 'private');
        yield* madvise(mm, a, PAGE_SIZE, MADV_DONTNEED);
        return yield* cpuRead(mm, a);
      };
    });
    expect(result).toEqual({ ok: true, value: 'disk' });
  });

  it('MADV_FREE: reclaim discards the clean page (reads zero); a write in between keeps it', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 'gone');
        yield* cpuWrite(mm, a + PAGE_SIZE, 'kept');
        const r = yield* madvise(mm, a, 2 * PAGE_SIZE, MADV_FREE);
        yield* cpuWrite(mm, a + PAGE_SIZE, 'kept2');
        const s0 = yield* swapOutPage(mm, a);
        // Written again: the first reclaim attempt makes it swap-backed, the second swaps it out.
        const s1 = yield* swapOutPage(mm, a + PAGE_SIZE);
        const s2 = yield* swapOutPage(mm, a + PAGE_SIZE);
        return {
          r,
          s0,
          s1,
          s2,
          slots: sys.swap.usedSlots(),
          v: [yield* cpuRead(mm, a), yield* cpuRead(mm, a + PAGE_SIZE)],
        };
      };
    });
    expect(result.r).toBe(0);
    expect(result.s0).toBe(0);
    expect(result.s1).toBe(-EAGAIN);
    expect(result.s2).toBe(0);
    expect(result.slots).toBe(1);
    expect(result.v).toEqual([
      { ok: true, value: 0 },
      { ok: true, value: 'kept2' },
    ]);
  });

  it('errno: unaligned, unknown advice, MADV_FREE on a file mapping, unmapped range', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      const file = sys.createFile('f', [1]);
      const b = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW, flags: MAP_PRIVATE, file });
      return function* () {
        return [
          yield* madvise(mm, a + 1, PAGE_SIZE, MADV_DONTNEED),
          yield* madvise(mm, a, PAGE_SIZE, 12345),
          yield* madvise(mm, b, PAGE_SIZE, MADV_FREE),
          yield* madvise(mm, 0x7000_0000, PAGE_SIZE, MADV_DONTNEED),
          yield* madvise(mm, a, 0, MADV_DONTNEED),
        ];
      };
    });
    expect(result).toEqual([-EINVAL, -EINVAL, -EINVAL, -ENOMEM, 0]);
  });

  it('MADV_HUGEPAGE / MADV_NOHUGEPAGE set the VMA flags on the range only', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 4 * PAGE_SIZE, prot: RW });
      return function* () {
        yield* madvise(mm, a, 2 * PAGE_SIZE, MADV_HUGEPAGE);
        yield* madvise(mm, a + PAGE_SIZE, PAGE_SIZE, MADV_NOHUGEPAGE);
        return mm.vmas.map((v) => [
          (v.start - a) / PAGE_SIZE,
          !!(v.flags & VM_HUGEPAGE),
          !!(v.flags & VM_NOHUGEPAGE),
        ]);
      };
    });
    expect(result).toEqual([
      [0, true, false],
      [1, false, true],
      [2, false, false],
    ]);
  });
});

describe('mremap', () => {
  it('moves pages (present and swapped) to the new address; the old range is gone', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: RW });
      const target = 0x4000_0000;
      return function* () {
        yield* cpuWrite(mm, a, 'A');
        yield* cpuWrite(mm, a + PAGE_SIZE, 'B');
        yield* swapOutPage(mm, a + PAGE_SIZE);
        const n = yield* mremap(mm, a, 2 * PAGE_SIZE, 3 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, target);
        return {
          n: n - target,
          v: [
            yield* cpuRead(mm, target),
            yield* cpuRead(mm, target + PAGE_SIZE),
            yield* cpuRead(mm, target + 2 * PAGE_SIZE),
          ],
          old: yield* cpuRead(mm, a),
        };
      };
    });
    expect(result.n).toBe(0);
    expect(result.v.map((r) => r.ok && r.value)).toEqual(['A', 'B', 0]);
    expect(result.old).toMatchObject({ ok: false, signal: 'SIGSEGV' });
  });

  it('shrinks in place, grows in place when free, fails without MAYMOVE', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: RW });
      sys.mmapSetup(mm, {
        addr: a + 3 * PAGE_SIZE,
        len: PAGE_SIZE,
        prot: RW,
        flags: MAP_PRIVATE | 0x20 | 0x10,
      });
      return function* () {
        yield* cpuWrite(mm, a, 1);
        return [
          (yield* mremap(mm, a, 2 * PAGE_SIZE, PAGE_SIZE, 0)) - a,
          (yield* mremap(mm, a, PAGE_SIZE, 3 * PAGE_SIZE, 0)) - a,
          yield* mremap(mm, a, 3 * PAGE_SIZE, 4 * PAGE_SIZE, 0),
          yield* cpuRead(mm, a),
        ];
      };
    });
    expect(result.slice(0, 3)).toEqual([0, 0, -ENOMEM]);
    expect(result[3]).toEqual({ ok: true, value: 1 });
  });

  it('errno for bad arguments', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: RW });
      return function* () {
        return [
          yield* mremap(mm, a, PAGE_SIZE, PAGE_SIZE, 0x80),
          yield* mremap(mm, a, PAGE_SIZE, PAGE_SIZE, MREMAP_FIXED, 0x4000_0000),
          yield* mremap(mm, a + 1, PAGE_SIZE, PAGE_SIZE, 0),
          yield* mremap(mm, a, PAGE_SIZE, 0, 0),
          yield* mremap(mm, a, 4 * PAGE_SIZE, 5 * PAGE_SIZE, MREMAP_MAYMOVE),
          yield* mremap(mm, a, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, a),
        ];
      };
    });
    expect(result).toEqual([-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EFAULT, -EINVAL]);
  });
});
