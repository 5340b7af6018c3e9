/**
 * The explorer: runs a program many times under a strategy, within budgets, and reports every
 * violation with a replayable schedule and a traced re-run.
 */
import { type Program, type RunResult, Sim, type SimOptions, StaleScheduleError } from '../core/sim.js';
import type { Violation } from '../core/violation.js';
import { ReplayChooser } from './choosers.js';
import { type Clock, monotonicClock } from './clock.js';
import { decodeSchedule, encodeSchedule } from './schedule.js';
import {
  createStrategy,
  ExploreOptionError,
  formatStrategy,
  pct,
  type StrategySpec,
  show,
  validateStrategy,
} from './strategy.js';

/** Limits of one exploration. Whichever runs out first ends it, and the result names it. */
export interface Budgets {
  /** Steps per run; a run that exceeds it is reported as a possible livelock. Default 10,000. */
  maxSteps?: number;
  /** Runs. Default 1,000. */
  maxRuns?: number;
  /** Wall time in milliseconds. Default 10,000. */
  maxTimeMs?: number;
  /** Steps over all runs. Default unlimited. */
  maxTotalSteps?: number;
}

export const defaultBudgets: Required<Budgets> = {
  maxSteps: 10_000,
  maxRuns: 1_000,
  maxTimeMs: 10_000,
  maxTotalSteps: Number.MAX_SAFE_INTEGER,
};

export interface ExploreOptions {
  /** Default: `pct({ depth: 3, seed: 0 })`. */
  strategy?: StrategySpec;
  budgets?: Budgets;
  /** Stop at the first failing run (default true); otherwise collect up to `maxFailures`. */
  stopOnFailure?: boolean;
  maxFailures?: number;
  /** Re-run every failure from its schedule and compare (default true). */
  checkDeterminism?: boolean;
  /** Simulator options for every run (fault injection, snapshots in the traced re-run). */
  sim?: Partial<Omit<SimOptions, 'maxSteps' | 'trace'>>;
  /** Time source for the time budget (tests inject a fake one). */
  clock?: Clock;
}

/** One failing run. */
export interface Failure {
  violation: Violation;
  /** Replay string: `replay(schedule)` or `hmmkit replay --schedule`. */
  schedule: string;
  /** Index of the run in the exploration (0-based). */
  run: number;
  /** Seed of that run, for randomised strategies. */
  seed?: number;
  steps: number;
  /** The failure re-run from its schedule with tracing on (events for the race diagram). */
  trace: RunResult;
  /** Whether the traced re-run reproduced the failure exactly (same steps, results, violation). */
  deterministic: boolean;
}

/** Which budget ended an exploration, or why it ended otherwise. */
export type EndReason = 'exhausted' | 'failure' | 'runs' | 'time' | 'steps';

export interface ExploreResult {
  program: string;
  strategy: string;
  endedBy: EndReason;
  /** True when an exhaustive strategy covered its whole space. */
  exhausted: boolean;
  /** Runs made, including pruned ones. */
  runs: number;
  /** Runs that ran to the end (not pruned as redundant by DPOR). */
  completedRuns: number;
  prunedRuns: number;
  steps: number;
  elapsedMs: number;
  failures: Failure[];
}

function validateBudgets(b: Budgets): Required<Budgets> {
  const out = { ...defaultBudgets };
  for (const key of Object.keys(b) as (keyof Budgets)[]) {
    const v = b[key];
    if (v === undefined) continue;
    if (!(key in defaultBudgets)) throw new ExploreOptionError(`unknown budget '${key}'`);
    if (typeof v !== 'number' || !(v > 0) || (key !== 'maxTimeMs' && !Number.isSafeInteger(v))) {
      throw new ExploreOptionError(
        `budget ${key} must be a positive ${key === 'maxTimeMs' ? 'number' : 'integer'}, got ${show(v)}`,
      );
    }
    out[key] = v;
  }
  return out;
}

