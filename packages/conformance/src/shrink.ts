/**
 * Shrinking a failing schedule toward a short one before it is reported: delta debugging (ddmin)
 * over the choice list, replaying each candidate with `runOnce`. A candidate counts only if it
 * fails with the same violation kind; a candidate that no longer fits the program
 * (`StaleScheduleError`) does not reproduce. Every accepted candidate is replaced by the schedule
 * its run actually took (trailing default choices dropped), so the result is a real run's
 * schedule. Deterministic: no randomness, a bounded number of replays.
 */
import {
  encodeSchedule,
  monotonicClock,
  type Program,
  type RunResult,
  runOnce,
  StaleScheduleError,
  type ViolationKind,
} from '@hmmkit/sim';

export interface ShrinkOptions {
  /** Replays the shrinker may spend (default 200). */
  maxReplays?: number;
  /** Steps per run (must match the exploration's, or livelocks change). */
  maxSteps: number;
  /** Wall-time cap in milliseconds (default 2,000): shrinking is a courtesy, not a search. */
  maxTimeMs?: number;
  /** Time source (tests inject one). */
  now?: () => number;
}

export interface ShrinkResult {
  /** The shrunk choices (the significant prefix of a run that fails with the same kind). */
  choices: number[];
  schedule: string;
  /** Steps of the shrunk run. */
  steps: number;
  /** Replays spent. */
  replays: number;
  /** Choices before and after. */
  from: number;
  to: number;
  /** Steps of the original run. */
  fromSteps: number;
}

/** Replays `choices`; the run if it fails with `kind`, else null. */
function attempt(
  program: Program,
  choices: readonly number[],
  kind: ViolationKind,
  maxSteps: number,
): RunResult | null {
  try {
    const r = runOnce(program, choices, { maxSteps });
    return r.status === 'violation' && r.violation?.kind === kind ? r : null;
  } catch (e) {
    if (e instanceof StaleScheduleError) return null;
    throw e;
  }
}

function better(
  a: { choices: readonly number[]; steps: number },
  b: { choices: readonly number[]; steps: number },
): boolean {
  if (a.choices.length !== b.choices.length) return a.choices.length < b.choices.length;
  const sa = encodeSchedule(a.choices).length;
  const sb = encodeSchedule(b.choices).length;
  if (sa !== sb) return sa < sb;
  return a.steps < b.steps;
}

/**
 * Shrinks the failing `choices` of `program` (a failure of `kind` in `steps` steps). Returns the
 * original when nothing shorter reproduces.
 */
export function shrinkSchedule(
  program: Program,
  choices: readonly number[],
  kind: ViolationKind,
  steps: number,
  options: ShrinkOptions,
): ShrinkResult {
  const maxReplays = options.maxReplays ?? 200;
  // Wall time bounds the shrinker only (like the explorer's time budget); replays never read it.
  const now = options.now ?? monotonicClock;
  const deadline = now() + (options.maxTimeMs ?? 2_000);
  let best = { choices: choices.slice(), steps };
  let replays = 0;
  const budgetLeft = () => replays < maxReplays && now() < deadline;

  const tryCandidate = (cand: number[]): boolean => {
    if (!budgetLeft()) return false;
    replays++;
    const r = attempt(program, cand, kind, options.maxSteps);
    if (!r) return false;
    const normal = { choices: r.choices.slice(0, r.significant), steps: r.steps };
    if (!better(normal, best)) return false;
    best = normal;
    return true;
  };

  // The empty schedule first: the default policy alone may already fail.
  if (best.choices.length > 0) tryCandidate([]);
  let n = 2;
  while (best.choices.length > 0 && budgetLeft()) {
    const c = best.choices;
    const size = Math.max(1, Math.ceil(c.length / n));
    let reduced = false;
    // Remove one chunk at a time, last chunk first (truncation is the most common win).
    for (let start = Math.floor((c.length - 1) / size) * size; start >= 0; start -= size) {
      const cand = c.slice(0, start).concat(c.slice(start + size));
      if (tryCandidate(cand)) {
        reduced = true;
        break;
      }
      if (!budgetLeft()) break;
    }
    if (reduced) {
      n = Math.max(2, n - 1);
      continue;
    }
    if (size === 1) break;
    n = Math.min(best.choices.length, n * 2);
  }
  // Lower each remaining choice toward 0 (smaller thread ids read better), one pass.
  for (let i = 0; i < best.choices.length && budgetLeft(); i++) {
    for (let v = 0; v < best.choices[i]! && budgetLeft(); v++) {
      const cand = best.choices.slice();
      cand[i] = v;
      if (tryCandidate(cand)) break;
    }
  }
  return {
    choices: best.choices,
    schedule: encodeSchedule(best.choices),
    steps: best.steps,
    replays,
    from: choices.length,
    to: best.choices.length,
    fromSteps: steps,
  };
}
