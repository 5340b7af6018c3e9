/**
 * The bundled drivers: driver packages of this repository the CLI knows by name. Each is imported
 * lazily, so a driver package that is missing or broken only affects commands that use it.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { DriverModel } from '@hmmkit/conformance';

export interface BundledDriver {
  name: string;
  /** The npm package that ships it. */
  package: string;
  /** The named export holding the DriverModel. */
  exportName: string;
  /** Imports the package (a static import expression, so bundlers and tsx see it). */
  load(): Promise<Record<string, unknown>>;
}

export const bundledDrivers: readonly BundledDriver[] = [
  {
    name: 'dmirror',
    package: '@hmmkit/driver-dmirror',
    exportName: 'dmirrorDriver',
    load: () => import('@hmmkit/driver-dmirror') as Promise<Record<string, unknown>>,
  },
  {
    name: 'nouveau',
    package: '@hmmkit/driver-nouveau',
    exportName: 'nouveauDriver',
    load: () => import('@hmmkit/driver-nouveau') as Promise<Record<string, unknown>>,
  },
];

/** A bundled driver that could not be loaded, and why. */
export class DriverUnavailableError extends Error {
  constructor(
    readonly driver: string,
    message: string,
  ) {
    super(message);
    this.name = 'DriverUnavailableError';
  }
}

/** Imports a bundled driver's model. */
export async function loadBundled(b: BundledDriver): Promise<DriverModel> {
  let mod: Record<string, unknown>;
  try {
    mod = await b.load();
  } catch (e) {
    throw new DriverUnavailableError(
      b.name,
      `bundled driver '${b.name}' (${b.package}) is not available: ${(e as Error).message.split('\n')[0]}`,
    );
  }
  const d = mod[b.exportName] ?? mod.default;
  if (!d) throw new DriverUnavailableError(b.name, `${b.package} does not export ${b.exportName}`);
  return d as DriverModel;
}

/** The `expectations.json` next to a bundled driver's package.json, if it ships one. */
export function bundledExpectationsPath(b: BundledDriver): string | null {
  try {
    const require = createRequire(import.meta.url);
    const pkg = require.resolve(`${b.package}/package.json`);
    return join(dirname(pkg), 'expectations.json');
  } catch {
    return null;
  }
}
