/**
 * Expected results, per driver: which scenarios are known to fail (with the violation kind and
 * the reason), for the correct driver and per bug variant. WPT / test262 style: an expected
 * failure is reported as `xfail`, an unexpected pass fails the run, a failure of a different kind
 * than expected fails the run, and entries naming scenarios or variants that do not exist (or a
 * scenario the driver skips) are reported as stale.
 *
 * The file is `expectations.json` next to the driver package's `package.json`:
 *
 * ```json
 * {
 *   "schema": "hmmkit.expectations/1",
 *   "driver": "dmirror",
 *   "scenarios": {
 *     "oom-reap/read": { "expected": "FAIL", "kind": "block-in-nonblockable", "reason": "..." }
 *   },
 *   "variants": {
 *     "no-clear": { "fork/cow": { "expected": "FAIL", "kind": "data-integrity", "reason": "..." } }
 *   }
 * }
 * ```
 */
import type { DriverModel } from './contract.js';
import { type Scenario, skipReason } from './scenario.js';

export const EXPECTATIONS_SCHEMA = 'hmmkit.expectations/1';

/** One expected result. */
export interface ExpectationEntry {
  /** `FAIL`, `PASS` (documents a pass; mostly useful per variant), or both (intermittent). */
  expected: 'FAIL' | 'PASS' | readonly ('PASS' | 'FAIL')[];
  /** The violation kind(s) the failure must have; any kind when omitted. */
  kind?: string | readonly string[];
  /** Why: a bug link, a kernel commit, a sentence. Required. */
  reason: string;
}

export interface Expectations {
  schema?: string;
  /** The driver the file belongs to (checked when present). */
  driver?: string;
  /** Expectations of the correct driver, by scenario id. */
  scenarios?: Readonly<Record<string, ExpectationEntry>>;
  /** Expectations per variant, by variant name then scenario id. */
  variants?: Readonly<Record<string, Readonly<Record<string, ExpectationEntry>>>>;
}

/** A malformed expectations file. */
export class ExpectationsError extends Error {
  constructor(
    message: string,
    readonly problems: string[],
  ) {
    super(message);
    this.name = 'ExpectationsError';
  }
}

function checkEntry(where: string, e: unknown, problems: string[]): void {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) {
    problems.push(`${where}: must be an object { expected, kind?, reason }`);
    return;
  }
  const r = e as Record<string, unknown>;
  const ok = (v: unknown) => v === 'PASS' || v === 'FAIL';
  if (!(ok(r.expected) || (Array.isArray(r.expected) && r.expected.length > 0 && r.expected.every(ok))))
    problems.push(`${where}: "expected" must be "FAIL", "PASS" or ["PASS", "FAIL"]`);
  if (
    r.kind !== undefined &&
    typeof r.kind !== 'string' &&
    !(Array.isArray(r.kind) && r.kind.every((k) => typeof k === 'string'))
  )
    problems.push(`${where}: "kind" must be a violation kind or a list of them`);
  if (typeof r.reason !== 'string' || r.reason.trim() === '')
    problems.push(`${where}: "reason" is required (say why the result is expected)`);
  for (const k of Object.keys(r)) {
    if (!['expected', 'kind', 'reason', 'bug'].includes(k)) problems.push(`${where}: unknown field "${k}"`);
  }
}

