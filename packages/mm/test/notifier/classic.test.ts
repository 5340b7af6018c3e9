/**
 * Classic mmu_notifier: registration, get/put, unregister, release, the invalidation entry points
 * and their ordering against interval subscribers (core-mm.md §2.1-2.3).
 */
import { Completion, EAGAIN, EINVAL, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import type { Mm } from '../../src/mm.js';
import {
  __mmuNotifierRegister,
  EOVERFLOW,
  MmuNotifier,
  type MmuNotifierOps,
  MmuNotifierRange,
  MmuNotifyEvent,
  mmHasNotifiers,
  mmuIntervalNotifierInsert,
  mmuNotifierArchInvalidateSecondaryTlbs,
  mmuNotifierClearFlushYoung,
  mmuNotifierClearYoung,
  mmuNotifierGet,
  mmuNotifierGetLocked,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierInvalidateRangeStartNonblock,
  mmuNotifierPut,
  mmuNotifierRegister,
  mmuNotifierRelease,
  mmuNotifierSubscriptionsDestroy,
  mmuNotifierSynchronize,
  mmuNotifierTestYoung,
  mmuNotifierUnregister,
  notifierDebug,
  UINT_MAX,
} from '../../src/notifier/index.js';
import {
  done,
  expectClean,
  expectViolation,
  makeMm,
  PAGE,
  recordingInterval,
  runProgram,
} from './helpers.js';

/** A classic subscriber whose callbacks append to `log`. */
function recordingClassic(name: string, log: string[], extra: Partial<MmuNotifierOps> = {}): MmuNotifier {
  const ops: MmuNotifierOps = {
    invalidateRangeStart(sub, range) {
      log.push(`${sub.name} start ${range.event}${range.flags & 1 ? '' : ' nonblock'}`);
      return done(0);
    },
    invalidateRangeEnd(sub, range) {
      log.push(`${sub.name} end ${range.event}`);
      return done(undefined);
    },
    release(sub) {
      log.push(`${sub.name} release`);
      return done(undefined);
    },
    ...extra,
  };
  return new MmuNotifier(name, ops);
}

const range = (mm: Mm, start: number, end: number, event: MmuNotifyEvent = MmuNotifyEvent.CLEAR) =>
  new MmuNotifierRange({ mm, start, end, event });

describe('classic notifier: registration', () => {
  it('mmu_notifier_register pins the mm, adds at the head, and is seen by later invalidations', () => {
    const log: string[] = [];
    const r = runProgram('register', (sim) => {
      const mm = makeMm(sim);
      const a = recordingClassic('A', log);
      const b = recordingClassic('B', log);
      sim.spawn('drv', function* () {
        expect(mmHasNotifiers(mm)).toBe(false);
        expect(yield* mmuNotifierRegister(a, mm)).toBe(0);
        expect(yield* mmuNotifierRegister(b, mm)).toBe(0);
        expect(mmHasNotifiers(mm)).toBe(true);
        expect(mm.mmCount).toBe(3);
        expect(a.users).toBe(1);
        expect(mm.notifierSubscriptions!.list.map((s) => s.name)).toEqual(['B', 'A']);
        const rg = range(mm, 0, PAGE);
        yield* mmuNotifierInvalidateRangeStart(rg);
        yield* mmuNotifierInvalidateRangeEnd(rg);
      });
    });
    expectClean(r);
    expect(log).toEqual([
      'B start MMU_NOTIFY_CLEAR',
      'A start MMU_NOTIFY_CLEAR',
      'B end MMU_NOTIFY_CLEAR',
      'A end MMU_NOTIFY_CLEAR',
    ]);
  });

  it('__mmu_notifier_register asserts mmap_lock is write-held and BUGs on mm_users <= 0', () => {
    const r1 = runProgram('unlocked', (sim) => {
      const mm = makeMm(sim);
      sim.spawn('drv', function* () {
        yield* __mmuNotifierRegister(new MmuNotifier('A'), mm);
      });
    });
    expectViolation(r1, 'lockdep-assert');
    const r2 = runProgram('dead mm', (sim) => {
      const mm = makeMm(sim);
      mm.mmUsers = 0;
      sim.spawn('drv', function* () {
        yield* mmuNotifierRegister(new MmuNotifier('A'), mm);
      });
    });
    expectViolation(r2, 'kernel-bug');
  });

  it('a subscriber with arch_invalidate_secondary_tlbs and start/end is refused with -EINVAL and a WARN', () => {
    let sim!: Sim;
    let ret = 0;
    const r = runProgram('einval', (s) => {
      sim = s;
      const mm = makeMm(s);
      const sub = new MmuNotifier('A', {
        invalidateRangeStart: () => done(0),
        archInvalidateSecondaryTlbs: () => done(undefined),
      });
      s.spawn('drv', function* () {
        ret = yield* mmuNotifierRegister(sub, mm);
        expect(mmHasNotifiers(mm)).toBe(false);
        expect(sub.hashed).toBe(false);
      });
    });
    expectClean(r);
    expect(ret).toBe(-EINVAL);
    expect(notifierDebug(sim).warnings).toHaveLength(1);
  });

  it('register primes lockdep with fs_reclaim -> the start map (kernels v5.4+ under CONFIG_LOCKDEP)', () => {
    let sim!: Sim;
    const r = runProgram('prime', (s) => {
      sim = s;
      const mm = makeMm(s);
      s.spawn('drv', function* () {
        yield* mmuNotifierRegister(new MmuNotifier('A'), mm);
      });
    });
    expectClean(r);
    expect(sim.lockdep.hasEdge('fs_reclaim', '__mmu_notifier_invalidate_range_start_map')).toBe(true);
  });
});

describe('classic notifier: get / put', () => {
  it('get returns the subscriber registered with the same ops, counting users; the last put frees it after a grace period', () => {
    const events: string[] = [];
    const r = runProgram('get-put', (sim) => {
      const mm = makeMm(sim);
      const ops: MmuNotifierOps = {
        allocNotifier: () => done(new MmuNotifier('kvm-like')),
        freeNotifier(sub) {
          events.push(`free ${sub.name}`);
          return done(undefined);
        },
        release() {
          events.push('release');
          return done(undefined);
        },
      };
      sim.spawn('drv', function* () {
        const a = yield* mmuNotifierGet(ops, mm);
        const b = yield* mmuNotifierGet(ops, mm);
        expect(a).toBe(b);
        if (typeof a === 'number') throw new Error('get failed');
        expect(a.users).toBe(2);
        yield* mmuNotifierPut(a);
        expect(a.hashed).toBe(true);
        yield* mmuNotifierPut(a);
        expect(a.hashed).toBe(false);
        expect(a.freed).toBe(false); // asynchronous
        yield* mmuNotifierSynchronize(sim);
        expect(a.freed).toBe(true);
        expect(mm.mmCount).toBe(1);
      });
    });
    expectClean(r);
    expect(events).toEqual(['free kvm-like']); // put never calls release
  });

  it('get: -EOVERFLOW at UINT_MAX users; alloc errors propagate; a register failure frees the new subscriber', () => {
    const out: (string | number)[] = [];
    const r = runProgram('get-errors', (sim) => {
      const mm = makeMm(sim);
      const ops: MmuNotifierOps = { allocNotifier: () => done(new MmuNotifier('n')) };
      const failing: MmuNotifierOps = { allocNotifier: () => done(-12) };
      const conflicting: MmuNotifierOps = {
        invalidateRangeStart: () => done(0),
        archInvalidateSecondaryTlbs: () => done(undefined),
        allocNotifier: () => done(new MmuNotifier('bad')),
        freeNotifier() {
          out.push('freed bad');
          return done(undefined);
        },
      };
      sim.spawn('drv', function* () {
        const a = yield* mmuNotifierGet(ops, mm);
        if (typeof a === 'number') throw new Error('get failed');
        a.users = UINT_MAX;
        out.push((yield* mmuNotifierGet(ops, mm)) as number);
        out.push((yield* mmuNotifierGet(failing, mm)) as number);
        out.push((yield* mmuNotifierGet(conflicting, mm)) as number);
      });
    });
    expectClean(r);
    expect(out).toEqual([-EOVERFLOW, -12, 'freed bad', -EINVAL]);
  });

  it('get_locked asserts mmap_lock is write-held', () => {
    const r = runProgram('get_locked', (sim) => {
      const mm = makeMm(sim);
      sim.spawn('drv', function* () {
        yield* mmuNotifierGetLocked({ allocNotifier: () => done(new MmuNotifier('n')) }, mm);
      });
    });
    expectViolation(r, 'lockdep-assert');
  });
});

describe('classic notifier: unregister and release', () => {
  it('unregister calls release, unhashes, and drops the mm pin', () => {
    const log: string[] = [];
    const r = runProgram('unregister', (sim) => {
      const mm = makeMm(sim);
      const a = recordingClassic('A', log);
      sim.spawn('drv', function* () {
        yield* mmuNotifierRegister(a, mm);
        yield* mmuNotifierUnregister(a, mm);
        expect(a.hashed).toBe(false);
        expect(mm.mmCount).toBe(1);
        const rg = range(mm, 0, PAGE);
        yield* mmuNotifierInvalidateRangeStart(rg);
        yield* mmuNotifierInvalidateRangeEnd(rg);
      });
    });
    expectClean(r);
    expect(log).toEqual(['A release']);
  });

  it('unregister waits (synchronize_srcu) for a callback running on another thread', () => {
    const events: string[] = [];
    const r = runProgram('unregister-waits', (sim) => {
      const mm = makeMm(sim);
      const inCb = new Completion(sim, 'in callback');
      const go = new Completion(sim, 'go');
      const a = new MmuNotifier('A', {
        *invalidateRangeStart() {
          events.push('cb enter');
          yield* inCb.complete();
          yield* go.wait();
          events.push('cb leave');
          return 0;
        },
      });
      sim.spawn('cpu', function* () {
        yield* mmuNotifierRegister(a, mm);
        const rg = range(mm, 0, PAGE);
        yield* mmuNotifierInvalidateRangeStart(rg);
        yield* mmuNotifierInvalidateRangeEnd(rg);
      });
      sim.spawn('drv', function* () {
        yield* inCb.wait();
        yield* go.complete();
        yield* mmuNotifierUnregister(a, mm);
        events.push('unregistered');
      });
    });
    expectClean(r);
    expect(events).toEqual(['cb enter', 'cb leave', 'unregistered']);
  });

  it('release at exit calls every release (interval subscribers first), unhashes; a later unregister does not call it again', () => {
    const log: string[] = [];
    const r = runProgram('release', (sim) => {
      const mm = makeMm(sim);
      const a = recordingClassic('A', log);
      const iv = recordingInterval(sim, 'I', [], {
        body: () => {
          log.push('I RELEASE');
        },
      });
      sim.spawn('exit', function* () {
        yield* mmuNotifierRegister(a, mm);
        yield* mmuIntervalNotifierInsert(iv.sub, mm, 0, PAGE, iv.ops);
        yield* mmuNotifierRelease(mm);
        expect(a.hashed).toBe(false);
        yield* mmuNotifierUnregister(a, mm);
      });
    });
    expectClean(r);
    expect(log).toEqual(['I RELEASE', 'A release']);
  });

  it('release may run twice, concurrently (exit vs unregister): both callers wait for each other', () => {
    let releases = 0;
    let maxConcurrent = 0;
    let running = 0;
    const r = runProgram('release-twice', (sim) => {
      const mm = makeMm(sim);
      const first = new Completion(sim, 'first release running');
      const second = new Completion(sim, 'second release running');
      const a = new MmuNotifier('A', {
        *release() {
          releases++;
          running++;
          maxConcurrent = Math.max(maxConcurrent, running);
          if (releases === 1) {
            yield* first.complete();
            yield* second.wait();
          } else {
            yield* second.complete();
          }
          running--;
        },
      });
      sim.spawn('drv', function* () {
        yield* mmuNotifierRegister(a, mm);
        yield* mmuNotifierUnregister(a, mm);
        expect(running).toBe(0); // unregister returned: no release runs any more
      });
      sim.spawn('exit', function* () {
        yield* first.wait();
        yield* mmuNotifierRelease(mm);
        expect(running).toBe(0); // exit_mmap may free pages: no release runs any more
      });
    });
    expectClean(r);
    expect(releases).toBe(2);
    expect(maxConcurrent).toBe(2);
  });
});

describe('classic notifier: invalidation', () => {
  it('interval subscribers are called before classic ones, at start and at end', () => {
    const log: string[] = [];
    const r = runProgram('ordering', (sim) => {
      const mm = makeMm(sim);
      const a = recordingClassic('C', log);
      const iv = recordingInterval(sim, 'I', [], {
        body: () => {
          log.push('I invalidate');
        },
      });
      sim.spawn('cpu', function* () {
        yield* mmuNotifierRegister(a, mm); // classic first, to show order is by kind, not age
        yield* mmuIntervalNotifierInsert(iv.sub, mm, 0, PAGE, iv.ops);
        const rg = range(mm, 0, PAGE);
        yield* mmuNotifierInvalidateRangeStart(rg);
        log.push('cpu changes PTEs');
        yield* mmuNotifierInvalidateRangeEnd(rg);
        log.push(`seq ${mm.notifierSubscriptions!.invalidateSeq}`);
      });
    });
    expectClean(r);
    expect(log).toEqual([
      'I invalidate',
      'C start MMU_NOTIFY_CLEAR',
      'cpu changes PTEs',
      'C end MMU_NOTIFY_CLEAR',
      'seq 4',
    ]);
  });

  it('nonblock start: a classic -EAGAIN is returned, every other start still runs, then end on all that have it', () => {
    const log: string[] = [];
    let ret = 0;
    const r = runProgram('nonblock', (sim) => {
      const mm = makeMm(sim);
      const ok = recordingClassic('OK', log);
      const fails = new MmuNotifier('FAILS', {
        invalidateRangeStart(_s, rg) {
          log.push(`FAILS start${rg.flags & 1 ? '' : ' nonblock'}`);
          return done(rg.flags & 1 ? 0 : -EAGAIN);
        },
      });
      const ok2 = recordingClassic('OK2', log);
      sim.spawn('oom_reaper', function* () {
        yield* mmuNotifierRegister(ok2, mm);
        yield* mmuNotifierRegister(fails, mm);
        yield* mmuNotifierRegister(ok, mm);
        ret = yield* mmuNotifierInvalidateRangeStartNonblock(range(mm, 0, PAGE, MmuNotifyEvent.UNMAP));
      });
    });
    expectClean(r);
    expect(ret).toBe(-EAGAIN);
    expect(log).toEqual([
      'OK start MMU_NOTIFY_UNMAP nonblock',
      'FAILS start nonblock',
      'OK2 start MMU_NOTIFY_UNMAP nonblock',
      'OK end MMU_NOTIFY_UNMAP',
      'OK2 end MMU_NOTIFY_UNMAP',
    ]);
  });

  it('a failing start on a blockable range, or an error other than -EAGAIN, or a failing start with an end op, WARNs', () => {
    let sim!: Sim;
    const r = runProgram('warns', (s) => {
      sim = s;
      const mm = makeMm(s);
      const bad = new MmuNotifier('BAD', {
        invalidateRangeStart: () => done(-16),
        invalidateRangeEnd: () => done(undefined),
      });
      s.spawn('cpu', function* () {
        yield* mmuNotifierRegister(bad, mm);
        const rg = range(mm, 0, PAGE);
        yield* mmuNotifierInvalidateRangeStart(rg); // blockable: return value ignored
        yield* mmuNotifierInvalidateRangeEnd(rg);
      });
    });
    expectClean(r);
    const w = notifierDebug(sim).warnings;
    expect(w).toHaveLength(2);
    expect(w[0]).toMatch(/failed with -16 in blockable context/);
    expect(w[1]).toMatch(/has invalidate_range_end/);
  });

  it('without notifiers the entry points do nothing and take no scheduling point', () => {
    const r = runProgram('no-notifiers', (sim) => {
      const mm = makeMm(sim);
      sim.spawn('cpu', function* () {
        const rg = range(mm, 0, PAGE);
        yield* mmuNotifierInvalidateRangeStart(rg);
        expect(yield* mmuNotifierInvalidateRangeStartNonblock(range(mm, 0, PAGE))).toBe(0);
        yield* mmuNotifierInvalidateRangeEnd(rg);
        yield* mmuNotifierRelease(mm);
        yield* mmuNotifierArchInvalidateSecondaryTlbs(mm, 0, PAGE);
        expect(yield* mmuNotifierTestYoung(mm, 0)).toBe(false);
      });
    });
    expectClean(r);
    expect(r.steps).toBe(1); // only the thread's start
  });

  it('invalidate_range_start asserts it may sleep; end without start is api-misuse', () => {
    const r1 = runProgram('atomic', (sim) => {
      const mm = makeMm(sim);
      sim.spawn('cpu', function* () {
        yield* mmuNotifierRegister(new MmuNotifier('A'), mm);
        const spin = mm.notifierSubscriptions!.lock; // any spinlock makes the caller atomic
        yield* spin.lock();
        yield* mmuNotifierInvalidateRangeStart(range(mm, 0, PAGE));
      });
    });
    expectViolation(r1, 'sleep-in-atomic');
    const r2 = runProgram('end-without-start', (sim) => {
      const mm = makeMm(sim);
      sim.spawn('cpu', function* () {
        yield* mmuNotifierRegister(new MmuNotifier('A'), mm);
        yield* mmuNotifierInvalidateRangeEnd(range(mm, 0, PAGE));
      });
    });
    expectViolation(r2, 'api-misuse');
  });
});

describe('classic notifier: secondary TLBs and aging', () => {
  it('arch_invalidate_secondary_tlbs reaches every subscriber that has it, in atomic context', () => {
    const log: string[] = [];
    const r = runProgram('arch', (sim) => {
      const mm = makeMm(sim);
      const iommu = new MmuNotifier('SVA', {
        archInvalidateSecondaryTlbs(_s, _mm, start, end) {
          log.push(`flush ${start}-${end} atomic=${sim.current!.atomic}`);
          return done(undefined);
        },
      });
      sim.spawn('cpu', function* () {
        yield* mmuNotifierRegister(iommu, mm);
        yield* mmuNotifierRegister(recordingClassic('other', []), mm);
        yield* mmuNotifierArchInvalidateSecondaryTlbs(mm, 0, PAGE);
      });
    });
    expectClean(r);
    expect(log).toEqual([`flush 0-${PAGE} atomic=true`]);
  });

  it('clear_flush_young and clear_young OR every result; test_young stops at the first true', () => {
    const calls: string[] = [];
    let res: boolean[] = [];
    const r = runProgram('young', (sim) => {
      const mm = makeMm(sim);
      const mk = (name: string, young: boolean) =>
        new MmuNotifier(name, {
          clearFlushYoung() {
            calls.push(`${name} cfy`);
            return done(young);
          },
          clearYoung() {
            calls.push(`${name} cy`);
            return done(young);
          },
          testYoung() {
            calls.push(`${name} ty`);
            return done(young);
          },
        });
      sim.spawn('reclaim', function* () {
        yield* mmuNotifierRegister(mk('old', false), mm);
        yield* mmuNotifierRegister(mk('young', true), mm);
        yield* mmuNotifierRegister(mk('first', false), mm);
        res = [
          yield* mmuNotifierClearFlushYoung(mm, 0, PAGE),
          yield* mmuNotifierClearYoung(mm, 0, PAGE),
          yield* mmuNotifierTestYoung(mm, 0),
        ];
      });
    });
    expectClean(r);
    expect(res).toEqual([true, true, true]);
    expect(calls).toEqual([
      'first cfy',
      'young cfy',
      'old cfy',
      'first cy',
      'young cy',
      'old cy',
      'first ty',
      'young ty',
    ]);
  });
});

describe('classic notifier: subscriptions lifetime', () => {
  it('destroy BUGs with classic subscribers left; after destroy any use is a use-after-free', () => {
    const r1 = runProgram('destroy-with-subscribers', (sim) => {
      const mm = makeMm(sim);
      sim.spawn('mmdrop', function* () {
        yield* mmuNotifierRegister(new MmuNotifier('A'), mm);
        yield* mmuNotifierSubscriptionsDestroy(mm);
      });
    });
    expectViolation(r1, 'kernel-bug');
    const r2 = runProgram('use-after-destroy', (sim) => {
      const mm = makeMm(sim);
      const a = new MmuNotifier('A');
      sim.spawn('mmdrop', function* () {
        yield* mmuNotifierRegister(a, mm);
        yield* mmuNotifierUnregister(a, mm);
        yield* mmuNotifierSubscriptionsDestroy(mm);
        yield* mmuNotifierInvalidateRangeStart(range(mm, 0, PAGE));
      });
    });
    expectViolation(r2, 'use-after-free');
  });
});
