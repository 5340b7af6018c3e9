/**
 * Schedule strings: the printable form of a run's choices, short enough to paste into a command.
 *
 * `s1:` then the choices joined by `.`, where a choice is a thread id (when more than one thread
 * could run) or a data-choice value, in the order they were made; `NxK` repeats N K times. Choices
 * after the last one that differs from the default policy are dropped: on replay, the default
 * policy (keep running the current thread, then round-robin) continues where the string ends.
 */

/** Prefix of the current schedule format. */
export const SCHEDULE_PREFIX = 's1:';

/** A malformed schedule string. */
export class ScheduleFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScheduleFormatError';
  }
}

/** Encodes choices as a schedule string (run-length encoded). */
export function encodeSchedule(choices: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < choices.length; ) {
    const v = choices[i]!;
    let j = i + 1;
    while (j < choices.length && choices[j] === v) j++;
    const n = j - i;
    parts.push(n >= 3 ? `${v}x${n}` : n === 2 ? `${v}.${v}` : String(v));
    i = j;
  }
  return SCHEDULE_PREFIX + parts.join('.');
}

const MAX_CHOICES = 10_000_000;

/** Decodes a schedule string; throws {@link ScheduleFormatError} naming what is wrong. */
export function decodeSchedule(text: string): number[] {
  if (typeof text !== 'string') throw new ScheduleFormatError('schedule must be a string');
  const s = text.trim();
  if (!s.startsWith(SCHEDULE_PREFIX)) {
    throw new ScheduleFormatError(
      `malformed schedule '${truncate(s)}': it must start with '${SCHEDULE_PREFIX}' (a schedule printed by hmmkit)`,
    );
  }
  const body = s.slice(SCHEDULE_PREFIX.length);
  if (body === '') return [];
  const out: number[] = [];
  const tokens = body.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!;
    const m = /^(\d{1,6})(?:x(\d{1,7}))?$/.exec(tok);
    if (!m) {
      throw new ScheduleFormatError(
        `malformed schedule: token ${i + 1} '${truncate(tok)}' is not a choice (expected N or NxCOUNT, e.g. 2 or 0x5)`,
      );
    }
    const v = Number(m[1]);
    const n = m[2] === undefined ? 1 : Number(m[2]);
    if (n < 1)
      throw new ScheduleFormatError(`malformed schedule: token ${i + 1} '${tok}' repeats zero times`);
    if (out.length + n > MAX_CHOICES) throw new ScheduleFormatError('malformed schedule: too many choices');
    for (let k = 0; k < n; k++) out.push(v);
  }
  return out;
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}
