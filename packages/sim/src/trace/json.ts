/**
 * The versioned JSON form of a traced run. Bump {@link TRACE_SCHEMA} when a field changes meaning.
 */
import { accessName } from '../core/op-names.js';
import type { RunResult } from '../core/sim.js';
import type { Violation } from '../core/violation.js';
import { eventText } from './diagram.js';

export const TRACE_SCHEMA = 'hmmkit.trace/1';

export interface TraceEventJson {
  step: number;
  thread: string;
  tid: number;
  op: string;
  object: string | null;
  access: string;
  text: string;
  result?: number | boolean | string | null;
  label?: string;
  snapshot?: unknown;
}

export interface TraceJson {
  schema: typeof TRACE_SCHEMA;
  program: string;
  status: RunResult['status'];
  threads: string[];
  steps: number;
  schedule?: string;
  violation?: Violation;
  events: TraceEventJson[];
}

/** Converts a traced run to plain JSON-able data. */
export function traceToJson(run: RunResult, schedule?: string): TraceJson {
  return {
    schema: TRACE_SCHEMA,
    program: run.program,
    status: run.status,
    threads: run.threads,
    steps: run.steps,
    ...(schedule === undefined ? {} : { schedule }),
    ...(run.violation ? { violation: run.violation } : {}),
    events: (run.events ?? []).map((e) => {
      const r = e.result;
      const result =
        typeof r === 'number' || typeof r === 'boolean' || typeof r === 'string' || r === null
          ? r
          : undefined;
      return {
        step: e.step,
        thread: run.threads[e.tid] ?? `T${e.tid}`,
        tid: e.tid,
        op: e.op.kind,
        object: e.op.obj ? e.op.obj.name : null,
        access: accessName(e.op.access),
        text: eventText(e),
        ...(result === undefined ? {} : { result }),
        ...(e.op.label ? { label: e.op.label } : {}),
        ...(e.snapshot === undefined ? {} : { snapshot: e.snapshot }),
      };
    }),
  };
}