/** Validates parsed JSON as an expectations file; throws {@link ExpectationsError} listing every problem. */
export function parseExpectations(json: unknown, source = 'expectations'): Expectations {
  const problems: string[] = [];
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ExpectationsError(`${source}: must be a JSON object`, [`${source}: must be a JSON object`]);
  }
  const r = json as Record<string, unknown>;
  if (r.schema !== undefined && r.schema !== EXPECTATIONS_SCHEMA)
    problems.push(`${source}: schema must be "${EXPECTATIONS_SCHEMA}", got ${JSON.stringify(r.schema)}`);
  if (r.driver !== undefined && typeof r.driver !== 'string')
    problems.push(`${source}: "driver" must be a string`);
  for (const k of Object.keys(r)) {
    if (!['schema', 'driver', 'scenarios', 'variants', '$comment'].includes(k))
      problems.push(
        `${source}: unknown top-level field "${k}" (expected schema, driver, scenarios, variants)`,
      );
  }
  const section = (obj: unknown, where: string) => {
    if (obj === undefined) return;
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      problems.push(`${where}: must be an object keyed by scenario id`);
      return;
    }
    for (const [id, e] of Object.entries(obj)) checkEntry(`${where}["${id}"]`, e, problems);
  };
  section(r.scenarios, `${source}: scenarios`);
  if (r.variants !== undefined) {
    if (r.variants === null || typeof r.variants !== 'object' || Array.isArray(r.variants)) {
      problems.push(`${source}: variants must be an object keyed by variant name`);
    } else {
      for (const [v, s] of Object.entries(r.variants)) section(s, `${source}: variants["${v}"]`);
    }
  }
  if (problems.length)
    throw new ExpectationsError(`${source} is malformed:\n  ${problems.join('\n  ')}`, problems);
  return r as Expectations;
}

/** An entry that names something that does not exist or cannot apply. */
export interface StaleExpectation {
  variant: string | null;
  scenario: string | null;
  message: string;
}

/** The entries of `exp` that are stale for `driver` and the scenario `library`. */
export function staleExpectations(
  exp: Expectations,
  driver: DriverModel,
  library: readonly Scenario[],
): StaleExpectation[] {
  const out: StaleExpectation[] = [];
  if (exp.driver !== undefined && exp.driver !== driver.name) {
    out.push({
      variant: null,
      scenario: null,
      message: `the expectations are for driver '${exp.driver}', not '${driver.name}'`,
    });
  }
  const byId = new Map(library.map((s) => [s.id, s]));
  const check = (variant: string | null, entries: Readonly<Record<string, ExpectationEntry>>) => {
    for (const id of Object.keys(entries)) {
      const s = byId.get(id);
      const who = variant ? `variant '${variant}': ` : '';
      if (!s) out.push({ variant, scenario: id, message: `${who}no scenario '${id}' exists` });
      else {
        const skip = skipReason(s, driver.supports);
        if (skip)
          out.push({
            variant,
            scenario: id,
            message: `${who}scenario '${id}' is skipped for this driver (${skip})`,
          });
      }
    }
  };
  check(null, exp.scenarios ?? {});
  const names = new Set(driver.variants.map((v) => v.name));
  for (const [v, entries] of Object.entries(exp.variants ?? {})) {
    if (!names.has(v))
      out.push({
        variant: v,
        scenario: null,
        message: `no variant '${v}' exists in driver '${driver.name}'`,
      });
    else check(v, entries);
  }
  return out;
}

/** The entry that applies to `scenario` of `variant` (variant entries first), with where it came from. */
export function expectationFor(
  exp: Expectations | null | undefined,
  variant: string | null,
  scenario: string,
): { entry: ExpectationEntry; scope: 'driver' | 'variant' } | null {
  if (!exp) return null;
  if (variant) {
    const e = exp.variants?.[variant]?.[scenario];
    if (e) return { entry: e, scope: 'variant' };
  }
  const e = exp.scenarios?.[scenario];
  return e ? { entry: e, scope: 'driver' } : null;
}

/** The kinds an entry accepts, or null for any. */
export function entryKinds(e: ExpectationEntry): readonly string[] | null {
  if (e.kind === undefined) return null;
  return typeof e.kind === 'string' ? [e.kind] : e.kind;
}

/** Whether an entry allows a pass / a failure. */
export function entryAllows(e: ExpectationEntry, outcome: 'PASS' | 'FAIL'): boolean {
  return typeof e.expected === 'string' ? e.expected === outcome : e.expected.includes(outcome);
}
