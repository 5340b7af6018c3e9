/**
 * Budgets of the kit, and their command-line form: `runs=2000,time=5s,steps=10000,shrink=200`.
 */

/** How much exploration one scenario gets. */
export interface KitBudget {
  /** Runs per scenario, over the whole strategy portfolio. */
  runs: number;
  /** Wall time per scenario, in milliseconds. */
  timeMs: number;
  /** Steps per run; a run that exceeds it is reported as a (possible) livelock. */
  steps: number;
  /** Replays the shrinker may spend on one failure (0 turns shrinking off). */
  shrink: number;
}

/** The default budget: small address spaces make 600 runs per scenario plenty (see the README). */
export const defaultKitBudget: Readonly<KitBudget> = {
  runs: 600,
  timeMs: 10_000,
  steps: 5_000,
  shrink: 200,
};

/** A bad `--budget` string or budget object. */
export class BudgetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BudgetError';
  }
}

const KEYS: Record<string, keyof KitBudget> = {
  runs: 'runs',
  time: 'timeMs',
  steps: 'steps',
  shrink: 'shrink',
};

function parseTime(text: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!m) throw new BudgetError(`budget '${raw}': time '${text}' must be a number with ms, s or m (e.g. 5s)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  const ms = unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000;
  if (!(ms > 0)) throw new BudgetError(`budget '${raw}': time must be positive`);
  return ms;
}

/**
 * Parses `runs=N,time=T,steps=N,shrink=N` (any subset, any order) over `base`. Time takes `ms`
 * (default), `s` or `m`; counts may use `k` (1k = 1000).
 */
export function parseBudget(text: string, base: Readonly<KitBudget> = defaultKitBudget): KitBudget {
  const out = { ...base };
  const raw = text.trim();
  if (raw === '') throw new BudgetError('empty budget (expected e.g. runs=2000,time=5s,steps=10000)');
  const seen = new Set<string>();
  for (const part of raw.split(',')) {
    const m = /^\s*([a-z]+)\s*=\s*([^\s]+)\s*$/.exec(part);
    if (!m)
      throw new BudgetError(
        `budget '${raw}': '${part}' is not key=value (keys: ${Object.keys(KEYS).join(', ')})`,
      );
    const key = KEYS[m[1]!];
    if (!key)
      throw new BudgetError(`budget '${raw}': unknown key '${m[1]}' (keys: ${Object.keys(KEYS).join(', ')})`);
    if (seen.has(key)) throw new BudgetError(`budget '${raw}': '${m[1]}' given twice`);
    seen.add(key);
    const v = m[2]!;
    if (key === 'timeMs') {
      out.timeMs = parseTime(v, raw);
      continue;
    }
    const cm = /^(\d+)(k)?$/.exec(v);
    if (!cm)
      throw new BudgetError(`budget '${raw}': ${m[1]} '${v}' must be a whole number (e.g. 2000 or 2k)`);
    const n = Number(cm[1]) * (cm[2] ? 1000 : 1);
    if (key !== 'shrink' && n < 1) throw new BudgetError(`budget '${raw}': ${m[1]} must be at least 1`);
    if (!Number.isSafeInteger(n)) throw new BudgetError(`budget '${raw}': ${m[1]} is too large`);
    out[key] = n;
  }
  return out;
}

/** The command-line form of a budget (the keys that differ from `base`, or all with `base` null). */
export function formatBudget(b: Readonly<KitBudget>, base: Readonly<KitBudget> | null = null): string {
  const parts: string[] = [];
  if (!base || b.runs !== base.runs) parts.push(`runs=${b.runs}`);
  if (!base || b.timeMs !== base.timeMs)
    parts.push(`time=${b.timeMs % 1000 === 0 ? `${b.timeMs / 1000}s` : `${b.timeMs}ms`}`);
  if (!base || b.steps !== base.steps) parts.push(`steps=${b.steps}`);
  if (!base || b.shrink !== base.shrink) parts.push(`shrink=${b.shrink}`);
  return parts.join(',');
}

/** Checks a budget object given programmatically. */
export function validateBudget(b: Partial<KitBudget>): KitBudget {
  const out = { ...defaultKitBudget, ...b };
  for (const k of ['runs', 'steps'] as const) {
    if (!Number.isSafeInteger(out[k]) || out[k] < 1)
      throw new BudgetError(`budget ${k} must be a positive integer, got ${out[k]}`);
  }
  if (!Number.isSafeInteger(out.shrink) || out.shrink < 0)
    throw new BudgetError(`budget shrink must be a non-negative integer, got ${out.shrink}`);
  if (!(out.timeMs > 0)) throw new BudgetError(`budget timeMs must be positive, got ${out.timeMs}`);
  return out;
}
