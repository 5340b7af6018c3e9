/**
 * The `hmmkit` command: `list`, `conform`, `explore`, `replay`, `power`.
 *
 * Exit codes: 0 nothing failed unexpectedly (or: the replayed run ended cleanly); 1 something
 * failed (an unexpected failure or pass, a variant not caught; for `replay`/`explore`, the run
 * ended in a violation); 2 bad arguments, unknown names, a malformed or stale schedule, a driver
 * module that does not satisfy the contract.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  BudgetError,
  type ConformanceReport,
  type DriverRun,
  defaultKitBudget,
  ExpectationsError,
  formatPowerTable,
  formatText,
  KIT_VERSION,
  type KitBudget,
  KitUsageError,
  measurePower,
  parseBudget,
  replayScenario,
  reportToJson,
  runConformanceAsync,
  runScenario,
  scenarios,
  skipReason,
  toJunitXml,
  violationKinds,
} from '@hmmkit/conformance';
import {
  ExploreOptionError,
  parseStrategy,
  ScheduleFormatError,
  StaleScheduleError,
  type StrategySpec,
} from '@hmmkit/sim';
import { SingleBar } from 'cli-progress';
import { Command, CommanderError } from 'commander';
import pc from 'picocolors';
import { isPath, type LoadedDriver, loadDriver, UsageError, userCwd } from './load.js';
import { bundledDrivers, type DriverUnavailableError, loadBundled } from './registry.js';

/** Where the command writes; tests pass their own. */
export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** Whether stderr is a terminal (progress bar) and stdout one (colours). */
  stderrIsTTY: boolean;
  stdoutIsTTY: boolean;
  env: Record<string, string | undefined>;
}

export function processIo(): Io {
  return {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    stderrIsTTY: !!process.stderr.isTTY,
    stdoutIsTTY: !!process.stdout.isTTY,
    env: process.env,
  };
}

const EXAMPLES = `
Examples:
  $ pnpm hmmkit list
  $ pnpm hmmkit conform                                    # every bundled driver, correct builds
  $ pnpm hmmkit conform --driver dmirror --variant all     # and every bug variant must be caught
  $ pnpm hmmkit conform --driver ./my-driver.js --junit results.xml
  $ pnpm hmmkit conform --driver dmirror --scenario fork/cow --budget runs=5000,time=30s
  $ pnpm hmmkit explore --driver dmirror --scenario munmap/read --strategy dfs --budget runs=20k
  $ pnpm hmmkit replay --driver dmirror --variant invalidate-no-clear --scenario munmap/read --schedule s1:1.0.1

Budgets (--budget): comma-separated key=value, any subset:
  runs=N     runs per scenario over the strategy portfolio (default ${defaultKitBudget.runs}; 2k = 2000)
  time=T     wall time per scenario: 500ms, 5s, 1m (default ${defaultKitBudget.timeMs / 1000}s)
  steps=N    steps per run; a longer run is reported as a livelock (default ${defaultKitBudget.steps})
  shrink=N   replays spent shrinking a failure (default ${defaultKitBudget.shrink}; 0 = off)

Strategies (--strategy): pct[:DEPTH[:SEED]], random[:SEED], dfs[:PREEMPTION_BOUND]. Without
--strategy each scenario runs the portfolio: PCT depth 3 and random, then a bounded dfs for
small scenarios.

Exit codes: 0 ok, 1 unexpected failure / variant not caught / replayed run failed, 2 usage error.
`;

/** Colours on a terminal, unless --no-color or NO_COLOR; FORCE_COLOR forces them. */
function colorsFor(io: Io, opt: { color?: boolean }) {
  const enabled =
    opt.color !== false &&
    (!!io.env.FORCE_COLOR || (io.stdoutIsTTY && !io.env.NO_COLOR && io.env.TERM !== 'dumb'));
  return pc.createColors(enabled);
}

function parseSeed(v: string): number {
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)))
    throw new UsageError(`--seed must be a non-negative integer, got '${v}'`);
  return Number(v);
}

