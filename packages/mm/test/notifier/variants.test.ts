/**
 * UNMERGED PROPOSALS (opt-in, never in a kernel): (a) the embedded lock with lock/unlock helpers
 * and an asserting update_seq; (b) update/find/put with a release callback, including the
 * munmap-hole batch.
 */
import { Completion, dfs, explore, type Program, renderRaceDiagram, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import type { Mm } from '../../src/mm.js';
import {
  intervalNotifierInTree,
  MmuIntervalNotifier,
  type MmuIntervalNotifierOps,
  MmuNotifierRange,
  MmuNotifyEvent,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalSetSeq,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  notifierInvariants,
  unmerged,
} from '../../src/notifier/index.js';
import { expectClean, expectViolation, makeMm, PAGE, runProgram, setupInterval } from './helpers.js';

function* invalidate(mm: Mm, start: number, end: number, event: MmuNotifyEvent = MmuNotifyEvent.UNMAP) {
  const r = new MmuNotifierRange({ mm, start, end, event });
  yield* mmuNotifierInvalidateRangeStart(r);
  yield* mmuNotifierInvalidateRangeEnd(r);
}

describe('UNMERGED (a): lock embedded in the interval notifier', () => {
  function embeddedLockDriver(sim: Sim, opts: { setSeqUnlocked?: boolean } = {}) {
    const sub = new MmuIntervalNotifier(sim, 'drv');
    unmerged.mmuIntervalNotifierInitLock(sub);
    const ops: MmuIntervalNotifierOps = {
      *invalidate(s, range, curSeq) {
        if (opts.setSeqUnlocked) {
          yield* unmerged.mmuIntervalUpdateSeq(s, curSeq);
          return true;
        }
        if (range.flags & 1) yield* unmerged.mmuIntervalNotifierLock(s);
        else if (!(yield* unmerged.mmuIntervalNotifierTrylock(s))) return false;
        yield* unmerged.mmuIntervalUpdateSeq(s, curSeq);
        yield* unmerged.mmuIntervalNotifierUnlock(s);
        return true;
      },
    };
    return { sub, ops };
  }

  it('the read side and the callback use the embedded lock; the loop is race-free (exhaustive)', () => {
    const program: Program = {
      name: 'embedded-lock',
      setup(sim) {
        const mm = makeMm(sim);
        const { sub, ops } = embeddedLockDriver(sim);
        setupInterval(mm, sub, 0x10000, PAGE, ops);
        let programmedSeq = -1;
        sim.spawn('device', function* () {
          for (;;) {
            const seq = yield* mmuIntervalReadBegin(sub);
            yield* unmerged.mmuIntervalNotifierLock(sub);
            if (!(yield* unmerged.mmuIntervalReadRetryLocked(sub, seq))) {
              programmedSeq = seq;
              yield* unmerged.mmuIntervalNotifierUnlock(sub);
              return;
            }
            yield* unmerged.mmuIntervalNotifierUnlock(sub);
          }
        });
        sim.spawn('cpu', function* () {
          yield* invalidate(mm, 0x10000, 0x11000);
        });
        return {
          invariant: notifierInvariants(mm),
          properties: {
            programmed: () => programmedSeq === 1 || programmedSeq === 3 || `seq ${programmedSeq}`,
          },
        };
      },
    };
    const r = explore(program, { strategy: dfs() });
    if (r.failures[0]) expect.fail(renderRaceDiagram(r.failures[0].trace));
    expect(r.exhausted).toBe(true);
  });

  it('update_seq without the embedded lock is a lockdep-assert violation', () => {
    const r = runProgram('update_seq unlocked', (sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = embeddedLockDriver(sim, { setSeqUnlocked: true });
      sim.spawn('cpu', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0x10000, PAGE, ops);
        yield* invalidate(mm, 0x10000, 0x11000);
      });
    });
    expect(expectViolation(r, 'lockdep-assert')).toMatch(/drv->lock/);
  });

  it('read_retry_locked without the embedded lock is a lockdep-assert violation; helpers need the lock to exist', () => {
    const r = runProgram('read_retry unlocked', (sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = embeddedLockDriver(sim);
      sim.spawn('device', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0x10000, PAGE, ops);
        const seq = yield* mmuIntervalReadBegin(sub);
        yield* unmerged.mmuIntervalReadRetryLocked(sub, seq);
      });
    });
    expectViolation(r, 'lockdep-assert');
    const r2 = runProgram('no lock', (sim) => {
      const sub = new MmuIntervalNotifier(sim, 'plain');
      sim.spawn('device', function* () {
        yield* unmerged.mmuIntervalNotifierLock(sub);
      });
    });
    expectViolation(r2, 'api-misuse');
  });

  it('read_begin under the embedded lock is still a lock-order violation (the lock is taken by callbacks)', () => {
    const r = runProgram('read_begin under embedded lock', (sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = embeddedLockDriver(sim);
      sim.spawn('device', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0x10000, PAGE, ops);
        yield* invalidate(mm, 0x10000, 0x11000);
        yield* unmerged.mmuIntervalNotifierLock(sub);
        yield* mmuIntervalReadBegin(sub);
      });
    });
    expectViolation(r, 'lock-order');
  });
});

