/**
 * The runner: for each scenario an exploration with a strategy portfolio within a budget; a
 * failure is shrunk, replayed with tracing for its race diagram, and judged against the
 * expectations and the variant's declared kinds. Deterministic given the seed, as long as the run
 * budget (not the time budget) ends each exploration.
 */
import {
  decodeSchedule,
  dfs,
  type ExploreResult,
  encodeSchedule,
  explore,
  type Failure,
  formatStrategy,
  monotonicClock,
  type Program,
  pct,
  type RunResult,
  random,
  renderRaceDiagram,
  replayRun,
  type StrategySpec,
  traceToJson,
} from '@hmmkit/sim';
import { defaultKitBudget, formatBudget, type KitBudget, validateBudget } from './budget.js';
import type { DriverModel } from './contract.js';
import { KIT_VERSION } from './contract.js';
import {
  type ExpectationEntry,
  type Expectations,
  entryAllows,
  entryKinds,
  expectationFor,
  type StaleExpectation,
  staleExpectations,
} from './expectations.js';
import {
  CONFORM_SCHEMA,
  type ConformanceReport,
  type ExplorationSummary,
  type FailureReport,
  type ScenarioResult,
  summarize,
  type VariantVerdict,
} from './report.js';
import { type Scenario, scenarioProgram, skipReason } from './scenario.js';
import { scenarios as defaultLibrary } from './scenarios/library.js';
import { shrinkSchedule } from './shrink.js';
import { validateDriver } from './validate.js';

/** Long runs (livelocks) show only their last steps in the race diagram. */
const DIAGRAM_TAIL = 60;

/** A bad argument to the kit's API (unknown scenario, unknown variant, invalid driver...). */
export class KitUsageError extends Error {
  constructor(
    message: string,
    readonly problems: string[] = [],
  ) {
    super(message);
    this.name = 'KitUsageError';
  }
}

/** Options of one scenario's exploration. */
export interface ScenarioRunOptions {
  /** Seed of the randomised strategies (default 0). */
  seed?: number;
  budget?: Partial<KitBudget>;
  /** One strategy instead of the default portfolio. */
  strategy?: StrategySpec;
  expectations?: Expectations | null;
  /** How the replay command names the driver (a bundled name or a module path; default its name). */
  driverRef?: string;
  /** The command prefix of printed replay commands (default `pnpm hmmkit`). */
  command?: string;
  /** Keep the traced run in the failure (`trace`). */
  traces?: boolean;
}

export interface ConformanceOptions extends ScenarioRunOptions {
  /** Scenario ids to run (default: all). */
  scenarios?: readonly string[];
  /**
   * Which builds to run: the correct driver (`null`), and/or variant names, or `'all'` for the
   * correct driver and every variant. Default: the correct driver only.
   */
  variants?: readonly (string | null)[] | 'all';
  /** For variants: stop at the first scenario that catches it (mutation testing). */
  stopWhenCaught?: boolean;
  /** The scenario library (default: the kit's). */
  library?: readonly Scenario[];
  /** Stale expectation entries fail the run (default: they are only reported). */
  strictExpectations?: boolean;
  /** Called before and after each scenario (progress bars). */
  onProgress?: (e: ProgressEvent) => void;
}

export type ProgressEvent =
  | { type: 'plan'; total: number }
  | { type: 'start'; index: number; total: number; driver: string; variant: string | null; scenario: string }
  | { type: 'result'; index: number; total: number; result: ScenarioResult };

/** The default portfolio for a scenario: PCT d=3 and random, then bounded dfs for small spaces. */
export function defaultPortfolio(
  scenario: Scenario,
  seed: number,
  runs: number,
): { strategy: StrategySpec; runs: number }[] {
  if (scenario.small) {
    const a = Math.max(1, Math.floor(runs * 0.4));
    const b = Math.max(1, Math.floor(runs * 0.4));
    return [
      { strategy: pct({ depth: 3, seed }), runs: a },
      { strategy: random(seed), runs: b },
      { strategy: dfs({ preemptionBound: 2 }), runs: Math.max(1, runs - a - b) },
    ];
  }
  const a = Math.max(1, Math.floor(runs / 2));
  return [
    { strategy: pct({ depth: 3, seed }), runs: a },
    { strategy: random(seed), runs: Math.max(1, runs - a) },
  ];
}

