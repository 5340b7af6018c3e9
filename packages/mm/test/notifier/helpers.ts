/**
 * Test helpers for the notifier unit tests: building an mm, running a program once under the
 * default policy, and a few recording subscribers.
 */
import {
  type Program,
  type ProgramHooks,
  type Routine,
  type RunResult,
  RwSemaphore,
  renderRaceDiagram,
  runOnce,
  type Sim,
} from '@hmmkit/sim';
import { expect } from 'vitest';
import type { Mm } from '../../src/mm.js';
import {
  MmuIntervalNotifier,
  type MmuIntervalNotifierOps,
  type MmuNotifierRange,
  MmuNotifierSubscriptions,
  mmuIntervalSetSeq,
} from '../../src/notifier/index.js';
import { itreeInsert } from '../../src/notifier/interval.js';

/**
 * A fresh mm with one user, carrying only the fields of the notifier contract (`sim`, `mmapLock`,
 * `mmUsers`, `mmCount`, `notifierSubscriptions`), so the unit tests do not depend on the
 * address-space model. The driver-loop tests use the real `Mm`.
 */
export function makeMm(sim: Sim): Mm {
  const mm = {
    sim,
    mmapLock: new RwSemaphore(sim, 'mm->mmap_lock', { lockClass: 'mmap_lock' }),
    mmUsers: 1,
    mmCount: 1,
    notifierSubscriptions: null,
  };
  return mm as unknown as Mm;
}

/** Runs `setup`'s threads once under the default policy (no preemption), traced. */
export function runProgram(name: string, setup: (sim: Sim) => ProgramHooks | undefined | void): RunResult {
  const program: Program = { name, setup };
  return runOnce(program, [], { trace: true });
}

/** Asserts that a run finished without a violation (printing the race diagram if not). */
export function expectClean(r: RunResult): void {
  if (r.violation)
    expect.fail(`unexpected ${r.violation.kind}: ${r.violation.message}\n${renderRaceDiagram(r)}`);
  expect(r.status).toBe('done');
}

/** Asserts that a run stopped with a violation of `kind`; returns its message. */
export function expectViolation(r: RunResult, kind: string): string {
  if (r.violation?.kind !== kind) {
    expect.fail(
      `expected '${kind}', got ${r.violation ? `'${r.violation.kind}': ${r.violation.message}` : 'no violation'}\n${renderRaceDiagram(r)}`,
    );
  }
  return r.violation!.message;
}

/** One recorded interval callback. */
export interface IntervalCall {
  sub: string;
  event: string;
  start: number;
  end: number;
  curSeq: number;
  blockable: boolean;
  /** The mm's sequence when the callback ran. */
  globalSeq: number;
}

/**
 * An interval subscriber whose callback records the call and sets the sequence, optionally
 * returning `result` (false to simulate a non-blockable callback that would have to sleep).
 */
export function recordingInterval(
  sim: Sim,
  name: string,
  log: IntervalCall[],
  opts: {
    result?: (range: MmuNotifierRange) => boolean;
    body?: (sub: MmuIntervalNotifier) => void;
  } = {},
): { sub: MmuIntervalNotifier; ops: MmuIntervalNotifierOps } {
  const sub = new MmuIntervalNotifier(sim, name);
  const ops: MmuIntervalNotifierOps = {
    *invalidate(s, range, curSeq) {
      log.push({
        sub: s.name,
        event: range.event,
        start: range.start,
        end: range.end,
        curSeq,
        blockable: (range.flags & 1) !== 0,
        globalSeq: s.mm!.notifierSubscriptions!.invalidateSeq,
      });
      const ok = opts.result ? opts.result(range) : true;
      if (!ok) return false;
      opts.body?.(s);
      yield* mmuIntervalSetSeq(s, curSeq);
      return true;
    },
  };
  return { sub, ops };
}

export const PAGE = 0x1000;

/** A routine that returns `value` at once (for callbacks that never reach a scheduling point). */
// biome-ignore lint/correctness/useYield: deliberately no scheduling point
export function* done<T>(value: T): Routine<T> {
  return value;
}

/**
 * Subscribes `sub` during setup, without scheduling points: the state `mmu_interval_notifier_insert()`
 * leaves on an idle mm (first registration included). Lets explorations start with the
 * subscription in place instead of exploring its registration too.
 */
export function setupInterval(
  mm: Mm,
  sub: MmuIntervalNotifier,
  start: number,
  length: number,
  ops: MmuIntervalNotifierOps,
): void {
  let subs = mm.notifierSubscriptions;
  if (!subs) {
    subs = new MmuNotifierSubscriptions(mm, null);
    mm.notifierSubscriptions = subs;
  }
  subs.head.hasItree = true;
  sub.mm = mm;
  sub.ops = ops;
  sub.start = start;
  sub.last = start + length - 1;
  sub.invalidateSeq.value = subs.invalidateSeq - 1;
  itreeInsert(subs, sub);
  sub.state = 'inserted';
  mm.mmCount++;
}