/** Explores `program`. Throws only for bad options or a stale replay schedule. */
export function explore(program: Program, options: ExploreOptions = {}): ExploreResult {
  const spec = options.strategy ?? pct({ depth: 3, seed: 0 });
  validateStrategy(spec);
  const budgets = validateBudgets(options.budgets ?? {});
  const clock = options.clock ?? monotonicClock;
  const stopOnFailure = options.stopOnFailure ?? true;
  const maxFailures = options.maxFailures ?? (stopOnFailure ? 1 : 100);
  const runner = createStrategy(spec);
  const start = clock();
  const failures: Failure[] = [];
  let runs = 0;
  let pruned = 0;
  let steps = 0;
  let endedBy: EndReason | null = null;
  const simOptions = { ...program.options, ...options.sim, maxSteps: budgets.maxSteps, trace: false };

  while (endedBy === null) {
    // Asked first, so a space covered by the very last run the budgets allow reads as exhausted.
    const chooser = runner.next(runs);
    if (!chooser) {
      endedBy = 'exhausted';
      break;
    }
    if (runs >= budgets.maxRuns) {
      endedBy = 'runs';
      break;
    }
    if (steps >= budgets.maxTotalSteps) {
      endedBy = 'steps';
      break;
    }
    if (runs > 0 && clock() - start >= budgets.maxTimeMs) {
      endedBy = 'time';
      break;
    }
    let result: RunResult;
    try {
      result = new Sim(simOptions).run(program, chooser);
    } catch (e) {
      if (e instanceof StaleScheduleError && spec.kind !== 'replay') {
        result = nondeterminismResult(program, e.message, steps);
      } else {
        throw e;
      }
    }
    if (chooser instanceof ReplayChooser && chooser.unused() > 0 && result.status !== 'violation') {
      throw new StaleScheduleError(
        `stale schedule: the run finished with ${chooser.unused()} choices of the schedule unused. Was the program changed since the schedule was recorded?`,
      );
    }
    runner.done(result, chooser);
    const index = runs++;
    steps += result.steps;
    if (result.status === 'pruned') pruned++;
    if (result.status === 'violation') {
      failures.push(
        makeFailure(
          program,
          result,
          index,
          runner.seedOf?.(index),
          simOptions,
          options.checkDeterminism ?? true,
        ),
      );
      if (failures.length >= maxFailures) endedBy = 'failure';
    }
  }
  return {
    program: program.name,
    strategy: formatStrategy(spec),
    endedBy,
    exhausted: endedBy === 'exhausted' && runner.exhaustive,
    runs,
    completedRuns: runs - pruned,
    prunedRuns: pruned,
    steps,
    elapsedMs: clock() - start,
    failures,
  };
}

function nondeterminismResult(program: Program, message: string, _steps: number): RunResult {
  return {
    program: program.name,
    status: 'violation',
    violation: {
      kind: 'nondeterminism',
      message: `uncontrolled nondeterminism: ${message}`,
      step: -1,
      threads: [],
      objects: [],
    },
    steps: 0,
    choices: [],
    significant: 0,
    hash: 0,
    threads: [],
  };
}

function makeFailure(
  program: Program,
  result: RunResult,
  run: number,
  seed: number | undefined,
  simOptions: Partial<SimOptions>,
  check: boolean,
): Failure {
  const choices = result.choices.slice(0, result.significant);
  const schedule = encodeSchedule(choices);
  let trace: RunResult;
  let deterministic = true;
  try {
    trace = runOnce(program, choices, { ...simOptions, trace: true });
    if (check) {
      deterministic =
        trace.hash === result.hash &&
        trace.steps === result.steps &&
        trace.violation?.kind === result.violation?.kind &&
        trace.violation?.message === result.violation?.message;
    }
  } catch (e) {
    trace = { ...result };
    deterministic = false;
    if (!(e instanceof StaleScheduleError)) throw e;
  }
  const violation =
    deterministic || result.violation?.kind === 'nondeterminism'
      ? result.violation!
      : {
          kind: 'nondeterminism',
          message: `uncontrolled nondeterminism: replaying the schedule of a '${result.violation!.kind}' failure gave a different run (${trace.violation ? `'${trace.violation.kind}'` : 'no violation'} after ${trace.steps} steps, originally ${result.steps})`,
          step: result.violation!.step,
          threads: result.violation!.threads,
          objects: result.violation!.objects,
          details: [`original: ${result.violation!.message}`],
        };
  return {
    violation,
    schedule,
    run,
    ...(seed === undefined ? {} : { seed }),
    steps: result.steps,
    trace,
    deterministic,
  };
}

/** Runs the program once following `choices` (then the default policy). */
export function runOnce(
  program: Program,
  choices: readonly number[],
  simOptions: Partial<SimOptions> = {},
): RunResult {
  const chooser = new ReplayChooser(choices);
  const result = new Sim({ ...program.options, ...simOptions }).run(program, chooser);
  if (chooser.unused() > 0 && result.status !== 'violation') {
    throw new StaleScheduleError(
      `stale schedule: the run finished with ${chooser.unused()} choices of the schedule unused. Was the program changed since the schedule was recorded?`,
    );
  }
  return result;
}

/**
 * Replays a schedule string with tracing on. Throws `ScheduleFormatError` for a malformed string
 * and `StaleScheduleError` when it does not fit the program.
 */
export function replayRun(
  program: Program,
  schedule: string,
  simOptions: Partial<SimOptions> = {},
): RunResult {
  return runOnce(program, decodeSchedule(schedule), { trace: true, ...simOptions });
}
