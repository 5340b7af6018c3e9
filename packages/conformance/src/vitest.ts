/**
 * `@hmmkit/conformance/vitest`: run the whole kit inside a driver package's own vitest suite.
 *
 * ```ts
 * import { describeConformance } from '@hmmkit/conformance/vitest';
 * import { myDriver } from '../src/index.js';
 *
 * describeConformance(myDriver, { expectations: new URL('../expectations.json', import.meta.url) });
 * ```
 *
 * One test per scenario for the correct driver (skipped with the reason when the driver lacks a
 * capability), one test per bug variant ("is caught": scenarios run in order until one reports a
 * declared kind), a contract test and a stale-expectations test. A failing test's message carries
 * the violation, the exact replay command and the race diagram.
 */
import { describe, expect, it } from 'vitest';
import type { DriverModel } from './contract.js';
import { type Expectations, staleExpectations } from './expectations.js';
import { loadExpectations } from './expectations-file.js';
import type { ScenarioResult } from './report.js';
import { formatFailure } from './reporters/text.js';
import { runScenario, type ScenarioRunOptions } from './runner.js';
import { type Scenario, skipReason } from './scenario.js';
import { scenarios as defaultLibrary } from './scenarios/library.js';
import { validateDriver } from './validate.js';

export interface DescribeConformanceOptions extends Omit<ScenarioRunOptions, 'expectations'> {
  /** The expectations (parsed), or the path / URL of the driver's `expectations.json`. */
  expectations?: Expectations | string | URL | null;
  /** Scenario ids to run (default: all). */
  scenarios?: readonly string[];
  /** Bug variants to check (default true: all; false: none). */
  variants?: boolean | readonly string[];
  /** Fail on stale expectation entries (default true). */
  strictExpectations?: boolean;
  /** Title of the `describe` block (default `conformance: <driver>`). */
  title?: string;
  /** Per-test timeout in ms (default: generous for the budget). */
  timeout?: number;
  library?: readonly Scenario[];
}

/** The message of a failing conformance test: the violation, the replay command, the race diagram. */
export function conformanceFailureMessage(r: ScenarioResult): string {
  if (r.status === 'unexpected-pass') return `${r.driver} ${r.scenario}: unexpected pass: ${r.reason ?? ''}`;
  if (!r.failure) return `${r.driver} ${r.scenario}: ${r.status} ${r.reason ?? ''}`;
  return formatFailure(r, r.failure);
}

/** Declares the conformance suite of `driver` in the current vitest file. */
export function describeConformance(driver: DriverModel, options: DescribeConformanceOptions = {}): void {
  const problems = validateDriver(driver);
  const exp =
    options.expectations === undefined || options.expectations === null
      ? null
      : typeof options.expectations === 'string' || options.expectations instanceof URL
        ? loadExpectations(options.expectations)
        : options.expectations;
  const library = options.library ?? defaultLibrary;
  const chosen = options.scenarios ? library.filter((s) => options.scenarios!.includes(s.id)) : library;
  const runOptions: ScenarioRunOptions = { ...options, expectations: exp };
  const timeout = options.timeout ?? Math.max(60_000, (options.budget?.timeMs ?? 10_000) * 3);
  const name = problems.length ? 'driver' : driver.name;

  describe(options.title ?? `conformance: ${name}`, () => {
    it('satisfies the driver contract', () => {
      expect(problems, `invalid driver model:\n  ${problems.join('\n  ')}`).toEqual([]);
    });
    if (problems.length) return;

    if (exp) {
      it('has no stale expectation entries', () => {
        const stale = staleExpectations(exp, driver, library).map((s) => s.message);
        if (options.strictExpectations === false) return;
        expect(stale, `stale expectation entries:\n  ${stale.join('\n  ')}`).toEqual([]);
      });
    }

    for (const s of chosen) {
      const skip = skipReason(s, driver.supports);
      if (skip) {
        it.skip(`${s.id} (${skip})`, () => {});
        continue;
      }
      it(
        s.id,
        () => {
          const r = runScenario(driver, null, s, runOptions);
          if (r.status === 'fail' || r.status === 'unexpected-pass')
            throw new Error(conformanceFailureMessage(r));
        },
        timeout,
      );
    }

    const variants =
      options.variants === false
        ? []
        : driver.variants.filter(
            (v) =>
              options.variants === undefined ||
              options.variants === true ||
              (options.variants as readonly string[]).includes(v.name),
          );
    if (variants.length) {
      describe('bug variants', () => {
        for (const v of variants) {
          it(
            `${v.name} is caught (${v.expect.join(' | ')})`,
            () => {
              const applicable = chosen.filter((s) => !skipReason(s, driver.supports));
              for (const s of applicable) {
                const r = runScenario(driver, v.name, s, runOptions);
                if (r.status === 'fail' || r.status === 'unexpected-pass')
                  throw new Error(conformanceFailureMessage(r));
                if (r.catches) return;
              }
              throw new Error(
                `variant not caught: ${driver.name} [${v.name}] (${v.description}): no scenario of ${applicable.length} reported ${v.expect.join(' or ')}`,
              );
            },
            timeout * 4,
          );
        }
      });
    }
  });
}
