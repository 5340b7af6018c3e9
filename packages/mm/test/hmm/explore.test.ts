/**
 * hmm_range_fault() racing the CPU side, explored: the documented caller loop keeps the mirror
 * invariant against munmap, migration and fork; a caller without read_retry does not; and
 * hmm_range_fault never reports success for a pass that started after the sequence moved.
 */
import { dfs, EBUSY, EFAULT, explore, type Op, type Program, Var } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { HMM_PFN_REQ_FAULT, type HmmRange, hmmRangeFault } from '../../src/hmm/index.js';
import {
  checkAccounting,
  checkPageTables,
  cpuWrite,
  fork,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  migratePage,
  munmap,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  System,
  watchNotifierBrackets,
} from '../../src/index.js';
import {
  MmuIntervalNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalSetSeq,
} from '../../src/notifier/index.js';
import { exploreOk } from '../helpers.js';
import { HmmMirror, mirrorInvariant } from '../hmmkit-helpers.js';

const RW = PROT_READ | PROT_WRITE;
const A = 0x200000;

type Racer = 'munmap' | 'migrate' | 'fork';

/** A mirror faulting two pages in while a CPU thread races it. */
function mirrorProgram(racer: Racer, write: boolean, pages = 2): Program {
  return {
    name: `hmm mirror vs ${racer}`,
    setup(sim) {
      const sys = new System(sim, { memoryPages: 32 });
      watchNotifierBrackets(sim);
      const mm = sys.createMm();
      sys.mmapSetup(mm, {
        addr: A,
        len: pages * PAGE_SIZE,
        prot: RW,
        flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      });
      const mirror = new HmmMirror(sim, mm, 'mirror');
      let ret: number | null = null;
      sim.spawn('setup', function* () {
        for (let i = 0; i < pages; i++) yield* cpuWrite(mm, A + i * PAGE_SIZE, `p${i}`);
        yield* mirror.insert(A, pages * PAGE_SIZE);
        sim.spawn('device', function* () {
          ret = yield* mirror.fault(A, pages, write);
        });
        sim.spawn(`cpu ${racer}`, function* () {
          if (racer === 'munmap') yield* munmap(mm, A, PAGE_SIZE);
          else if (racer === 'migrate') yield* migratePage(mm, A);
          else yield* fork(mm);
        });
      });
      return {
        invariant: { 'page tables': () => checkPageTables(sys), mirror: () => mirrorInvariant(mirror) },
        properties: {
          'fault result': () => ret === 0 || ret === -EFAULT || ret === -EBUSY || `ret ${ret}`,
          'mirror at the end': () => mirrorInvariant(mirror),
          accounting: () => checkAccounting(sys),
        },
      };
    },
  };
}

describe('hmm_range_fault with the documented caller loop (explored)', () => {
  // Migration has many more steps than munmap or fork: its interleavings are explored up to three
  // preemptions (464 traces); the other two exhaustively.
  for (const [racer, write, pages, bound] of [
    ['munmap', false, 2, undefined],
    ['migrate', false, 1, 3],
    ['fork', true, 2, undefined],
  ] as const) {
    it(`racing ${racer}: the device never maps what the CPU does not (${bound ? `up to ${bound} preemptions` : 'all interleavings'})`, () => {
      const r = exploreOk(mirrorProgram(racer, write, pages), {
        strategy: dfs(bound ? { preemptionBound: bound } : {}),
        budgets: { maxRuns: 20_000, maxTimeMs: 20_000, maxSteps: 5000 },
      });
      expect(r.endedBy).toBe('exhausted');
      if (!bound) expect(r.exhausted).toBe(true);
      expect(r.completedRuns).toBeGreaterThan(1);
    });
  }

  it('a caller that programs the device without read_retry leaves a stale mapping (found)', () => {
    const r = explore(noRetryProgram(), { strategy: dfs(), budgets: { maxRuns: 20_000, maxTimeMs: 20_000 } });
    expect(r.failures[0]?.violation.message).toMatch(/invariant 'mirror'|device maps/);
  });
});

