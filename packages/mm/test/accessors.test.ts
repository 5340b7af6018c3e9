import { Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  cpuWrite,
  folioGetAt,
  folioPut,
  followPte,
  Mm,
  mmdrop,
  mmget,
  mmgetNotZero,
  mmgrab,
  mmput,
  munmap,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  System,
} from '../src/index.js';
import { runThread } from './helpers.js';

const RW = PROT_READ | PROT_WRITE;

describe('what a device model reads of the CPU side', () => {
  it('followPte gives the entry and frame; a FrameRef stops resolving once the frame is freed and reused', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 'dev');
        const info = yield* followPte(mm, a);
        const ref = sys.mem.frameRef(info.folio!, info.index);
        const live = sys.mem.resolve(ref)?.folio.data[0];
        yield* munmap(mm, a, PAGE_SIZE);
        const afterFree = sys.mem.resolve(ref);
        return {
          entry: info.entry.kind,
          level: info.level,
          live,
          afterFree,
          gen: ref.gen,
          genNow: sys.mem.genOf(ref.pfn),
        };
      };
    });
    expect(result.entry).toBe('present');
    expect(result.level).toBe('pte');
    expect(result.live).toBe('dev');
    expect(result.afterFree).toBeNull();
    expect(result.genNow).toBe(result.gen + 1);
  });

  it('folioGetAt takes a reference under the page-table lock', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: RW });
      return function* () {
        yield* cpuWrite(mm, a, 1);
        const got = yield* folioGetAt(mm, a);
        const none = yield* folioGetAt(mm, a + PAGE_SIZE);
        const refs = got!.folio.refcount;
        yield* folioPut(sys.mem, got!.folio);
        return { refs, none, after: got!.folio.refcount };
      };
    });
    expect(result).toEqual({ refs: 2, none: null, after: 1 });
  });
});

describe('mm lifetime (mmget/mmput, mmgrab/mmdrop)', () => {
  it('mm_users keeps the address space, mm_count the struct; exit happens at the last mmput', () => {
    const { result } = runThread(({ sys }) => {
      const mm = sys.createMm();
      sys.mmapSetup(mm, { len: PAGE_SIZE, prot: RW });
      return function* () {
        yield* mmget(mm);
        yield* mmgrab(mm);
        yield* mmput(mm);
        const afterFirst = { users: mm.mmUsers, exited: mm.exited };
        yield* mmput(mm);
        const afterLast = {
          users: mm.mmUsers,
          count: mm.mmCount,
          exited: mm.exited,
          destroyed: mm.destroyed,
        };
        const again = yield* mmgetNotZero(mm);
        yield* mmdrop(mm);
        return { afterFirst, afterLast, again, destroyed: mm.destroyed };
      };
    });
    expect(result.afterFirst).toEqual({ users: 1, exited: false });
    expect(result.afterLast).toEqual({ users: 0, count: 1, exited: true, destroyed: false });
    expect(result.again).toBe(false);
    expect(result.destroyed).toBe(true);
  });

  it('an Mm made without a System uses the per-sim default one', () => {
    const sim = new Sim();
    const sys = System.of(sim);
    const mm = new Mm(sim);
    expect(mm.system).toBe(sys);
    expect(mm.mmUsers).toBe(1);
    expect(mm.notifierSubscriptions).toBeNull();
  });
});
