import { describe, expect, it } from 'vitest';
import { BudgetError, defaultKitBudget, formatBudget, parseBudget } from '../src/index.js';

describe('budgets', () => {
  it('parses the documented syntax', () => {
    expect(parseBudget('runs=2000,time=5s,steps=10000')).toEqual({
      ...defaultKitBudget,
      runs: 2000,
      timeMs: 5000,
      steps: 10000,
    });
    expect(parseBudget('runs=2k, time=250ms, shrink=0')).toMatchObject({
      runs: 2000,
      timeMs: 250,
      shrink: 0,
    });
    expect(parseBudget('time=1m').timeMs).toBe(60_000);
  });

  it('rejects bad budgets with a message naming the problem', () => {
    expect(() => parseBudget('runs=abc')).toThrow(BudgetError);
    expect(() => parseBudget('runs=abc')).toThrow(/runs 'abc' must be a whole number/);
    expect(() => parseBudget('speed=3')).toThrow(/unknown key 'speed'/);
    expect(() => parseBudget('time=5x')).toThrow(/time '5x'/);
    expect(() => parseBudget('runs=0')).toThrow(/at least 1/);
    expect(() => parseBudget('runs=1,runs=2')).toThrow(/given twice/);
    expect(() => parseBudget('')).toThrow(/empty budget/);
  });

  it('formats back', () => {
    const b = parseBudget('runs=2000,time=5s');
    expect(formatBudget(b, defaultKitBudget)).toBe('runs=2000,time=5s');
    expect(parseBudget(formatBudget(b))).toEqual(b);
  });
});
