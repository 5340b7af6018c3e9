/**
 * Invariants of the notifier layer (core-mm.md §7 items 1-3), as sim checks a program can hand to
 * the simulator (`invariant`) so they are verified after every step.
 *
 * @module
 */
import type { Check, Sim } from '@hmmkit/sim';
import type { Mm } from '../mm.js';
import { notifierDebug } from './debug.js';

/**
 * Checks of the per-mm interval state, after every step:
 * - `seq-monotonic`: `invalidate_seq` never decreases;
 * - `odd-only-while-active`: it is odd only while `active_invalidate_ranges > 0`, and with no
 *   active invalidation it is even and the deferred list is empty (§7.1);
 * - `deferred-implies-odd`: a non-empty deferred list implies an odd sequence, and the tree does
 *   not change while one window stays open (§7.2);
 * - `subscribers-odd`: every inserted interval subscriber's `invalidate_seq` is odd (§7.3).
 */
export function notifierInvariants(mm: Mm): Record<string, Check> {
  let lastSeq = -1;
  let lastSeqForTree = -1;
  let lastVersion = -1;
  return {
    'seq-monotonic': () => {
      const subs = mm.notifierSubscriptions;
      if (!subs) return;
      if (subs.invalidateSeq < lastSeq) return `invalidate_seq went from ${lastSeq} to ${subs.invalidateSeq}`;
      lastSeq = subs.invalidateSeq;
    },
    'odd-only-while-active': () => {
      const subs = mm.notifierSubscriptions;
      if (!subs) return;
      if (subs.activeInvalidateRanges < 0) return `active_invalidate_ranges < 0 (${subs.describe()})`;
      if (subs.activeInvalidateRanges === 0) {
        if (subs.invalidateSeq & 1)
          return `invalidate_seq odd with no active invalidation (${subs.describe()})`;
        if (subs.deferredList.length)
          return `deferred list not empty with no active invalidation (${subs.describe()})`;
      }
    },
    'deferred-implies-odd': () => {
      const subs = mm.notifierSubscriptions;
      if (!subs) return;
      if (subs.deferredList.length && !(subs.invalidateSeq & 1)) {
        return `deferred list not empty with an even invalidate_seq (${subs.describe()})`;
      }
      // While one window stays open (same odd value), the tree must not change.
      if (
        subs.invalidateSeq & 1 &&
        subs.invalidateSeq === lastSeqForTree &&
        subs.treeVersion !== lastVersion
      ) {
        return `interval tree changed while window ${subs.invalidateSeq} was open`;
      }
      lastSeqForTree = subs.invalidateSeq;
      lastVersion = subs.treeVersion;
    },
    'subscribers-odd': () => {
      const subs = mm.notifierSubscriptions;
      if (!subs) return;
      for (const sub of subs.intervalSubscribers()) {
        if (!(sub.invalidateSeq.value & 1))
          return `${sub.name}: invalidate_seq ${sub.invalidateSeq.value} is even`;
      }
      for (const sub of subs.deferredList) {
        if (sub.node === -1 && !(sub.invalidateSeq.value & 1)) {
          return `${sub.name} (deferred insert): invalidate_seq ${sub.invalidateSeq.value} is even`;
        }
      }
    },
  };
}

/** A check that no `WARN_ON` fired in this run (the kernel's `panic_on_warn`, as an invariant). */
export function noNotifierWarnings(sim: Sim): Check {
  return () => {
    const w = notifierDebug(sim).warnings;
    if (w.length) return `WARNING: ${w[0]}`;
  };
}
