/**
 * Violations: what the simulator, its checkers and the models report when a run breaks a rule.
 */

/** Kinds reported by @hmmkit/sim itself. Packages built on it add their own kinds as plain strings. */
export type SimViolationKind =
  /** A user invariant or end-of-run property failed. */
  | 'assertion'
  /** Unfinished threads remain and none can run. */
  | 'deadlock'
  /** A thread sleeps on a wait queue whose condition is already true and nobody will wake it. */
  | 'missed-wakeup'
  /** A run exceeded its step budget without finishing (a possible livelock). */
  | 'livelock'
  /** Lockdep: a cycle in the lock-class order graph, reported even if no deadlock happened. */
  | 'lock-order'
  /** Lockdep: a lock class taken again while held (without nesting annotation). */
  | 'recursive-lock'
  /** A sleeping operation in atomic context (spinlock held). */
  | 'sleep-in-atomic'
  /** A blocking operation inside a non-blockable section (e.g. a non-blockable notifier). */
  | 'block-in-nonblockable'
  /** A GFP_KERNEL allocation where reclaim must not recurse (reclaim, non-blockable, fence signalling). */
  | 'alloc-in-forbidden-context'
  /** A fence wait or dma_resv lock inside a fence-signalling critical section. */
  | 'fence-signalling'
  /** An access to an object after it was freed. */
  | 'use-after-free'
  /** A reference count went below zero, or was raised from zero. */
  | 'refcount'
  /** `lockdep_assert_held()` failed. */
  | 'lockdep-assert'
  /** A thread finished while still holding locks. */
  | 'lock-held-at-exit'
  /** Unlock of a lock the thread does not hold. */
  | 'bad-unlock'
  /** Model code threw an ordinary exception: a bug in the model, not a protocol violation. */
  | 'model-error'
  /** Replaying the same schedule gave a different run. */
  | 'nondeterminism';

/** Any violation kind: the sim's own, or a string defined by a model package. */
export type ViolationKind = SimViolationKind | (string & {});

/** A report of one broken rule, with enough context to explain it. */
export interface Violation {
  kind: ViolationKind;
  /** One-line human explanation. */
  message: string;
  /** Step index (0-based) at which it was detected; -1 when detected at the end of the run. */
  step: number;
  /** Names of the threads involved (the current thread first). */
  threads: string[];
  /** Names of the objects involved. */
  objects: string[];
  /** Extra lines (lockdep chains, waiter lists) rendered under the message. */
  details?: string[];
}

/**
 * Thrown inside a run to stop it at the first violation. Model code may throw it through
 * `sim.fail(...)`; the scheduler catches it and ends the run cleanly.
 */
export class ViolationSignal extends Error {
  constructor(readonly violation: Violation) {
    super(`${violation.kind}: ${violation.message}`);
    this.name = 'ViolationSignal';
  }
}
