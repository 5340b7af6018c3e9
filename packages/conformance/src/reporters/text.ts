/**
 * The human-readable reporter. Colours are injected (the CLI passes picocolors), so the kit itself
 * has no terminal dependency.
 */
import { formatBudget } from '../budget.js';
import type { ConformanceReport, FailureReport, ScenarioResult } from '../report.js';

/** Colour functions (picocolors' shape). */
export interface Colors {
  green(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

const id = (s: string) => s;
/** No colours. */
export const noColors: Colors = { green: id, red: id, yellow: id, cyan: id, dim: id, bold: id };

export interface TextOptions {
  colors?: Colors;
  /** Race diagrams for expected failures too (default: only for unexpected ones). */
  verbose?: boolean;
  /** Leave out race diagrams entirely. */
  noDiagrams?: boolean;
}

function compact(n: number): string {
  if (n >= 1_000_000) return `${(n / 1_000_000).toFixed(1)}M`;
  if (n >= 10_000) return `${Math.round(n / 1000)}k`;
  return String(n);
}

function secs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)}s` : `${Math.round(ms)}ms`;
}

function who(r: Pick<ScenarioResult, 'driver' | 'variant'>): string {
  return r.variant ? `${r.driver} [${r.variant}]` : r.driver;
}

/** One line per scenario result. */
export function formatResultLine(r: ScenarioResult, c: Colors = noColors, width = 28): string {
  const name = r.scenario.padEnd(width);
  const stats = c.dim(
    `${(r.explorations.map((e) => e.strategy).join('+') || '-').padEnd(26)} ${compact(r.runs).padStart(5)} runs ${compact(r.steps).padStart(6)} steps ${secs(r.elapsedMs).padStart(7)}${r.exhausted ? '  exhaustive' : ''}`,
  );
  switch (r.status) {
    case 'pass':
      return `  ${c.green('✓')} ${name} ${c.green('pass ')}  ${stats}`;
    case 'skip':
      return `  ${c.dim('-')} ${name} ${c.dim('skip ')}  ${c.dim(r.reason ?? '')}`;
    case 'xfail':
      return `  ${c.yellow('✓')} ${name} ${c.yellow('xfail')}  ${c.yellow(r.failure?.kind ?? '')} ${c.dim(`after ${r.failure?.runsToFailure ?? '?'} runs, ${secs(r.failure?.timeToFailureMs ?? 0)}; ${r.reason ?? ''}`)}`;
    case 'unexpected-pass':
      return `  ${c.red('✗')} ${name} ${c.red('UNEXPECTED PASS')}  ${stats}`;
    case 'fail':
      return `  ${c.red('✗')} ${name} ${c.red('FAIL ')}  ${c.red(r.failure?.kind ?? '')} ${c.dim(`after ${r.failure?.runsToFailure ?? '?'} runs, ${secs(r.failure?.timeToFailureMs ?? 0)}`)}`;
  }
}

/** The detailed block of one failure: message, schedule, replay command, race diagram. */
export function formatFailure(
  r: ScenarioResult,
  f: FailureReport,
  c: Colors = noColors,
  diagram = true,
): string {
  const lines: string[] = [];
  lines.push(`${c.bold(`${who(r)} ${r.scenario}`)}: ${c.red(f.kind)}`);
  lines.push(`  ${f.message}`);
  for (const d of f.details ?? []) lines.push(`    ${d}`);
  if (r.reason) lines.push(`  ${c.yellow(r.reason)}`);
  if (f.threads.length)
    lines.push(
      `  threads: ${f.threads.join(', ')}${f.objects.length ? `; objects: ${f.objects.join(', ')}` : ''}`,
    );
  lines.push(
    `  found by ${f.strategy} at run ${f.run + 1}${f.seed !== undefined ? ` (run seed ${f.seed})` : ''}, ${f.runsToFailure} runs and ${secs(f.timeToFailureMs)} into the scenario${f.deterministic ? '' : c.red(' (NOT deterministic)')}`,
  );
  lines.push(
    `  schedule ${f.schedule}  ${c.dim(`(shrunk from ${f.shrink.fromChoices} to ${f.shrink.toChoices} choices, ${f.shrink.fromSteps} to ${f.shrink.toSteps} steps, ${f.shrink.replays} replays)`)}`,
  );
  lines.push(`  replay: ${c.cyan(f.replayCommand)}`);
  if (diagram) {
    lines.push('');
    for (const l of f.diagram.split('\n')) lines.push(`    ${l}`);
  }
  return lines.join('\n');
}

/** The whole report as text. */
export function formatText(report: ConformanceReport, options: TextOptions = {}): string {
  const c = options.colors ?? noColors;
  const out: string[] = [];
  out.push(
    c.bold(`hmmkit conformance kit v${report.kitVersion}`) +
      c.dim(
        `  seed ${report.seed}, budget ${formatBudget(report.budget)}${report.strategy ? `, strategy ${report.strategy}` : ''}`,
      ),
  );
  const width = Math.max(20, ...report.results.map((r) => r.scenario.length)) + 2;
  let group = '';
  for (const r of report.results) {
    const g = who(r);
    if (g !== group) {
      out.push('');
      out.push(
        c.bold(
          r.variant ? `${r.driver} ${c.yellow(`[variant ${r.variant}]`)}` : `${r.driver} (correct driver)`,
        ),
      );
      group = g;
    }
    out.push(formatResultLine(r, c, width));
  }
  const failing = report.results.filter((r) => r.failure && (r.status === 'fail' || r.status === 'xfail'));
  const unexpected = failing.filter((r) => r.status === 'fail');
  const expected = failing.filter((r) => r.status === 'xfail');
  if (unexpected.length) {
    out.push('', c.red(c.bold('Unexpected failures')));
    unexpected.forEach((r, i) => {
      out.push('', `${i + 1}) ${formatFailure(r, r.failure!, c, !options.noDiagrams)}`);
    });
  }
  const ups = report.results.filter((r) => r.status === 'unexpected-pass');
  if (ups.length) {
    out.push('', c.red(c.bold('Unexpected passes')));
    for (const r of ups) out.push(`  ${who(r)} ${r.scenario}: ${r.reason ?? ''}`);
  }
  if (expected.length) {
    out.push('', c.bold('Expected failures'));
    for (const r of expected) {
      if (options.verbose) out.push('', formatFailure(r, r.failure!, c, !options.noDiagrams));
      else
        out.push(
          `  ${who(r)} ${r.scenario}: ${c.yellow(r.failure!.kind)} ${c.dim(r.failure!.message)}\n    replay: ${c.cyan(r.failure!.replayCommand)}`,
        );
    }
  }
  if (report.variants.length) {
    out.push('', c.bold('Variants'));
    for (const v of report.variants) {
      out.push(
        v.caught
          ? `  ${c.green('✓')} ${v.driver} [${v.variant}] caught by ${v.caughtBy.join(', ')}`
          : `  ${c.red('✗')} ${v.driver} [${v.variant}] ${c.red('variant not caught')}: no scenario reported ${v.expect.join(' or ')} (${v.description})`,
      );
    }
  }
  if (report.stale.length) {
    out.push('', c.yellow(c.bold('Stale expectations')));
    for (const s of report.stale) out.push(`  ${c.yellow('!')} ${s.driver}: ${s.message}`);
  }
  const s = report.summary;
  const caught = report.variants.filter((v) => v.caught).length;
  out.push('');
  out.push(
    `${report.ok ? c.green(c.bold('OK')) : c.red(c.bold('FAILED'))}  ${s.pass} passed, ${s.fail} failed, ${s.skip} skipped, ${s.xfail} expected failures, ${s.unexpectedPass} unexpected passes` +
      (report.variants.length ? `; variants caught ${caught}/${report.variants.length}` : '') +
      (s.stale ? `; ${s.stale} stale expectations` : '') +
      c.dim(`  (${secs(s.elapsedMs)})`),
  );
  return `${out.join('\n')}\n`;
}
