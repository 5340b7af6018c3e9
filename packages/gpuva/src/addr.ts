/**
 * The model's address word. The kernel's VA addresses, ranges and object offsets are `u64`; the
 * model uses JavaScript numbers, which are exact integers up to 2^53, so the model's "u64" is a
 * 53-bit word: every address, range and offset is an integer in `[0, U64_LIMIT)`, and every place
 * where the kernel relies on 64-bit wrap-around (`check_add_overflow()`, `start - 1` with
 * `start == 0`, `addr + range - 1` with `range == 0`) wraps at `U64_LIMIT` instead of 2^64.
 * A sum equal to `U64_LIMIT` is an overflow, as a sum equal to 2^64 is in the kernel.
 */

/** 2^53: one past the largest address of the model's word. */
export const U64_LIMIT = 2 ** 53;
/** The largest address of the model's word (`U64_MAX` analogue), 2^53 - 1. */
export const U64_MAX = U64_LIMIT - 1;

/** True for an integer in `[0, U64_MAX]`. */
export function isU64(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/** Throws a `RangeError` naming `what` unless `x` is a model u64 (a misuse of the model, not an errno). */
export function assertU64(what: string, x: unknown): asserts x is number {
  if (!isU64(x)) throw new RangeError(`${what} must be an integer in [0, 2^53 - 1], got ${String(x)}`);
}

/** `check_add_overflow(a, b, &sum)`: true when `a + b` does not fit the word. */
export function checkAddOverflow(a: number, b: number): boolean {
  return b > U64_MAX - a;
}

/** `a + b` modulo the word, computed exactly. */
export function wrapAdd(a: number, b: number): number {
  return b > U64_MAX - a ? b - (U64_LIMIT - a) : a + b;
}

/** `a - b` modulo the word, computed exactly. */
export function wrapSub(a: number, b: number): number {
  return a >= b ? a - b : U64_LIMIT - (b - a);
}