/** The same race with a caller that skips mmu_interval_read_retry(). */
function noRetryProgram(): Program {
  return {
    name: 'hmm mirror without read_retry vs munmap',
    setup(sim) {
      const sys = new System(sim, { memoryPages: 32 });
      const mm = sys.createMm();
      sys.mmapSetup(mm, {
        addr: A,
        len: PAGE_SIZE,
        prot: RW,
        flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      });
      const mirror = new HmmMirror(sim, mm, 'mirror');
      sim.spawn('setup', function* () {
        yield* cpuWrite(mm, A, 'p0');
        yield* mirror.insert(A, PAGE_SIZE);
        sim.spawn('device', function* () {
          const range: HmmRange = {
            notifier: mirror.sub,
            notifierSeq: yield* mmuIntervalReadBegin(mirror.sub),
            start: A,
            end: A + PAGE_SIZE,
            hmmPfns: new BigUint64Array(1),
            defaultFlags: HMM_PFN_REQ_FAULT,
            pfnFlagsMask: 0n,
            devPrivateOwner: null,
          };
          yield* mm.mmapLock.downRead();
          const ret = yield* hmmRangeFault(range);
          yield* mm.mmapLock.upRead();
          if (ret) return;
          yield* mirror.lock.lock();
          yield* mirror.pt.set(A, { pfn: Number(range.hmmPfns[0]! & 0xffffffffn), write: false });
          yield* mirror.lock.unlock();
        });
        sim.spawn('cpu munmap', () => munmap(mm, A, PAGE_SIZE));
      });
      return { invariant: { mirror: () => mirrorInvariant(mirror) } };
    },
  };
}

/** The interval sequence with a record of its check_retry reads and set_seq writes. */
class SeqSpy extends Var<number> {
  readonly log: { what: 'begin' | 'check' | 'set'; by: string }[] = [];
  override exec(op: Op): unknown {
    const by = this.sim.current?.name ?? '';
    if (op.label === 'READ_ONCE(interval_sub->invalidate_seq)') this.log.push({ what: 'begin', by });
    if (op.label === 'mmu_interval_check_retry') this.log.push({ what: 'check', by });
    if (op.kind === 'WRITE_ONCE') this.log.push({ what: 'set', by });
    return super.exec(op);
  }
}

describe('hmm_range_fault and the interval sequence', () => {
  it('§7.18 never returns success when the sequence moved before its final pass began (racing munmap, all interleavings)', () => {
    let checked = 0;
    const program: Program = {
      name: 'hmm_range_fault vs invalidation',
      setup(sim) {
        const sys = new System(sim, { memoryPages: 32 });
        const mm = sys.createMm();
        sys.mmapSetup(mm, {
          addr: A,
          len: 2 * PAGE_SIZE,
          prot: RW,
          flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        });
        const sub = new MmuIntervalNotifier(sim, 'dev->notifier');
        const spy = new SeqSpy(sim, 'dev->notifier->invalidate_seq', 0);
        Object.defineProperty(sub, 'invalidateSeq', { value: spy });
        let ret: number | null = null;
        sim.spawn('setup', function* () {
          yield* cpuWrite(mm, A, 'p0');
          yield* mmuIntervalNotifierInsert(sub, mm, A, 2 * PAGE_SIZE, {
            *invalidate(s, _r, seq) {
              yield* mmuIntervalSetSeq(s, seq);
              return true;
            },
          });
          sim.spawn('device', function* () {
            const range: HmmRange = {
              notifier: sub,
              notifierSeq: yield* mmuIntervalReadBegin(sub),
              start: A,
              end: A + 2 * PAGE_SIZE,
              hmmPfns: new BigUint64Array(2),
              defaultFlags: HMM_PFN_REQ_FAULT,
              pfnFlagsMask: 0n,
              devPrivateOwner: null,
            };
            yield* mm.mmapLock.downRead();
            ret = yield* hmmRangeFault(range);
            yield* mm.mmapLock.upRead();
          });
          sim.spawn('cpu', () => munmap(mm, A, PAGE_SIZE));
        });
        return {
          properties: {
            'no success after a moved sequence': () => {
              if (ret !== 0) return true;
              checked++;
              // No set_seq between the caller's read_begin and the start of hmm's last pass.
              const log = spy.log;
              const begin = log.findIndex((e) => e.what === 'begin' && e.by === 'device');
              let last = -1;
              log.forEach((e, i) => {
                if (e.what === 'check' && e.by === 'device') last = i;
              });
              const moved = log.slice(begin + 1, last).some((e) => e.what === 'set');
              return !moved || 'returned 0 although set_seq ran before its final pass';
            },
          },
        };
      },
    };
    const r = exploreOk(program, { strategy: dfs(), budgets: { maxRuns: 20_000, maxTimeMs: 20_000 } });
    expect(r.exhausted).toBe(true);
    expect(checked).toBeGreaterThan(0);
  });
});
