/**
 * The explorer's wall clock, used only for the time budget. It lives outside the models on purpose:
 * model code never reads time, so runs stay replayable; tests inject a fake clock.
 */
export type Clock = () => number;

/** Milliseconds from a monotonic source. */
export const monotonicClock: Clock = () => performance.now();
