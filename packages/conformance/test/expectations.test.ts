import { describe, expect, it } from 'vitest';
import {
  type Expectations,
  ExpectationsError,
  findExpectationsFile,
  loadExpectations,
  parseExpectations,
  runConformance,
  scenarios,
  staleExpectations,
} from '../src/index.js';
import { fixtureDriver } from './fixtures/mirror-driver.js';
import { quick } from './helpers.js';

const sample = new URL('./fixtures/expectations-sample.json', import.meta.url);

describe('expectations files', () => {
  it('loads and validates a file', () => {
    const e = loadExpectations(sample);
    expect(e.scenarios?.['munmap/read']?.kind).toBe('stale-mapping');
  });

  it('lists every problem of a malformed file', () => {
    try {
      parseExpectations({ scenarios: { x: { expected: 'MAYBE' } }, extra: 1 }, 'e.json');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ExpectationsError);
      const p = (e as ExpectationsError).problems;
      expect(p).toContain(
        'e.json: unknown top-level field "extra" (expected schema, driver, scenarios, variants)',
      );
      expect(p).toContain('e.json: scenarios["x"]: "expected" must be "FAIL", "PASS" or ["PASS", "FAIL"]');
      expect(p).toContain('e.json: scenarios["x"]: "reason" is required (say why the result is expected)');
    }
  });

  it('reports stale entries: unknown scenarios, unknown variants, scenarios the driver skips', () => {
    const stale = staleExpectations(loadExpectations(sample), fixtureDriver, scenarios).map((s) => s.message);
    expect(stale).toEqual([
      "no scenario 'no/such-scenario' exists",
      "scenario 'atomic/cpu-write' is skipped for this driver (requires atomics (not in the driver's `supports`))",
      "no variant 'no-such-variant' exists in driver 'fixture-mirror'",
    ]);
  });

  it('finds <module>.expectations.json next to a module', () => {
    expect(findExpectationsFile(new URL('./fixtures/mirror-driver.ts', import.meta.url).pathname)).toBe(
      new URL('./fixtures/mirror-driver.expectations.json', import.meta.url).pathname,
    );
  });
});

describe('judging results against expectations', () => {
  const failing: Expectations = {
    scenarios: {
      'mprotect/write': { expected: 'FAIL', kind: 'stale-mapping', reason: 'known: bug 12' },
    },
    variants: {
      'retry-before-lock': {
        'mprotect/write': { expected: 'FAIL', kind: 'data-integrity', reason: 'how it must fail' },
      },
    },
  };

  it('an expected failure of the correct driver that does not happen is an unexpected pass, and fails the run', () => {
    const r = runConformance(fixtureDriver, {
      budget: quick,
      scenarios: ['mprotect/write'],
      expectations: failing,
    });
    expect(r.results[0]!.status).toBe('unexpected-pass');
    expect(r.results[0]!.reason).toBe('expected to fail with stale-mapping (known: bug 12), but passed');
    expect(r.ok).toBe(false);
  });

  it('a failure that matches the entry is an xfail; one of another kind fails', () => {
    const xf = runConformance(fixtureDriver, {
      budget: quick,
      scenarios: ['mprotect/write'],
      variants: ['no-clear'],
      expectations: {
        variants: {
          'no-clear': { 'mprotect/write': { expected: 'FAIL', kind: 'stale-mapping', reason: 'r' } },
        },
      },
    });
    expect(xf.results[0]!.status).toBe('xfail');
    expect(xf.ok).toBe(true);
    const wrong = runConformance(fixtureDriver, {
      budget: quick,
      scenarios: ['mprotect/write'],
      variants: ['retry-before-lock'],
      expectations: failing,
    });
    expect(wrong.results[0]!.status).toBe('fail');
    expect(wrong.results[0]!.reason).toMatch(
      /expected to fail with data-integrity \(how it must fail\), but failed with stale-mapping/,
    );
    expect(wrong.ok).toBe(false);
  });

  it('a variant fails the run when no scenario catches it ("variant not caught")', () => {
    const r = runConformance(fixtureDriver, {
      budget: quick,
      scenarios: ['touch/write'],
      variants: ['no-clear'],
    });
    expect(r.results[0]!.status).toBe('pass');
    expect(r.variants).toEqual([
      expect.objectContaining({ variant: 'no-clear', caught: false, caughtBy: [] }),
    ]);
    expect(r.summary.notCaught).toBe(1);
    expect(r.ok).toBe(false);
  });

  it('stale entries are reported, and fail the run only with strictExpectations', () => {
    const e = loadExpectations(sample);
    const lax = runConformance(fixtureDriver, { budget: quick, scenarios: ['touch/write'], expectations: e });
    expect(lax.stale.length).toBe(3);
    expect(lax.ok).toBe(true);
    const strict = runConformance(fixtureDriver, {
      budget: quick,
      scenarios: ['touch/write'],
      expectations: e,
      strictExpectations: true,
    });
    expect(strict.ok).toBe(false);
  });
});