/** Shell-quotes one argument when it needs it. */
function quote(arg: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The command that replays a schedule of `scenario` for `driverRef` (and `variant`). */
export function replayCommand(
  driverRef: string,
  variant: string | null,
  scenario: string,
  schedule: string,
  budget: Readonly<KitBudget> = defaultKitBudget,
  command = 'pnpm hmmkit',
): string {
  const parts = [command, 'replay', '--driver', quote(driverRef)];
  if (variant) parts.push('--variant', quote(variant));
  parts.push('--scenario', quote(scenario), '--schedule', quote(schedule));
  if (budget.steps !== defaultKitBudget.steps) parts.push('--budget', `steps=${budget.steps}`);
  return parts.join(' ');
}

function checkVariant(driver: DriverModel, variant: string | null): void {
  if (variant !== null && !driver.variants.some((v) => v.name === variant)) {
    throw new KitUsageError(
      `driver '${driver.name}' has no variant '${variant}' (variants: ${driver.variants.map((v) => v.name).join(', ') || 'none'})`,
    );
  }
}

function findIn(library: readonly Scenario[], id: string): Scenario {
  const s = library.find((x) => x.id === id);
  if (!s) throw new KitUsageError(`no scenario '${id}' (scenarios: ${library.map((x) => x.id).join(', ')})`);
  return s;
}

function toFailureReport(
  program: Program,
  failure: Failure,
  ctx: {
    driverRef: string;
    variant: string | null;
    scenario: string;
    budget: KitBudget;
    strategy: string;
    runsBefore: number;
    timeToFailureMs: number;
    command: string;
    traces: boolean;
  },
): FailureReport {
  const found = decodeSchedule(failure.schedule);
  let choices = found;
  let run: RunResult = failure.trace;
  let shrink = {
    replays: 0,
    fromChoices: found.length,
    toChoices: found.length,
    fromSteps: failure.steps,
    toSteps: failure.steps,
  };
  if (failure.deterministic && ctx.budget.shrink > 0 && failure.violation.kind !== 'nondeterminism') {
    // A livelock replays its whole step budget every time, and needs every choice anyway.
    const livelock = failure.violation.kind === 'livelock';
    const s = shrinkSchedule(program, found, failure.violation.kind, failure.steps, {
      maxReplays: livelock ? Math.min(ctx.budget.shrink, 10) : ctx.budget.shrink,
      maxSteps: ctx.budget.steps,
      maxTimeMs: livelock ? 500 : 2_000,
    });
    shrink = {
      replays: s.replays,
      fromChoices: s.from,
      toChoices: s.to,
      fromSteps: s.fromSteps,
      toSteps: s.steps,
    };
    if (s.to < found.length || s.steps < failure.steps) {
      choices = s.choices;
      run = replayRun(program, s.schedule, { maxSteps: ctx.budget.steps });
    }
  }
  const schedule = choices === found ? failure.schedule : encodeSchedule(choices);
  // A failure whose replay differs only in names (module-global counters in a model) keeps its
  // kind, flagged not deterministic; one whose replay is a different run is 'nondeterminism'.
  const traced = run.violation;
  const sameRun = traced && traced.step === failure.violation.step && run.steps === failure.steps;
  const v = failure.deterministic || sameRun ? (traced ?? failure.violation) : failure.violation;
  return {
    kind: v.kind,
    message: v.message,
    step: v.step,
    threads: v.threads,
    objects: v.objects,
    ...(v.details ? { details: v.details } : {}),
    schedule,
    foundSchedule: failure.schedule,
    strategy: ctx.strategy,
    run: failure.run,
    ...(failure.seed === undefined ? {} : { seed: failure.seed }),
    runsToFailure: ctx.runsBefore + failure.run + 1,
    timeToFailureMs: ctx.timeToFailureMs,
    deterministic: failure.deterministic,
    shrink,
    replayCommand: replayCommand(ctx.driverRef, ctx.variant, ctx.scenario, schedule, ctx.budget, ctx.command),
    diagram: renderRaceDiagram(run, run.steps > DIAGRAM_TAIL * 2 ? { tail: DIAGRAM_TAIL } : {}),
    ...(ctx.traces ? { trace: traceToJson(run, schedule) } : {}),
  };
}

/** Judges a raw outcome against one expectations entry. */
function byEntry(
  entry: ExpectationEntry,
  failure: FailureReport | undefined,
): Pick<ScenarioResult, 'status' | 'reason' | 'expectedKinds'> {
  const kinds = entryKinds(entry);
  const expectedKinds = kinds ? { expectedKinds: [...kinds] } : {};
  if (!failure) {
    if (entryAllows(entry, 'PASS')) return { status: 'pass', reason: entry.reason };
    return {
      status: 'unexpected-pass',
      reason: `expected to fail${kinds ? ` with ${kinds.join(' or ')}` : ''} (${entry.reason}), but passed`,
      ...expectedKinds,
    };
  }
  if (entryAllows(entry, 'FAIL') && (!kinds || kinds.includes(failure.kind)))
    return { status: 'xfail', reason: entry.reason, ...expectedKinds };
  return {
    status: 'fail',
    reason: entryAllows(entry, 'FAIL')
      ? `expected to fail with ${kinds!.join(' or ')} (${entry.reason}), but failed with ${failure.kind}`
      : `expected to pass (${entry.reason}), but failed with ${failure.kind}`,
    ...expectedKinds,
  };
}

/**
 * Judges a raw outcome. The correct driver: by its expectations entry, else pass/fail. A variant:
 * by a variant-scoped entry if there is one; otherwise a failure with one of the variant's
 * declared kinds is an expected failure (the variant is caught), a failure the correct driver is
 * also expected to have is an expected failure too (not a catch), and any other failure fails.
 */
function judge(
  driver: DriverModel,
  variant: string | null,
  scenario: string,
  failure: FailureReport | undefined,
  exp: Expectations | null | undefined,
): Pick<ScenarioResult, 'status' | 'reason' | 'expectedKinds' | 'catches'> {
  const found = expectationFor(exp, variant, scenario);
  const declared = variant === null ? null : driver.variants.find((v) => v.name === variant)!.expect;
  if (found && (found.scope === 'variant' || variant === null)) {
    const j = byEntry(found.entry, failure);
    return declared && j.status === 'xfail' && declared.includes(failure!.kind) ? { ...j, catches: true } : j;
  }
  if (declared === null) return failure ? { status: 'fail' } : { status: 'pass' };
  if (!failure) return { status: 'pass' };
  // A failure the correct driver is expected to have too says nothing about the variant.
  if (found) {
    const inherited = byEntry(found.entry, failure);
    if (inherited.status === 'xfail')
      return { ...inherited, reason: `also expected of the correct driver: ${found.entry.reason}` };
  }
  if (declared.includes(failure.kind))
    return {
      status: 'xfail',
      reason: `variant '${variant}' caught`,
      expectedKinds: [...declared],
      catches: true,
    };
  return {
    status: 'fail',
    reason: `variant '${variant}' is declared to fail with ${declared.join(' or ')}, but failed with ${failure.kind}`,
    expectedKinds: [...declared],
  };
}

/**
 * Explores one scenario for one driver (variant null: the correct driver) and judges the result.
 * Throws {@link KitUsageError} for an unknown variant.
 */
export function runScenario(
  driver: DriverModel,
  variant: string | null,
  scenario: Scenario,
  options: ScenarioRunOptions = {},
): ScenarioResult {
  checkVariant(driver, variant);
  const seed = options.seed ?? 0;
  const budget = validateBudget(options.budget ?? {});
  const base = {
    driver: driver.name,
    variant,
    scenario: scenario.id,
    title: scenario.title,
    seed,
  };
  const skip = skipReason(scenario, driver.supports);
  if (skip) {
    return {
      ...base,
      status: 'skip',
      reason: skip,
      strategy: null,
      runs: 0,
      steps: 0,
      elapsedMs: 0,
      exhausted: false,
      explorations: [],
    };
  }
  const program = scenarioProgram(driver, variant, scenario);
  const plan = options.strategy
    ? [{ strategy: options.strategy, runs: budget.runs }]
    : defaultPortfolio(scenario, seed, Math.max(1, Math.round(budget.runs * (scenario.weight ?? 1))));
  const start = monotonicClock();
  const explorations: ExplorationSummary[] = [];
  let runs = 0;
  let steps = 0;
  let exhausted = false;
  let failure: FailureReport | undefined;
  let last: string | null = null;
  for (const step of plan) {
    const left = budget.timeMs - (monotonicClock() - start);
    if (left <= 0) break;
    const r: ExploreResult = explore(program, {
      strategy: step.strategy,
      budgets: { maxRuns: step.runs, maxTimeMs: left, maxSteps: budget.steps },
    });
    last = r.strategy;
    explorations.push({
      strategy: r.strategy,
      runs: r.runs,
      steps: r.steps,
      endedBy: r.endedBy,
      exhausted: r.exhausted,
      elapsedMs: Math.round(r.elapsedMs * 10) / 10,
    });
    const f = r.failures[0];
    if (f) {
      failure = toFailureReport(program, f, {
        driverRef: options.driverRef ?? driver.name,
        variant,
        scenario: scenario.id,
        budget,
        strategy: r.strategy,
        runsBefore: runs,
        timeToFailureMs: Math.round((monotonicClock() - start) * 10) / 10,
        command: options.command ?? 'pnpm hmmkit',
        traces: !!options.traces,
      });
    }
    runs += r.runs;
    steps += r.steps;
    if (r.exhausted) exhausted = true;
    if (failure || r.exhausted) break;
  }
  const verdict = judge(driver, variant, scenario.id, failure, options.expectations);
  return {
    ...base,
    ...verdict,
    strategy: last,
    runs,
    steps,
    elapsedMs: Math.round((monotonicClock() - start) * 10) / 10,
    exhausted,
    explorations,
    ...(failure ? { failure } : {}),
  };
}

/** Replays one schedule of a scenario with tracing on. */
export interface ReplayOutcome {
  run: RunResult;
  diagram: string;
  trace: ReturnType<typeof traceToJson>;
}

/**
 * Re-runs `schedule` of scenario `scenarioId` for `driver` (and `variant`). Throws
 * `ScheduleFormatError` for a malformed schedule, `StaleScheduleError` when it does not fit, and
 * {@link KitUsageError} for unknown names.
 */
export function replayScenario(
  driver: DriverModel,
  options: {
    variant?: string | null;
    scenario: string;
    schedule: string;
    steps?: number;
    library?: readonly Scenario[];
  },
): ReplayOutcome {
  const variant = options.variant ?? null;
  checkVariant(driver, variant);
  const scenario = findIn(options.library ?? defaultLibrary, options.scenario);
  const skip = skipReason(scenario, driver.supports);
  if (skip)
    throw new KitUsageError(`scenario '${scenario.id}' does not apply to driver '${driver.name}': ${skip}`);
  const program = scenarioProgram(driver, variant, scenario);
  const run = replayRun(program, options.schedule, { maxSteps: options.steps ?? defaultKitBudget.steps });
  const diagram = renderRaceDiagram(run, run.steps > DIAGRAM_TAIL * 2 ? { tail: DIAGRAM_TAIL } : {});
  return { run, diagram, trace: traceToJson(run, options.schedule.trim()) };
}

interface Job {
  driver: DriverModel;
  variant: string | null;
  scenario: Scenario;
}

function plan(driver: DriverModel, options: ConformanceOptions): Job[] {
  const problems = validateDriver(driver);
  if (problems.length) throw new KitUsageError(`invalid driver model:\n  ${problems.join('\n  ')}`, problems);
  const library = options.library ?? defaultLibrary;
  const chosen = options.scenarios ? options.scenarios.map((id) => findIn(library, id)) : library;
  const builds: (string | null)[] =
    options.variants === 'all'
      ? [null, ...driver.variants.map((v) => v.name)]
      : options.variants
        ? [...options.variants]
        : [null];
  for (const v of builds) checkVariant(driver, v);
  const jobs: Job[] = [];
  for (const variant of builds) for (const scenario of chosen) jobs.push({ driver, variant, scenario });
  return jobs;
}

/** A driver with its run options (for runs over several drivers). */
export interface DriverRun {
  driver: DriverModel;
  options?: ConformanceOptions;
}

/** Incremental report building, shared by the sync and async entry points. */
class ReportBuilder {
  readonly results: ScenarioResult[] = [];
  readonly verdicts: VariantVerdict[] = [];
  readonly stale: (StaleExpectation & { driver: string })[] = [];
  private readonly start = monotonicClock();

  constructor(readonly common: ConformanceOptions) {}

  jobs(runs: readonly DriverRun[]): { job: Job; options: ConformanceOptions }[] {
    const out: { job: Job; options: ConformanceOptions }[] = [];
    for (const r of runs) {
      const options = { ...this.common, ...r.options };
      for (const job of plan(r.driver, options)) out.push({ job, options });
      if (options.expectations) {
        for (const s of staleExpectations(options.expectations, r.driver, options.library ?? defaultLibrary))
          this.stale.push({ ...s, driver: r.driver.name });
      }
    }
    return out;
  }

  /** Whether the job can be skipped because its variant was already caught. */
  skippable(job: Job, options: ConformanceOptions): boolean {
    if (!options.stopWhenCaught || job.variant === null) return false;
    return this.results.some((r) => r.driver === job.driver.name && r.variant === job.variant && r.catches);
  }

  finish(runs: readonly DriverRun[]): ConformanceReport {
    for (const r of runs) {
      const options = { ...this.common, ...r.options };
      const builds = plan(r.driver, options).map((j) => j.variant);
      for (const name of new Set(builds)) {
        if (name === null) continue;
        const v = r.driver.variants.find((x) => x.name === name)!;
        const mine = this.results.filter((x) => x.driver === r.driver.name && x.variant === name);
        const caughtBy = mine.filter((x) => x.catches).map((x) => x.scenario);
        this.verdicts.push({
          driver: r.driver.name,
          variant: name,
          description: v.description,
          expect: [...v.expect],
          caught: caughtBy.length > 0,
          caughtBy,
          partial: !!options.stopWhenCaught,
        });
      }
    }
    const elapsedMs = Math.round(monotonicClock() - this.start);
    const strict = !!this.common.strictExpectations;
    const { summary, ok } = summarize(this.results, this.verdicts, this.stale.length, elapsedMs, strict);
    const budget = validateBudget(this.common.budget ?? {});
    return {
      schema: CONFORM_SCHEMA,
      kitVersion: KIT_VERSION,
      seed: this.common.seed ?? 0,
      budget,
      strategy: this.common.strategy ? formatStrategy(this.common.strategy) : null,
      drivers: runs.map((r) => ({
        name: r.driver.name,
        description: r.driver.description,
        supports: { ...r.driver.supports },
        variants: r.driver.variants.map((v) => v.name),
      })),
      results: this.results,
      variants: this.verdicts,
      stale: this.stale,
      strictExpectations: strict,
      summary,
      ok,
    };
  }
}

/** Runs the kit over one or more drivers, synchronously. */
export function runConformance(
  drivers: DriverModel | readonly DriverRun[],
  options: ConformanceOptions = {},
): ConformanceReport {
  const runs: readonly DriverRun[] = Array.isArray(drivers) ? drivers : [{ driver: drivers as DriverModel }];
  const b = new ReportBuilder(options);
  const jobs = b.jobs(runs);
  options.onProgress?.({ type: 'plan', total: jobs.length });
  jobs.forEach(({ job, options: o }, index) => {
    if (b.skippable(job, o)) return;
    o.onProgress?.({
      type: 'start',
      index,
      total: jobs.length,
      driver: job.driver.name,
      variant: job.variant,
      scenario: job.scenario.id,
    });
    const result = runScenario(job.driver, job.variant, job.scenario, o);
    b.results.push(result);
    o.onProgress?.({ type: 'result', index, total: jobs.length, result });
  });
  return b.finish(runs);
}

/** Same as {@link runConformance}, yielding to the event loop between scenarios (progress bars). */
export async function runConformanceAsync(
  drivers: DriverModel | readonly DriverRun[],
  options: ConformanceOptions = {},
): Promise<ConformanceReport> {
  const runs: readonly DriverRun[] = Array.isArray(drivers) ? drivers : [{ driver: drivers as DriverModel }];
  const b = new ReportBuilder(options);
  const jobs = b.jobs(runs);
  options.onProgress?.({ type: 'plan', total: jobs.length });
  for (let index = 0; index < jobs.length; index++) {
    const { job, options: o } = jobs[index]!;
    if (b.skippable(job, o)) continue;
    o.onProgress?.({
      type: 'start',
      index,
      total: jobs.length,
      driver: job.driver.name,
      variant: job.variant,
      scenario: job.scenario.id,
    });
    // Let the event loop paint the progress bar between scenarios; runs never look at time.
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
    const result = runScenario(job.driver, job.variant, job.scenario, o);
    b.results.push(result);
    o.onProgress?.({ type: 'result', index, total: jobs.length, result });
  }
  return b.finish(runs);
}

export { formatBudget };