function parseBudgetOpt(v: string | undefined): KitBudget {
  if (v === undefined) return { ...defaultKitBudget };
  try {
    return parseBudget(v);
  } catch (e) {
    if (e instanceof BudgetError) throw new UsageError(e.message);
    throw e;
  }
}

function parseStrategyOpt(v: string | undefined): StrategySpec | undefined {
  if (v === undefined) return undefined;
  try {
    const s = parseStrategy(v);
    if (s.kind === 'replay') throw new UsageError('use `hmmkit replay --schedule` to replay a schedule');
    return s;
  } catch (e) {
    if (e instanceof ExploreOptionError || e instanceof ScheduleFormatError) throw new UsageError(e.message);
    throw e;
  }
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

function checkScenarios(ids: readonly string[] | undefined): void {
  for (const id of ids ?? []) {
    if (!scenarios.some((s) => s.id === id)) {
      throw new UsageError(
        `unknown scenario '${id}' (see \`hmmkit list\`; scenarios: ${scenarios.map((s) => s.id).join(', ')})`,
      );
    }
  }
}

/** Builds the commander program; actions resolve to an exit code through `done`. */
export function buildProgram(io: Io, done: (code: number) => void): Command {
  const program = new Command('hmmkit');
  program
    .description('Conformance kit for models of Linux heterogeneous-memory drivers (hmmkit)')
    .version(`kit ${KIT_VERSION}`, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', EXAMPLES)
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .exitOverride();

  program
    .command('list')
    .description('list the bundled drivers, their variants and the scenarios')
    .option('--json', 'print JSON')
    .option('--no-color', 'no colours')
    .action(async (opts: { json?: boolean; color?: boolean }) => {
      const drivers: unknown[] = [];
      for (const b of bundledDrivers) {
        try {
          const d = await loadBundled(b);
          drivers.push({
            name: d.name,
            package: b.package,
            description: d.description,
            supports: d.supports,
            variants: d.variants.map((v) => ({
              name: v.name,
              description: v.description,
              expect: v.expect,
              source: v.source,
            })),
          });
        } catch (e) {
          drivers.push({
            name: b.name,
            package: b.package,
            unavailable: (e as DriverUnavailableError).message,
          });
        }
      }
      const list = scenarios.map((s) => ({
        id: s.id,
        title: s.title,
        requires: s.requires.map((r) => (typeof r === 'string' ? r : r.join('|'))),
        description: s.description,
      }));
      if (opts.json) {
        io.stdout(
          `${JSON.stringify({ kitVersion: KIT_VERSION, drivers, scenarios: list, violationKinds }, null, 2)}\n`,
        );
        return done(0);
      }
      const c = colorsFor(io, opts);
      const out: string[] = [c.bold('Bundled drivers')];
      for (const d of drivers as Record<string, unknown>[]) {
        if (d.unavailable) {
          out.push(`  ${d.name}  ${c.red(`(unavailable: ${d.unavailable as string})`)}`);
          continue;
        }
        const supports = Object.entries(d.supports as Record<string, unknown>)
          .filter(([, v]) => v)
          .map(([k, v]) => (v === true ? k : `${k}=${v}`))
          .join(', ');
        out.push(`  ${c.bold(d.name as string)}  ${c.dim(d.package as string)}  supports: ${supports}`);
        out.push(`    ${d.description as string}`);
        for (const v of d.variants as { name: string; description: string; expect: string[] }[]) {
          out.push(
            `    ${c.yellow(`--variant ${v.name}`)}  ${v.description} ${c.dim(`(expects ${v.expect.join(' | ')})`)}`,
          );
        }
      }
      out.push('', c.bold('Scenarios'));
      for (const s of list)
        out.push(`  ${c.cyan(s.id.padEnd(26))} ${s.title} ${c.dim(`[requires ${s.requires.join(', ')}]`)}`);
      io.stdout(`${out.join('\n')}\n`);
      done(0);
    });

  program
    .command('conform')
    .description(
      'run the conformance kit: every scenario on each driver (exit 0 iff nothing failed unexpectedly)',
    )
    .option(
      '-d, --driver <name|path>',
      'a bundled driver name, or a path to an ESM driver module (default: every bundled driver); repeatable',
      collect,
    )
    .option(
      '--variant <name>',
      "a bug variant to run ('all': the correct driver and every variant); it must be caught; repeatable",
      collect,
    )
    .option('-s, --scenario <id>', 'only this scenario; repeatable', collect)
    .option(
      '--strategy <spec>',
      'one strategy instead of the portfolio: pct[:D[:SEED]], random[:SEED], dfs[:BOUND]',
    )
    .option('--seed <n>', 'seed of the randomised strategies', '0')
    .option('--budget <spec>', 'e.g. runs=2000,time=5s,steps=10000,shrink=200')
    .option('--expectations <file>', "expectations file (default: the driver's expectations.json)")
    .option('--no-expectations', 'ignore expectation files')
    .option('--strict-expectations', 'stale expectation entries fail the run')
    .option('--stop-when-caught', 'for variants: stop at the first scenario that catches it')
    .option('--json', 'print the JSON report (schema hmmkit.conform/1) instead of text')
    .option('--junit <file>', 'also write a JUnit XML report to FILE')
    .option('-v, --verbose', 'race diagrams for expected failures too')
    .option('--no-progress', 'no progress bar')
    .option('--no-color', 'no colours')
    .action(async (opts: Record<string, unknown>) => {
      const seed = parseSeed(opts.seed as string);
      const budget = parseBudgetOpt(opts.budget as string | undefined);
      const strategy = parseStrategyOpt(opts.strategy as string | undefined);
      const scenarioIds = opts.scenario as string[] | undefined;
      checkScenarios(scenarioIds);
      const specs = (opts.driver as string[] | undefined) ?? bundledDrivers.map((b) => b.name);
      const expFlag = opts.expectations === false ? false : (opts.expectations as string | undefined);
      if (expFlag && specs.length !== 1) throw new UsageError('--expectations needs exactly one --driver');
      const variantOpt = opts.variant as string[] | undefined;
      const runs: DriverRun[] = [];
      for (const spec of specs) {
        const loaded: LoadedDriver = await loadDriver(spec, expFlag);
        let variants: (string | null)[] | 'all' = [null];
        if (variantOpt) {
          if (variantOpt.includes('all')) variants = 'all';
          else {
            for (const v of variantOpt) {
              if (!loaded.driver.variants.some((x) => x.name === v)) {
                throw new UsageError(
                  `driver '${loaded.driver.name}' has no variant '${v}' (variants: ${loaded.driver.variants.map((x) => x.name).join(', ') || 'none'})`,
                );
              }
            }
            variants = variantOpt;
          }
        }
        runs.push({
          driver: loaded.driver,
          options: { driverRef: loaded.ref, expectations: loaded.expectations, variants },
        });
      }
      const c = colorsFor(io, opts as { color?: boolean });
      const showBar = opts.progress !== false && io.stderrIsTTY && !opts.json;
      const bar = showBar
        ? new SingleBar(
            {
              format: ` {bar} {value}/{total}  {label}`,
              stream: process.stderr,
              clearOnComplete: true,
              hideCursor: true,
              barsize: 30,
            },
            { barCompleteChar: '█', barIncompleteChar: '░', format: '' },
          )
        : null;
      const report: ConformanceReport = await runConformanceAsync(runs, {
        seed,
        budget,
        ...(strategy ? { strategy } : {}),
        ...(scenarioIds ? { scenarios: scenarioIds } : {}),
        strictExpectations: !!opts.strictExpectations,
        stopWhenCaught: !!opts.stopWhenCaught,
        onProgress: (e) => {
          if (!bar) return;
          if (e.type === 'plan') bar.start(e.total, 0, { label: '' });
          else if (e.type === 'start')
            bar.update(e.index, { label: `${e.driver}${e.variant ? ` [${e.variant}]` : ''} ${e.scenario}` });
          else bar.update(e.index + 1);
        },
      });
      bar?.stop();
      if (opts.junit) {
        const file = resolve(userCwd(), opts.junit as string);
        writeFileSync(file, toJunitXml(report));
      }
      if (opts.json) io.stdout(reportToJson(report));
      else io.stdout(formatText(report, { colors: c, verbose: !!opts.verbose }));
      done(report.ok ? 0 : 1);
    });

  program
    .command('explore')
    .description(
      'explore one scenario with full control of the strategy and budgets (exit 1 if a failure is found)',
    )
    .requiredOption('-d, --driver <name|path>', 'a bundled driver name or a driver module path')
    .option('--variant <name>', 'a bug variant')
    .requiredOption('-s, --scenario <id>', 'the scenario')
    .option('--strategy <spec>', 'pct[:D[:SEED]], random[:SEED] or dfs[:BOUND] (default: the portfolio)')
    .option('--seed <n>', 'seed of the randomised strategies', '0')
    .option('--budget <spec>', 'e.g. runs=20k,time=1m,steps=10000')
    .option('--no-shrink', 'report the schedule as found')
    .option('--json', 'print the scenario result as JSON')
    .option('--no-color', 'no colours')
    .action(async (opts: Record<string, unknown>) => {
      const seed = parseSeed(opts.seed as string);
      const budget = parseBudgetOpt(opts.budget as string | undefined);
      if (opts.shrink === false) budget.shrink = 0;
      const strategy = parseStrategyOpt(opts.strategy as string | undefined);
      checkScenarios([opts.scenario as string]);
      const loaded = await loadDriver(opts.driver as string, false);
      const variant = (opts.variant as string | undefined) ?? null;
      if (variant && !loaded.driver.variants.some((v) => v.name === variant))
        throw new UsageError(`driver '${loaded.driver.name}' has no variant '${variant}'`);
      const scenario = scenarios.find((s) => s.id === opts.scenario)!;
      const skip = skipReason(scenario, loaded.driver.supports);
      if (skip)
        throw new UsageError(
          `scenario '${scenario.id}' does not apply to driver '${loaded.driver.name}': ${skip}`,
        );
      const r = runScenario(loaded.driver, variant, scenario, {
        seed,
        budget,
        ...(strategy ? { strategy } : {}),
        driverRef: loaded.ref,
      });
      if (opts.json) {
        io.stdout(`${JSON.stringify(r, null, 2)}\n`);
        return done(r.failure ? 1 : 0);
      }
      const c = colorsFor(io, opts as { color?: boolean });
      const lines = [
        `${c.bold(`${loaded.driver.name}${variant ? ` [${variant}]` : ''} ${scenario.id}`)}: ${scenario.title}`,
      ];
      for (const e of r.explorations) {
        lines.push(
          `  ${e.strategy.padEnd(12)} ${String(e.runs).padStart(6)} runs ${String(e.steps).padStart(9)} steps  ${e.elapsedMs.toFixed(0)} ms  ended by ${e.endedBy}${e.exhausted ? ' (whole space explored)' : ''}`,
        );
      }
      if (r.failure) {
        const f = r.failure;
        lines.push('', `${c.red(f.kind)}: ${f.message}`);
        lines.push(
          `  found by ${f.strategy} at run ${f.run + 1} (${f.runsToFailure} runs, ${f.timeToFailureMs} ms)`,
        );
        lines.push(
          `  schedule ${f.schedule}  (shrunk from ${f.shrink.fromChoices} to ${f.shrink.toChoices} choices)`,
        );
        lines.push(`  replay: ${c.cyan(f.replayCommand)}`, '');
        lines.push(f.diagram);
      } else {
        const last = r.explorations[r.explorations.length - 1];
        const covered = r.exhausted
          ? ' (every interleaving)'
          : last?.endedBy === 'exhausted'
            ? ' (every interleaving within the preemption bound)'
            : '';
        lines.push('', c.green(`no violation in ${r.runs} runs${covered}`));
      }
      io.stdout(`${lines.join('\n')}\n`);
      done(r.failure ? 1 : 0);
    });

  program
    .command('replay')
    .description(
      're-run one schedule of a scenario and print its race diagram (exit 1 if the run ends in a violation)',
    )
    .requiredOption('-d, --driver <name|path>', 'a bundled driver name or a driver module path')
    .option('--variant <name>', 'a bug variant')
    .requiredOption('-s, --scenario <id>', 'the scenario')
    .requiredOption('--schedule <s1:...>', 'the schedule printed by conform or explore')
    .option('--budget <spec>', 'only steps=N matters (must match the run that printed the schedule)')
    .option('--json', 'print the traced run as JSON (schema hmmkit.trace/1)')
    .action(async (opts: Record<string, unknown>) => {
      const budget = parseBudgetOpt(opts.budget as string | undefined);
      checkScenarios([opts.scenario as string]);
      const loaded = await loadDriver(opts.driver as string, false);
      let out: ReturnType<typeof replayScenario>;
      try {
        out = replayScenario(loaded.driver, {
          variant: (opts.variant as string | undefined) ?? null,
          scenario: opts.scenario as string,
          schedule: opts.schedule as string,
          steps: budget.steps,
        });
      } catch (e) {
        if (e instanceof ScheduleFormatError) throw new UsageError(e.message);
        if (e instanceof StaleScheduleError)
          throw new UsageError(`the schedule does not fit this driver and scenario: ${e.message}`);
        throw e;
      }
      if (opts.json) io.stdout(`${JSON.stringify(out.trace, null, 2)}\n`);
      else {
        const v = out.run.violation;
        io.stdout(
          `${out.diagram}\n\n${v ? `replayed: ${v.kind} after ${out.run.steps} steps` : `replayed: no violation (${out.run.steps} steps)`}\n`,
        );
      }
      done(out.run.violation ? 1 : 0);
    });

  program
    .command('power')
    .description("measure the kit's power on a driver's bug variants (which scenario catches each, how fast)")
    .option(
      '-d, --driver <name|path>',
      'a bundled driver name or a driver module path (default: every bundled driver)',
      collect,
    )
    .option('--variant <name>', 'only this variant; repeatable', collect)
    .option('--seeds <n>', 'seeds per scenario', '20')
    .option('--budget <spec>', 'budget per scenario and seed')
    .option('--json', 'print JSON')
    .action(async (opts: Record<string, unknown>) => {
      const seeds = parseSeed(opts.seeds as string);
      if (seeds < 1) throw new UsageError('--seeds must be at least 1');
      const budget = parseBudgetOpt(opts.budget as string | undefined);
      const specs = (opts.driver as string[] | undefined) ?? bundledDrivers.map((b) => b.name);
      const rows = [];
      for (const spec of specs) {
        const { driver } = await loadDriver(spec, false);
        rows.push(
          ...measurePower(driver, {
            seeds,
            budget,
            ...(opts.variant ? { variants: opts.variant as string[] } : {}),
            onProgress: (v, s) => {
              if (io.stderrIsTTY) io.stderr(`\r\x1b[2K  ${driver.name} [${v}] ${s}`);
            },
          }),
        );
      }
      if (io.stderrIsTTY) io.stderr('\r\x1b[2K');
      io.stdout(opts.json ? `${JSON.stringify(rows, null, 2)}\n` : formatPowerTable(rows));
      done(rows.every((r) => r.caught) ? 0 : 1);
    });

  return program;
}

/** Runs the command line `argv` (without `node` and the script); resolves to the exit code. */
export async function main(argv: readonly string[], io: Io = processIo()): Promise<number> {
  let code = 0;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  if (argv.length === 0) {
    io.stderr(program.helpInformation());
    return 2;
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        return 0;
      return 2; // commander already printed the message
    }
    if (
      e instanceof UsageError ||
      e instanceof KitUsageError ||
      e instanceof ExpectationsError ||
      e instanceof BudgetError ||
      e instanceof ExploreOptionError
    ) {
      io.stderr(`hmmkit: error: ${e.message}\n`);
      return 2;
    }
    io.stderr(`hmmkit: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return 3;
  }
}

export { isPath, loadDriver, UsageError };
