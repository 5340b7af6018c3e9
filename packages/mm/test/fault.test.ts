import { describe, expect, it } from 'vitest';
import {
  cpuRead,
  cpuWrite,
  fork,
  MAP_PRIVATE,
  MAP_SHARED,
  mmput,
  mprotect,
  munmap,
  PAGE_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  peekPte,
  remapIoPages,
  ZERO_PFN,
} from '../src/index.js';
import { runThread } from './helpers.js';

const RW = PROT_READ | PROT_WRITE;

describe('anonymous faults (do_anonymous_page)', () => {
  it('a read fault maps the shared zero page and reads 0', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        const r = yield* cpuRead(mm, a);
        const info = peekPte(mm, a);
        yield* mmput(mm);
        return { r, info };
      };
    });
    expect(result.r).toEqual({ ok: true, value: 0 });
    expect(result.info.entry).toMatchObject({ kind: 'present', pfn: ZERO_PFN, write: false, zero: true });
  });

  it('a write fault allocates an exclusive writable page; the value reads back', () => {
    const { result, sys } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        const w = yield* cpuWrite(mm, a, 'hello');
        const r = yield* cpuRead(mm, a);
        const info = peekPte(mm, a);
        return { w, r, info, rss: { ...mm.rss } };
      };
    });
    expect(result.w.ok).toBe(true);
    expect(result.r).toEqual({ ok: true, value: 'hello' });
    expect(result.info.entry).toMatchObject({ kind: 'present', write: true, dirty: true });
    expect(result.info.folio?.refcount).toBe(1);
    expect(result.info.folio?.mapcount[0]).toBe(1);
    expect(result.info.folio?.anonExclusive[0]).toBe(true);
    expect(result.rss.anon).toBe(1);
    expect(sys.mem.stats().liveFolios).toBe(1);
  });

  it('a write after a read fault COWs away from the zero page', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuRead(mm, a);
        yield* cpuWrite(mm, a, 5);
        return { r: yield* cpuRead(mm, a), info: peekPte(mm, a) };
      };
    });
    expect(result.r).toEqual({ ok: true, value: 5 });
    expect(result.info.entry).toMatchObject({ kind: 'present', write: true });
    expect((result.info.entry as { pfn: number }).pfn).not.toBe(ZERO_PFN);
  });

  it('access outside any VMA is SIGSEGV', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      return function* () {
        return [yield* cpuRead(mm, 0x500000), yield* cpuWrite(mm, 0x500000, 1)];
      };
    });
    expect(result.map((r) => (r.ok ? 'ok' : r.signal))).toEqual(['SIGSEGV', 'SIGSEGV']);
  });
});

describe('copy-on-write after fork', () => {
  it('a write in the child does not change the parent, and the reverse', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 'p0');
        yield* cpuWrite(mm, a + PAGE_SIZE, 'p1');
        const child = yield* fork(mm);
        if (typeof child === 'number') throw new Error(`fork: ${child}`);
        const shared = peekPte(mm, a);
        const sharedRefs = shared.folio!.refcount;
        yield* cpuWrite(child, a, 'c0');
        yield* cpuWrite(mm, a + PAGE_SIZE, 'P1');
        const out = {
          sharedRefs,
          sharedWrite: (shared.entry as { write: boolean }).write,
          parent: [yield* cpuRead(mm, a), yield* cpuRead(mm, a + PAGE_SIZE)],
          child: [yield* cpuRead(child, a), yield* cpuRead(child, a + PAGE_SIZE)],
        };
        yield* mmput(child);
        yield* mmput(mm);
        return out;
      };
    });
    expect(result.sharedRefs).toBe(2);
    expect(result.sharedWrite).toBe(false);
    expect(result.parent.map((r) => r.ok && r.value)).toEqual(['p0', 'P1']);
    expect(result.child.map((r) => r.ok && r.value)).toEqual(['c0', 'p1']);
  });

  it('once the child is gone, the parent reuses its page (write-protect fault, no copy)', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 1);
        const before = peekPte(mm, a).folio!.pfn;
        const child = (yield* fork(mm)) as import('../src/index.js').Mm;
        yield* mmput(child);
        const allocs = sys.mem.stats().allocations;
        yield* cpuWrite(mm, a, 2);
        return { before, after: peekPte(mm, a).folio!.pfn, newAllocs: sys.mem.stats().allocations - allocs };
      };
    });
    expect(result.after).toBe(result.before);
    expect(result.newAllocs).toBe(0);
  });

  it('a page another holder references is still reused when it is anon-exclusive (no COW after GUP)', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 1);
        const f = peekPte(mm, a).folio!;
        yield* f.get('device pin');
        yield* mprotect(mm, a, PAGE_SIZE, PROT_READ);
        yield* mprotect(mm, a, PAGE_SIZE, RW);
        yield* cpuWrite(mm, a, 2);
        const same = peekPte(mm, a).folio === f;
        yield* f.putTestZero('unpin');
        return { same, value: f.data[0] };
      };
    }, {});
    expect(result).toEqual({ same: true, value: 2 });
  });
});

