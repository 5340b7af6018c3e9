/**
 * The bundled nouveau driver (@hmmkit/driver-nouveau) under the kit, through the CLI's registry:
 * the correct driver passes (given its expectations.json), every bug variant is caught with one of
 * its declared kinds by the kit's library, and the printed replay command reproduces it.
 */
import { loadExpectations, runConformance } from '@hmmkit/conformance';
import { describe, expect, it } from 'vitest';
import { bundledDrivers, bundledExpectationsPath, loadBundled } from '../src/registry.js';
import { commandArgs, run } from './helpers.js';

const entry = bundledDrivers.find((b) => b.name === 'nouveau')!;
const driver = await loadBundled(entry);
const expectations = loadExpectations(bundledExpectationsPath(entry)!);
const budget = { runs: 150, timeMs: 5_000, shrink: 60 };

describe('nouveau under the kit', () => {
  it('the correct driver passes every scenario (expected failures aside)', () => {
    const report = runConformance([{ driver, options: { driverRef: 'nouveau', expectations } }], { budget });
    const bad = report.results.filter((r) => r.status === 'fail' || r.status === 'unexpected-pass');
    expect(
      bad.map(
        (r) =>
          `${r.scenario}: ${r.status} ${r.failure?.kind ?? ''} ${r.failure?.replayCommand ?? r.reason ?? ''}`,
      ),
    ).toEqual([]);
    expect(report.ok).toBe(true);
  });

  const variants = runConformance(
    [
      {
        driver,
        options: { driverRef: 'nouveau', expectations, variants: driver.variants.map((v) => v.name) },
      },
    ],
    { budget, stopWhenCaught: true },
  );
  for (const v of driver.variants) {
    it(`--variant ${v.name} fails with one of ${v.expect.join(', ')}, and its replay command reproduces it`, async () => {
      const verdict = variants.variants.find((x) => x.variant === v.name)!;
      expect(verdict.caught, `${v.name} not caught`).toBe(true);
      const r = variants.results.find((x) => x.variant === v.name && x.catches)!;
      const f = r.failure!;
      expect(v.expect).toContain(f.kind);
      const again = await run(commandArgs(f.replayCommand));
      expect(again.code).toBe(1);
      expect(again.stdout).toContain(`replayed: ${f.kind} after ${f.shrink.toSteps} steps`);
    });
  }
});
