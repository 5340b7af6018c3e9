import { EEXIST, EINVAL, ENOMEM, KernelError, Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  checkNoLeaks,
  cpuRead,
  cpuWrite,
  EACCES,
  EBADF,
  fork,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MAP_SHARED,
  mmap,
  mmput,
  munmap,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  System,
  swapOutPage,
  TASK_SIZE,
} from '../src/index.js';
import { runThread } from './helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe('mmap', () => {
  it('returns the kernel errno for bad arguments and changes nothing', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const ro = sys.createFile('ro', [1], { writable: false });
      return function* () {
        const out = [
          yield* mmap(mm, 0, 0, RW, ANON),
          yield* mmap(mm, 0, PAGE_SIZE, RW, MAP_ANONYMOUS),
          yield* mmap(mm, 0, PAGE_SIZE, RW, MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS),
          yield* mmap(mm, 0x10001, PAGE_SIZE, RW, ANON | MAP_FIXED),
          yield* mmap(mm, 0, PAGE_SIZE, RW, MAP_PRIVATE),
          yield* mmap(mm, 0, PAGE_SIZE, RW, MAP_SHARED, ro),
          yield* mmap(mm, 0, PAGE_SIZE, RW, MAP_PRIVATE, ro, 123),
          yield* mmap(mm, TASK_SIZE, PAGE_SIZE, RW, ANON | MAP_FIXED),
        ];
        return { out, vmas: mm.vmas.length };
      };
    });
    expect(result.out).toEqual([-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EBADF, -EACCES, -EINVAL, -ENOMEM]);
    expect(result.vmas).toBe(0);
  });

  it('MAP_FIXED replaces an existing mapping (unmapping it first); MAP_FIXED_NOREPLACE refuses', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      return function* () {
        const a = yield* mmap(mm, 0, 2 * PAGE_SIZE, RW, ANON);
        yield* cpuWrite(mm, a, 'old');
        const b = yield* mmap(mm, a, PAGE_SIZE, RW, ANON | MAP_FIXED);
        const c = yield* mmap(mm, a, PAGE_SIZE, RW, ANON | MAP_FIXED_NOREPLACE);
        return { a, b, c, r: yield* cpuRead(mm, a), vmas: mm.vmas.length, live: sys.mem.stats().liveFolios };
      };
    });
    expect(result.b).toBe(result.a);
    expect(result.c).toBe(-EEXIST);
    expect(result.r).toEqual({ ok: true, value: 0 });
    expect(result.vmas).toBe(2);
    expect(result.live).toBe(0);
  });

  it('setup-time mmap throws KernelError with the errno', () => {
    const sys = new System(new Sim());
    const mm = sys.createMm();
    expect(() => sys.mmapSetup(mm, { len: 0, prot: RW })).toThrow(KernelError);
    const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
    try {
      sys.mmapSetup(mm, { addr: a, len: PAGE_SIZE, prot: RW, flags: ANON | MAP_FIXED });
      expect.unreachable();
    } catch (e) {
      expect((e as KernelError).errno).toBe(-EEXIST);
    }
  });
});

describe('munmap', () => {
  it('errno for bad arguments; unmapping nothing is fine', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        return {
          out: [
            yield* munmap(mm, a + 1, PAGE_SIZE),
            yield* munmap(mm, a, 0),
            yield* munmap(mm, TASK_SIZE - PAGE_SIZE, 4 * PAGE_SIZE),
            yield* munmap(mm, 0x7000_0000, PAGE_SIZE),
          ],
          vmas: mm.vmas.length,
        };
      };
    });
    expect(result.out).toEqual([-EINVAL, -EINVAL, -EINVAL, 0]);
    expect(result.vmas).toBe(1);
  });

  it('frees the frames, splits the VMA, and later access is SIGSEGV', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 3 * PAGE_SIZE, prot: RW });
      return function* () {
        for (let i = 0; i < 3; i++) yield* cpuWrite(mm, a + i * PAGE_SIZE, i);
        const before = sys.mem.stats();
        const r = yield* munmap(mm, a + PAGE_SIZE, PAGE_SIZE);
        const after = sys.mem.stats();
        return {
          r,
          freed: before.liveFolios - after.liveFolios,
          free: after.free - before.free,
          vmas: mm.vmas.map((v) => [v.start - a, v.end - a]),
          mid: yield* cpuRead(mm, a + PAGE_SIZE),
          ends: [yield* cpuRead(mm, a), yield* cpuRead(mm, a + 2 * PAGE_SIZE)],
          rss: mm.rss.anon,
        };
      };
    });
    expect(result.r).toBe(0);
    expect(result.freed).toBe(1);
    expect(result.free).toBe(1);
    expect(result.vmas).toEqual([
      [0, PAGE_SIZE],
      [2 * PAGE_SIZE, 3 * PAGE_SIZE],
    ]);
    expect(result.mid).toMatchObject({ ok: false, signal: 'SIGSEGV' });
    expect(result.ends.map((x) => x.ok && x.value)).toEqual([0, 2]);
    expect(result.rss).toBe(2);
  });
});

describe('exit (mmput → exit_mmap)', () => {
  it('frees everything: anon pages, swap slots, COW-shared pages of exited children', () => {
    const { result, sys } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const file = sys.createFile('f', [1, 2]);
      const a = sys.mmapSetup(mm, { len: 4 * PAGE_SIZE, prot: RW });
      const b = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: RW, flags: MAP_PRIVATE, file });
      return function* () {
        for (let i = 0; i < 4; i++) yield* cpuWrite(mm, a + i * PAGE_SIZE, i);
        yield* cpuRead(mm, b);
        yield* cpuWrite(mm, b + PAGE_SIZE, 'cow');
        yield* swapOutPage(mm, a);
        const child = (yield* fork(mm)) as import('../src/index.js').Mm;
        yield* cpuWrite(child, a + PAGE_SIZE, 'c');
        yield* mmput(mm);
        const mid = sys.mem.stats().liveFolios;
        yield* mmput(child);
        return { mid, users: mm.mmUsers, count: mm.mmCount, destroyed: mm.destroyed };
      };
    });
    expect(result.mid).toBeGreaterThan(0);
    expect(result).toMatchObject({ users: 0, count: 0, destroyed: true });
    expect(checkNoLeaks(sys)).toBeUndefined();
    expect(sys.swap.usedSlots()).toBe(0);
    // Only the page-cache folios of the file (read, and the source of the COW copy) remain.
    expect(sys.mem.liveFolios().map((f) => f.mapping?.name)).toEqual(['file:f', 'file:f']);
  });
});