describe('file mappings', () => {
  it('private: reads see the file, writes are private copies', () => {
    const { result } = runThread(({ sys }) => {
      const file = sys.createFile('data', ['f0', 'f1']);
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: RW, flags: MAP_PRIVATE, file });
      return function* () {
        const r0 = yield* cpuRead(mm, a);
        yield* cpuWrite(mm, a, 'mine');
        const r1 = yield* cpuRead(mm, a);
        yield* mmput(mm);
        return { r0, r1, store: [...file.store] };
      };
    });
    expect(result.r0).toEqual({ ok: true, value: 'f0' });
    expect(result.r1).toEqual({ ok: true, value: 'mine' });
    expect(result.store).toEqual(['f0', 'f1']);
  });

  it('shared: two mms see each other’s writes through the page cache', () => {
    const { result } = runThread(({ sys }) => {
      const file = sys.createFile('data', ['x']);
      const m1 = sys.createMm();
      const m2 = sys.createMm();
      const a1 = sys.mmapSetup(m1, { len: PAGE_SIZE, prot: RW, flags: MAP_SHARED, file });
      const a2 = sys.mmapSetup(m2, { len: PAGE_SIZE, prot: RW, flags: MAP_SHARED, file });
      return function* () {
        yield* cpuWrite(m1, a1, 'y');
        const r = yield* cpuRead(m2, a2);
        yield* mmput(m1);
        yield* mmput(m2);
        return r;
      };
    });
    expect(result).toEqual({ ok: true, value: 'y' });
  });

  it('access beyond the end of the file is SIGBUS', () => {
    const { result } = runThread(({ sys }) => {
      const file = sys.createFile('short', ['a']);
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: PROT_READ, flags: MAP_PRIVATE, file });
      return function* () {
        return yield* cpuRead(mm, a + PAGE_SIZE);
      };
    });
    expect(result).toMatchObject({ ok: false, signal: 'SIGBUS' });
  });

  it('MAP_SHARED|MAP_ANONYMOUS memory is shared with the child after fork', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW, flags: MAP_SHARED | 0x20 });
      return function* () {
        yield* cpuWrite(mm, a, 1);
        const child = (yield* fork(mm)) as import('../src/index.js').Mm;
        yield* cpuWrite(child, a, 2);
        const r = yield* cpuRead(mm, a);
        yield* mmput(child);
        yield* mmput(mm);
        return r;
      };
    });
    expect(result).toEqual({ ok: true, value: 2 });
  });
});

describe('protection', () => {
  it('mprotect read-only, then a write is SIGSEGV; read-write again, the write succeeds', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 1);
        const p1 = yield* mprotect(mm, a, PAGE_SIZE, PROT_READ);
        const w1 = yield* cpuWrite(mm, a, 2);
        const r1 = yield* cpuRead(mm, a);
        const p2 = yield* mprotect(mm, a, PAGE_SIZE, RW);
        const w2 = yield* cpuWrite(mm, a, 3);
        return { p1, w1, r1, p2, w2, r2: yield* cpuRead(mm, a) };
      };
    });
    expect(result.p1).toBe(0);
    expect(result.w1).toMatchObject({ ok: false, signal: 'SIGSEGV' });
    expect(result.r1).toEqual({ ok: true, value: 1 });
    expect(result.p2).toBe(0);
    expect(result.w2.ok).toBe(true);
    expect(result.r2).toEqual({ ok: true, value: 3 });
  });

  it('PROT_NONE makes the PTE protnone and any access SIGSEGV', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 1);
        yield* mprotect(mm, a, PAGE_SIZE, PROT_NONE);
        return { info: peekPte(mm, a), r: yield* cpuRead(mm, a) };
      };
    });
    expect(result.info.entry).toMatchObject({ kind: 'present', protnone: true, write: false });
    expect(result.r).toMatchObject({ ok: false, signal: 'SIGSEGV' });
  });

  it('VM_IO/VM_PFNMAP memory is accessed through special PTEs; unpopulated parts are SIGBUS', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = remapIoPages(mm, ['reg0', 'reg1'], RW);
      return function* () {
        const r = yield* cpuRead(mm, a + PAGE_SIZE);
        yield* cpuWrite(mm, a, 'cmd');
        const r0 = yield* cpuRead(mm, a);
        yield* munmap(mm, a, PAGE_SIZE);
        return { r, r0, info: peekPte(mm, a + PAGE_SIZE) };
      };
    });
    expect(result.r).toEqual({ ok: true, value: 'reg1' });
    expect(result.r0).toEqual({ ok: true, value: 'cmd' });
    expect(result.info.entry).toMatchObject({ kind: 'present', special: true });
  });
});
