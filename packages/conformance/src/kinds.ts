/**
 * The violation kinds the kit's own checkers report, with the one-line meaning INTERPRETING.md
 * expands on. The simulator's kinds (deadlock, livelock, lock-order, ...) and the mm model's
 * (unnotified-pte-change, kernel-warn, ...) are reported unchanged.
 */

export const KitViolation = {
  /**
   * Outside every invalidation window over the address, the device maps something the CPU does
   * not map there, or with more permission than the CPU's entry grants.
   */
  StaleMapping: 'stale-mapping',
  /** Outside every invalidation window over the address, a device entry points at a freed frame. */
  FreedFrame: 'freed-frame',
  /** What a device read returned, or what the CPU reads after a device write, is not a value the scenario allows. */
  DataIntegrity: 'data-integrity',
  /** At teardown: a notifier subscription is still live, or a frame, swap slot or mm reference leaked. */
  Leak: 'leak',
  /** A device access failed where the scenario requires it to succeed. */
  AccessError: 'access-error',
  /** A driver entry point returned an error where it must not (open, migrate, register...). */
  DriverError: 'driver-error',
  /** The driver instance does not have what the contract or its own capability manifest promises. */
  Contract: 'contract',
  /** The driver's behaviour contradicts its capability manifest (e.g. `nonBlocking: 'refuse'`). */
  CapabilityMismatch: 'capability-mismatch',
  /** The structural page-table check of the mm model failed (an entry to a freed frame...). */
  PageTable: 'page-table',
  /** The notifier state machine invariants of the mm model failed. */
  NotifierState: 'notifier-state',
} as const;
export type KitViolation = (typeof KitViolation)[keyof typeof KitViolation];

/** Every violation kind the kit may report, with a one-line meaning (for `hmmkit list` and docs). */
export const violationKinds: Readonly<Record<string, string>> = {
  'stale-mapping':
    'outside an invalidation window the device maps a frame the CPU does not map at that address, or with more permission',
  'freed-frame': 'outside an invalidation window a device entry points at a freed (or reused) frame',
  'data-integrity': 'a device or CPU read returned a value the scenario does not allow',
  leak: 'at teardown a subscription is still live, or a frame, swap slot or mm reference leaked',
  'access-error': 'a device access failed where the scenario requires it to succeed',
  'driver-error': 'a driver entry point returned an error where it must not',
  contract: 'the driver instance lacks what the contract or its capability manifest promises',
  'capability-mismatch': "the driver's behaviour contradicts its capability manifest",
  'page-table': 'a structural page-table invariant of the mm model failed',
  'notifier-state': 'a notifier state-machine invariant of the mm model failed',
  // From @hmmkit/sim:
  deadlock: 'unfinished threads remain and none can run',
  livelock:
    'a run exceeded its step budget, or every thread spins in cpu_relax() with nothing left to change',
  'missed-wakeup': 'a thread sleeps although its condition holds and nobody is left to wake it',
  'lock-order': 'lockdep: a cycle in the lock-class order, reported even if no deadlock happened',
  'recursive-lock': 'a lock class taken again while held',
  'sleep-in-atomic': 'a sleeping operation in atomic context',
  'block-in-nonblockable': 'a blocking operation inside a non-blockable section (non-blockable notifier)',
  'alloc-in-forbidden-context':
    'a GFP_KERNEL allocation in reclaim, non-blockable or fence-signalling context',
  'fence-signalling': 'a fence wait or dma_resv lock inside a fence-signalling section',
  'use-after-free': 'an access to an object or frame after it was freed',
  refcount: 'a reference count went below zero or was raised from zero',
  'lockdep-assert': 'lockdep_assert_held() failed',
  'lock-held-at-exit': 'a thread finished while holding locks',
  'bad-unlock': 'unlock of a lock the thread does not hold',
  'model-error': 'model code threw an ordinary exception (a bug in the driver model or the kit)',
  nondeterminism: 'replaying the same schedule gave a different run',
  // From @hmmkit/mm:
  'unnotified-pte-change': 'a CPU page-table entry was reduced outside an invalidate_range_start/end bracket',
  'unbalanced-invalidate': 'invalidate_range_end without a matching start',
  'kernel-warn': 'a WARN_ON of the notifier layer fired',
  'kernel-bug': 'a BUG_ON of the notifier layer fired',
  'api-misuse': 'a notifier API call the kernel does not survive (double remove, ...)',
  'bad-page': 'a frame freed in a bad state (mapped, locked, referenced)',
  'bad-access': 'a CPU access through an entry that cannot be accessed',
};
