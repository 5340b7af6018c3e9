/**
 * JUnit XML for CI systems: one `<testsuite>` per driver build (correct driver, each variant), one
 * `<testcase>` per scenario; `fail` and `unexpected-pass` are `<failure>`s, `skip` is
 * `<skipped>`, `xfail` passes with its details in `<system-out>`. Each variant also gets a
 * `variant is caught` test case, failing when no scenario caught it, and stale expectation entries
 * are listed in an `expectations` suite: skipped, or failing when the run treats them as errors
 * (`strictExpectations`).
 */
import type { ConformanceReport, ScenarioResult } from '../report.js';

export interface JunitOptions {
  /** Name of the root `<testsuites>` element (default `hmmkit conformance`). */
  name?: string;
}

/** Escapes text for XML attributes and content; drops characters XML 1.0 forbids. */
function esc(s: string): string {
  return (
    s
      // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping what XML 1.0 forbids
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&apos;')
  );
}

function secs(ms: number): string {
  return (ms / 1000).toFixed(3);
}

function failureBody(r: ScenarioResult): string {
  const f = r.failure;
  if (!f) return r.reason ?? '';
  return [
    f.message,
    ...(r.reason ? [r.reason] : []),
    `schedule: ${f.schedule}`,
    `replay: ${f.replayCommand}`,
    '',
    f.diagram,
  ].join('\n');
}

function testcase(r: ScenarioResult, classname: string): string {
  const open = `    <testcase classname="${esc(classname)}" name="${esc(r.scenario)}" time="${secs(r.elapsedMs)}"`;
  switch (r.status) {
    case 'pass':
      return `${open}/>`;
    case 'skip':
      return `${open}>\n      <skipped message="${esc(r.reason ?? 'skipped')}"/>\n    </testcase>`;
    case 'xfail':
      return `${open}>\n      <system-out>${esc(`expected failure (${r.failure?.kind}): ${r.reason ?? ''}\n${failureBody(r)}`)}</system-out>\n    </testcase>`;
    case 'unexpected-pass':
      return `${open}>\n      <failure message="${esc(`unexpected pass: ${r.reason ?? ''}`)}" type="unexpected-pass">${esc(r.reason ?? '')}</failure>\n    </testcase>`;
    case 'fail':
      return `${open}>\n      <failure message="${esc(`${r.failure?.kind ?? 'failure'}: ${r.failure?.message ?? r.reason ?? ''}`)}" type="${esc(r.failure?.kind ?? 'failure')}">${esc(failureBody(r))}</failure>\n    </testcase>`;
  }
}

/** The report as a JUnit XML document. */
export function toJunitXml(report: ConformanceReport, options: JunitOptions = {}): string {
  const groups = new Map<string, ScenarioResult[]>();
  for (const r of report.results) {
    const key = r.variant ? `${r.driver}[${r.variant}]` : r.driver;
    let l = groups.get(key);
    if (!l) {
      l = [];
      groups.set(key, l);
    }
    l.push(r);
  }
  const suites: string[] = [];
  let tests = 0;
  let failures = 0;
  let skipped = 0;
  for (const [key, results] of groups) {
    const extra = report.variants.filter((v) => `${v.driver}[${v.variant}]` === key);
    const cases = results.map((r) => testcase(r, `hmmkit.${key}`));
    for (const v of extra) {
      cases.push(
        v.caught
          ? `    <testcase classname="hmmkit.${esc(key)}" name="variant is caught" time="0"/>`
          : `    <testcase classname="hmmkit.${esc(key)}" name="variant is caught" time="0">\n      <failure message="${esc(`variant not caught: no scenario reported ${v.expect.join(' or ')}`)}" type="variant-not-caught">${esc(v.description)}</failure>\n    </testcase>`,
      );
    }
    const f =
      results.filter((r) => r.status === 'fail' || r.status === 'unexpected-pass').length +
      extra.filter((v) => !v.caught).length;
    const s = results.filter((r) => r.status === 'skip').length;
    const time = results.reduce((a, r) => a + r.elapsedMs, 0);
    tests += cases.length;
    failures += f;
    skipped += s;
    suites.push(
      `  <testsuite name="${esc(key)}" tests="${cases.length}" failures="${f}" errors="0" skipped="${s}" time="${secs(time)}">\n${cases.join('\n')}\n  </testsuite>`,
    );
  }
  if (report.stale.length) {
    const strict = report.strictExpectations;
    const cases = report.stale.map((s, i) => {
      const open = `    <testcase classname="hmmkit.expectations" name="${esc(`stale entry ${i + 1}: ${s.variant ?? ''}${s.variant && s.scenario ? ' ' : ''}${s.scenario ?? ''}`)}" time="0">`;
      const body = strict
        ? `<failure message="${esc(s.message)}" type="stale-expectation">${esc(`${s.driver}: ${s.message}`)}</failure>`
        : `<skipped message="${esc(`stale expectation: ${s.message}`)}"/>`;
      return `${open}\n      ${body}\n    </testcase>`;
    });
    tests += cases.length;
    if (strict) failures += cases.length;
    else skipped += cases.length;
    suites.push(
      `  <testsuite name="expectations" tests="${cases.length}" failures="${strict ? cases.length : 0}" errors="0" skipped="${strict ? 0 : cases.length}" time="0">\n${cases.join('\n')}\n  </testsuite>`,
    );
  }
  const name = options.name ?? 'hmmkit conformance';
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="${esc(name)}" tests="${tests}" failures="${failures}" errors="0" skipped="${skipped}" time="${secs(report.summary.elapsedMs)}">\n${suites.join('\n')}\n</testsuites>\n`;
}