describe('UNMERGED (b): update / find / put with release', () => {
  /** A driver that records callbacks and can be released asynchronously. */
  function trackedDriver(sim: Sim, name: string, log: string[]) {
    const sub = new MmuIntervalNotifier(sim, name);
    const ops: MmuIntervalNotifierOps = {
      *invalidate(s, range, curSeq) {
        if (s.state === 'removed') sim.fail('assertion', `${s.name}: callback after release`);
        log.push(`${s.name} ${range.event}`);
        yield* mmuIntervalSetSeq(s, curSeq);
        return true;
      },
      *release(s) {
        log.push(`${s.name} released`);
        yield sim.note('free driver struct');
      },
    };
    return { sub, ops };
  }

  it('update with no window open moves the subscription at once', () => {
    const log: string[] = [];
    const r = runProgram('update-idle', (sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = trackedDriver(sim, 'A', log);
      sim.spawn('drv', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0x10000, 4 * PAGE, ops);
        yield* unmerged.mmuIntervalNotifierUpdate(sub, 0x20000, 0x20fff);
        expect([sub.start, sub.last]).toEqual([0x20000, 0x20fff]);
        yield* invalidate(mm, 0x10000, 0x11000);
        yield* invalidate(mm, 0x20000, 0x21000);
      });
    });
    expectClean(r);
    expect(log).toEqual(['A MMU_NOTIFY_UNMAP']);
  });

  it('find returns the subscriber with these ops overlapping the range', () => {
    const r = runProgram('find', (sim) => {
      const mm = makeMm(sim);
      const a = trackedDriver(sim, 'A', []);
      const b = trackedDriver(sim, 'B', []);
      sim.spawn('drv', function* () {
        yield* mmuIntervalNotifierInsert(a.sub, mm, 0x10000, PAGE, a.ops);
        yield* mmuIntervalNotifierInsert(b.sub, mm, 0x10000, 2 * PAGE, b.ops);
        expect(yield* unmerged.mmuIntervalNotifierFind(mm, b.ops, 0x10800, 0x10800)).toBe(b.sub);
        expect(yield* unmerged.mmuIntervalNotifierFind(mm, a.ops, 0x11000, 0x11fff)).toBeNull();
      });
    });
    expectClean(r);
  });

  it('put from inside a callback does not sleep; release runs when the window closes and no callback follows', () => {
    const log: string[] = [];
    const r = runProgram('put-in-callback', (sim) => {
      const mm = makeMm(sim);
      const sub = new MmuIntervalNotifier(sim, 'A');
      const ops: MmuIntervalNotifierOps = {
        *invalidate(s, range, curSeq) {
          if (s.state === 'removed') sim.fail('assertion', 'callback after release');
          yield* mmuIntervalSetSeq(s, curSeq);
          if (range.event === MmuNotifyEvent.UNMAP) {
            yield* unmerged.mmuIntervalNotifierPut(s);
            log.push(`put returned, seq ${mm.notifierSubscriptions!.invalidateSeq}`);
          }
          return true;
        },
        *release(s) {
          log.push(`${s.name} released, seq ${mm.notifierSubscriptions!.invalidateSeq}`);
          yield sim.note('free');
        },
      };
      sim.spawn('cpu', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0x10000, PAGE, ops);
        yield* invalidate(mm, 0x10000, 0x11000);
        yield* invalidate(mm, 0x10000, 0x11000);
        expect(mm.mmCount).toBe(1);
      });
      return { invariant: notifierInvariants(mm) };
    });
    expectClean(r);
    expect(log).toEqual(['put returned, seq 3', 'A released, seq 4']);
  });

  it('put with no window open releases at once; plain remove from a callback is still a deadlock', () => {
    const log: string[] = [];
    const r = runProgram('put-idle', (sim) => {
      const mm = makeMm(sim);
      const { sub, ops } = trackedDriver(sim, 'A', log);
      sim.spawn('drv', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0x10000, PAGE, ops);
        yield* unmerged.mmuIntervalNotifierPut(sub);
        expect(intervalNotifierInTree(sub)).toBe(false);
      });
    });
    expectClean(r);
    expect(log).toEqual(['A released']);
  });

  it('munmap hole: shrink on the left and insert on the right from the UNMAP callback, applied as one batch', () => {
    // [0x10000, 0x14fff] loses [0x12000, 0x12fff]: left keeps [0x10000, 0x11fff], a new
    // subscription covers [0x13000, 0x14fff]. No step shows one change without the other.
    const program: Program = {
      name: 'munmap-hole',
      setup(sim) {
        const mm = makeMm(sim);
        const log: string[] = [];
        const right = new MmuIntervalNotifier(sim, 'right');
        const left = new MmuIntervalNotifier(sim, 'left');
        const ops: MmuIntervalNotifierOps = {
          *invalidate(s, range, curSeq) {
            log.push(`${s.name} ${range.event} [${range.start.toString(16)}, ${range.end.toString(16)})`);
            yield* mmuIntervalSetSeq(s, curSeq);
            if (range.event === MmuNotifyEvent.UNMAP && range.start > s.start && range.end <= s.last) {
              const last = s.last;
              yield* unmerged.mmuIntervalNotifierUpdate(s, s.start, range.start - 1);
              const ret = yield* unmerged.mmuIntervalNotifierInsertSafe(
                right,
                mm,
                range.end,
                last - range.end + 1,
                ops,
              );
              if (ret) sim.fail('assertion', `insert_safe failed: ${ret}`);
            }
            return true;
          },
          *release() {
            yield sim.note('release');
          },
        };
        setupInterval(mm, left, 0x10000, 5 * PAGE, ops);
        const gate = new Completion(sim, 'hole made');
        sim.spawn('munmap', function* () {
          yield* invalidate(mm, 0x12000, 0x13000);
          yield* gate.completeAll();
        });
        sim.spawn('other cpu', function* () {
          yield* invalidate(mm, 0x10000, 0x15000, MmuNotifyEvent.CLEAR);
        });
        sim.spawn('after', function* () {
          yield* gate.wait();
          // Like insert, an update takes effect for the read side through read_begin, which
          // waits for the window (possibly kept open by 'other cpu') that carries the batch.
          yield* mmuIntervalReadBegin(left);
          yield* invalidate(mm, 0x12000, 0x13000, MmuNotifyEvent.CLEAR); // the hole: nobody is called
          yield* invalidate(mm, 0x13000, 0x14000, MmuNotifyEvent.CLEAR); // the right part: 'right' is
        });
        const shape = () =>
          mm
            .notifierSubscriptions!.intervalSubscribers()
            .map((s) => `${s.name}:${s.start.toString(16)}-${s.last.toString(16)}`)
            .join(' ');
        const before = 'left:10000-14fff';
        const after = 'left:10000-11fff right:13000-14fff';
        return {
          invariant: {
            ...notifierInvariants(mm),
            'one batch': () => {
              const s = shape();
              if (s !== before && s !== after) return `intermediate tree: ${s}`;
            },
          },
          properties: {
            'final shape': () => shape() === after || shape(),
            'hole not notified': () =>
              log.filter((l) => l.endsWith('[12000, 13000)') && l.includes('CLEAR')).length === 0 ||
              log.join('; '),
            'right part notified': () =>
              log.some((l) => l.startsWith('right MMU_NOTIFY_CLEAR [13000')) || log.join('; '),
          },
        };
      },
    };
    const r = explore(program, { strategy: dfs(), budgets: { maxRuns: 20_000, maxTimeMs: 15_000 } });
    if (r.failures[0])
      expect.fail(`${r.failures[0].violation.message}\n${renderRaceDiagram(r.failures[0].trace)}`);
    expect(r.exhausted).toBe(true);
  });

  it('put on a subscriber without a release op is api-misuse', () => {
    const r = runProgram('put-no-release', (sim) => {
      const mm = makeMm(sim);
      const sub = new MmuIntervalNotifier(sim, 'A');
      sim.spawn('drv', function* () {
        yield* mmuIntervalNotifierInsert(sub, mm, 0, PAGE, {
          *invalidate(s, _r, seq) {
            yield* mmuIntervalSetSeq(s, seq);
            return true;
          },
        });
        yield* unmerged.mmuIntervalNotifierPut(sub);
      });
    });
    expectViolation(r, 'api-misuse');
  });

  it('remove of a subscriber whose update is pending removes it for good', () => {
    const r = runProgram('update-then-remove', (sim) => {
      const mm = makeMm(sim);
      const log: string[] = [];
      const a = trackedDriver(sim, 'A', log);
      const anchor = trackedDriver(sim, 'anchor', log);
      const open = new Completion(sim, 'open');
      const close = new Completion(sim, 'close');
      sim.spawn('cpu', function* () {
        yield* mmuIntervalNotifierInsert(anchor.sub, mm, 0x10000, PAGE, anchor.ops);
        yield* mmuIntervalNotifierInsert(a.sub, mm, 0x20000, PAGE, a.ops);
        const rg = new MmuNotifierRange({ mm, start: 0x10000, end: 0x11000, event: MmuNotifyEvent.CLEAR });
        yield* mmuNotifierInvalidateRangeStart(rg);
        yield* open.complete();
        yield* close.wait();
        yield* mmuNotifierInvalidateRangeEnd(rg);
      });
      sim.spawn('drv', function* () {
        yield* open.wait();
        yield* unmerged.mmuIntervalNotifierUpdate(a.sub, 0x30000, 0x30fff);
        yield* close.complete();
        yield* mmuIntervalNotifierRemove(a.sub);
        expect(mm.notifierSubscriptions!.intervalSubscribers().map((s) => s.name)).toEqual(['anchor']);
      });
      return { invariant: notifierInvariants(mm) };
    });
    expectClean(r);
  });
});
