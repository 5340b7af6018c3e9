/**
 * Results of the kit, and the versioned JSON form (`hmmkit.conform/1`). Bump
 * {@link CONFORM_SCHEMA} when a field changes meaning; adding optional fields does not.
 */
import type { TraceJson } from '@hmmkit/sim';
import type { KitBudget } from './budget.js';
import type { StaleExpectation } from './expectations.js';

export const CONFORM_SCHEMA = 'hmmkit.conform/1';

/**
 * - `pass`: explored within the budget, no violation, none expected;
 * - `fail`: a violation nobody expected (or of a kind other than expected);
 * - `skip`: the driver lacks a capability the scenario requires;
 * - `xfail`: failed as expected (an expectations entry, or the kinds a bug variant declares);
 * - `unexpected-pass`: an expected failure did not happen (counts as a failure).
 */
export type ScenarioStatus = 'pass' | 'fail' | 'skip' | 'xfail' | 'unexpected-pass';

/** One exploration of the portfolio. */
export interface ExplorationSummary {
  strategy: string;
  runs: number;
  steps: number;
  endedBy: string;
  exhausted: boolean;
  elapsedMs: number;
}

/** A violation as the kit reports it. */
export interface FailureReport {
  kind: string;
  message: string;
  /** Step of the shrunk run at which it was detected (-1: at the end of the run). */
  step: number;
  threads: string[];
  objects: string[];
  details?: string[];
  /** The (shrunk) schedule: paste it into `hmmkit replay --schedule`. */
  schedule: string;
  /** The schedule as the explorer found it, before shrinking. */
  foundSchedule: string;
  /** Strategy and run index (within that strategy) that found it. */
  strategy: string;
  run: number;
  seed?: number;
  /** Runs over the whole portfolio up to and including the failing one. */
  runsToFailure: number;
  /** Time from the start of the scenario to the failing run's end. */
  timeToFailureMs: number;
  /** Whether a replay reproduced the run exactly. */
  deterministic: boolean;
  shrink: { replays: number; fromChoices: number; toChoices: number; fromSteps: number; toSteps: number };
  /** The command that replays it. */
  replayCommand: string;
  /** The race diagram of the shrunk run. */
  diagram: string;
  /** The traced run (only with `traces: true`). */
  trace?: TraceJson;
}

/** The result of one scenario for one driver (variant). */
export interface ScenarioResult {
  driver: string;
  /** null for the correct driver. */
  variant: string | null;
  scenario: string;
  title: string;
  status: ScenarioStatus;
  /** Skip reason, expectation reason, or why a failure is unexpected. */
  reason?: string;
  /** The violation kinds that were expected, if any. */
  expectedKinds?: string[];
  /**
   * For a bug variant: this failure catches it (one of its declared kinds, and not a failure the
   * correct driver is expected to have as well).
   */
  catches?: boolean;
  /** Strategy of the last exploration (the one that found the failure, if any). */
  strategy: string | null;
  seed: number;
  runs: number;
  steps: number;
  elapsedMs: number;
  /** A dfs in the portfolio covered the whole space. */
  exhausted: boolean;
  explorations: ExplorationSummary[];
  failure?: FailureReport;
}

/** Whether a bug variant was caught by at least one scenario with one of its declared kinds. */
export interface VariantVerdict {
  driver: string;
  variant: string;
  description: string;
  expect: string[];
  caught: boolean;
  /** Scenarios that caught it. */
  caughtBy: string[];
  /** Stopped at the first catch (`stopWhenCaught`). */
  partial: boolean;
}

export interface ConformanceSummary {
  pass: number;
  fail: number;
  skip: number;
  xfail: number;
  unexpectedPass: number;
  /** Variants that no scenario caught. */
  notCaught: number;
  stale: number;
  elapsedMs: number;
}

/** Everything one invocation of the kit produced. */
export interface ConformanceReport {
  schema: typeof CONFORM_SCHEMA;
  kitVersion: number;
  seed: number;
  budget: KitBudget;
  /** The strategy given instead of the portfolio, if any. */
  strategy: string | null;
  drivers: { name: string; description: string; supports: Record<string, unknown>; variants: string[] }[];
  results: ScenarioResult[];
  variants: VariantVerdict[];
  stale: (StaleExpectation & { driver: string })[];
  /** Stale expectation entries fail the run. */
  strictExpectations: boolean;
  summary: ConformanceSummary;
  /**
   * True iff nothing failed unexpectedly: no fail, no unexpected pass, every variant caught (and,
   * with `strictExpectations`, no stale expectation entry).
   */
  ok: boolean;
}

/** Counts statuses and decides `ok`. */
export function summarize(
  results: readonly ScenarioResult[],
  variants: readonly VariantVerdict[],
  stale: number,
  elapsedMs: number,
  strictExpectations = false,
): { summary: ConformanceSummary; ok: boolean } {
  const summary: ConformanceSummary = {
    pass: 0,
    fail: 0,
    skip: 0,
    xfail: 0,
    unexpectedPass: 0,
    notCaught: variants.filter((v) => !v.caught).length,
    stale,
    elapsedMs,
  };
  for (const r of results) {
    if (r.status === 'unexpected-pass') summary.unexpectedPass++;
    else summary[r.status]++;
  }
  return {
    summary,
    ok:
      summary.fail === 0 &&
      summary.unexpectedPass === 0 &&
      summary.notCaught === 0 &&
      !(strictExpectations && stale > 0),
  };
}

/** The report as JSON text (stable key order, two-space indentation). */
export function reportToJson(report: ConformanceReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
