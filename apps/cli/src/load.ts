/**
 * Resolving `--driver NAME|PATH` to a validated DriverModel and its expectations.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type DriverModel,
  type Expectations,
  findExpectationsFile,
  loadExpectations,
  validateDriver,
} from '@hmmkit/conformance';
import { bundledDrivers, bundledExpectationsPath, loadBundled } from './registry.js';

/** A usage error: printed with its message, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface LoadedDriver {
  driver: DriverModel;
  /** How replay commands name it: the bundled name, or the path as given. */
  ref: string;
  /** Where its expectations came from (null: none). */
  expectationsPath: string | null;
  expectations: Expectations | null;
}

/** Whether `--driver` names a module path rather than a bundled driver. */
export function isPath(spec: string): boolean {
  return /[/\\]/.test(spec) || /\.(c|m)?(j|t)s(#.*)?$/.test(spec) || spec.startsWith('.');
}

/** The directory relative paths resolve against (the shell's, also under `pnpm hmmkit`). */
export function userCwd(): string {
  return process.env.INIT_CWD ?? process.cwd();
}

function looksLikeDriver(v: unknown): boolean {
  return !!v && typeof v === 'object' && typeof (v as { create?: unknown }).create === 'function';
}

async function loadPath(spec: string): Promise<{ driver: DriverModel; file: string }> {
  const hash = spec.lastIndexOf('#');
  const path = hash > 0 ? spec.slice(0, hash) : spec;
  const exportName = hash > 0 ? spec.slice(hash + 1) : null;
  const file = isAbsolute(path) ? path : resolve(userCwd(), path);
  if (!existsSync(file)) throw new UsageError(`driver module ${path} not found (resolved to ${file})`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(`cannot load driver module ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  let candidate: unknown;
  if (exportName) {
    if (!(exportName in mod)) throw new UsageError(`driver module ${path} has no export '${exportName}'`);
    candidate = mod[exportName];
  } else if (mod.default !== undefined) {
    candidate = mod.default;
  } else {
    let named = Object.entries(mod).filter(([, v]) => looksLikeDriver(v));
    // No export with create(): judge the one that tries to be a driver (has supports or variants).
    if (named.length === 0)
      named = Object.entries(mod).filter(
        ([, v]) => !!v && typeof v === 'object' && ('supports' in v || 'variants' in v),
      );
    if (named.length > 1) {
      throw new UsageError(
        `driver module ${path} exports several driver models (${named.map(([k]) => k).join(', ')}): pick one with ${path}#NAME`,
      );
    }
    candidate = named.length === 1 ? named[0]![1] : mod;
  }
  const problems = validateDriver(candidate);
  if (problems.length) {
    throw new UsageError(
      `driver module ${path} does not satisfy the driver contract:\n  - ${problems.join('\n  - ')}`,
    );
  }
  return { driver: candidate as DriverModel, file };
}

function readExpectations(path: string | null): Expectations | null {
  if (!path || !existsSync(path)) return null;
  try {
    return loadExpectations(path);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * Loads `--driver` (a bundled name or a module path) with its expectations: `expectationsFile`
 * when given, none with `false`, else the file the driver ships.
 */
export async function loadDriver(spec: string, expectationsFile?: string | false): Promise<LoadedDriver> {
  let driver: DriverModel;
  let shipped: string | null;
  if (isPath(spec)) {
    const r = await loadPath(spec);
    driver = r.driver;
    shipped = findExpectationsFile(r.file);
  } else {
    const b = bundledDrivers.find((x) => x.name === spec);
    if (!b) {
      throw new UsageError(
        `unknown driver '${spec}' (bundled drivers: ${bundledDrivers.map((x) => x.name).join(', ')}; or give a path to a driver module)`,
      );
    }
    try {
      driver = await loadBundled(b);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const problems = validateDriver(driver);
    if (problems.length)
      throw new UsageError(`bundled driver '${spec}' is invalid:\n  - ${problems.join('\n  - ')}`);
    shipped = bundledExpectationsPath(b);
  }
  let expectationsPath: string | null = null;
  if (expectationsFile === false) expectationsPath = null;
  else if (expectationsFile) {
    expectationsPath = isAbsolute(expectationsFile) ? expectationsFile : resolve(userCwd(), expectationsFile);
    if (!existsSync(expectationsPath))
      throw new UsageError(`expectations file ${expectationsFile} not found`);
  } else expectationsPath = shipped && existsSync(shipped) ? shipped : null;
  return { driver, ref: spec, expectationsPath, expectations: readExpectations(expectationsPath) };
}
