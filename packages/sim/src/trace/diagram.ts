/**
 * The race diagram of a kernel commit message: one column per thread, time downward, the step
 * that broke a rule marked.
 */
import type { RunResult, StepEvent } from '../core/sim.js';

export interface DiagramOptions {
  /** Maximum width of one column (longer operations are cut with `...`). Default 60. */
  columnWidth?: number;
  /** Show only the last N steps (earlier ones are summarised in one line). Default: all. */
  tail?: number;
  /** Hide pure scheduling points (`<start>`, notes without text). Default true. */
  hideStarts?: boolean;
}

function resultText(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'boolean') return ` = ${v}`;
  if (v === null) return ' = NULL';
  if (typeof v === 'string' && v.length <= 24) return ` = ${v}`;
  return '';
}

/** Text of one event as shown in its column. */
export function eventText(e: StepEvent): string {
  const op = e.op;
  const base = op.obj ? op.obj.describe(op) : op.kind;
  return `${base}${resultText(e.result)}${op.label ? `  // ${op.label}` : ''}`;
}

/** Renders a traced run (a failure's `trace`, or `replayRun()`'s result) as a race diagram. */
export function renderRaceDiagram(run: RunResult, options: DiagramOptions = {}): string {
  const width = options.columnWidth ?? 60;
  const violation = run.violation;
  // A start is shown when it is the step that broke a rule (a context rule checked on the way in).
  const events = (run.events ?? []).filter(
    (e) => !(options.hideStarts !== false && e.op.kind === 'start' && e.step !== violation?.step),
  );
  const active = [...new Set(events.map((e) => e.tid))].sort((a, b) => a - b);
  const lines: string[] = [];
  if (active.length === 0) {
    lines.push('(no steps recorded)');
  } else {
    const col = new Map(active.map((tid, i) => [tid, i]));
    const cut = (s: string) => (s.length > width ? `${s.slice(0, width - 3)}...` : s);
    const headers = active.map((tid) => cut(run.threads[tid] ?? `T${tid}`));
    const widths = active.map((tid, i) => {
      const texts = events.filter((e) => e.tid === tid).map((e) => cut(eventText(e)).length);
      return Math.max(headers[i]!.length, ...texts);
    });
    const row = (cells: string[]) => `${cells.map((c, i) => c.padEnd(widths[i]!)).join('   ')}`.trimEnd();
    lines.push(`        ${row(headers)}`);
    lines.push(`        ${row(widths.map((w) => '-'.repeat(w)))}`);
    let shown = events;
    if (options.tail !== undefined && events.length > options.tail) {
      shown = events.slice(events.length - options.tail);
      lines.push(`        ... ${events.length - options.tail} earlier steps ...`);
    }
    for (const e of shown) {
      const cells = active.map(() => '');
      cells[col.get(e.tid)!] = cut(eventText(e));
      const mark = violation && violation.step === e.step ? '>>' : '  ';
      lines.push(`${mark}${String(e.step).padStart(4)}  ${row(cells)}`);
    }
  }
  if (violation) {
    lines.push('');
    const where = violation.step >= 0 ? ` at step ${violation.step}` : ' at the end of the run';
    lines.push(`${violation.kind}${where}: ${violation.message}`);
    for (const d of violation.details ?? []) lines.push(`  ${d}`);
  }
  return lines.join('\n');
}
