/**
 * What a scenario is, and how it is turned into a simulator program for one driver and variant.
 */
import type { Program } from '@hmmkit/sim';
import type { Capabilities, Capability, DriverModel } from './contract.js';
import { World } from './world.js';

/**
 * A requirement on the driver's manifest: a capability that must be present (truthy), or a list
 * of capabilities of which one must be present.
 */
export type Requirement = Capability | readonly Capability[];

/** One scenario of the library. */
export interface Scenario {
  /** Stable id used on the command line and in expectation files: `cpu-side/device-side`. */
  id: string;
  /** One line. */
  title: string;
  /** What the scenario does and what it catches. */
  description: string;
  /** What the driver must support; the scenario is skipped with a reason otherwise. */
  requires: readonly Requirement[];
  /** Driver instances mirroring the process (default 1). */
  devices?: number;
  /** Pages of the anonymous mapping (default 2). */
  pages?: number;
  /** Map the range as a PMD-sized transparent huge page (THP 'always', 1024 pages of memory). */
  thp?: boolean;
  /** Share of the run budget this scenario gets (default 1; expensive scenarios take less). */
  weight?: number;
  /** The schedule space is small: the default portfolio ends with a bounded dfs. */
  small?: boolean;
  /** Teardown order after the scenario's threads finish (default close-then-exit). */
  teardown?: 'close-then-exit' | 'exit-then-close';
  /** Spawns the scenario's threads. */
  build(w: World): void;
}

/** Why `scenario` cannot run on a driver with `supports`, or null when it can. */
export function skipReason(scenario: Scenario, supports: Partial<Capabilities>): string | null {
  const missing: string[] = [];
  for (const r of scenario.requires) {
    if (typeof r === 'string') {
      if (!supports[r]) missing.push(r);
    } else if (!r.some((c) => supports[c])) {
      missing.push(r.join(' or '));
    }
  }
  if (!missing.length) return null;
  return `requires ${missing.join(', ')} (not in the driver's \`supports\`)`;
}

/** The simulator program of `scenario` run against `driver` (variant null: the correct driver). */
export function scenarioProgram(driver: DriverModel, variant: string | null, scenario: Scenario): Program {
  return {
    name: `${driver.name}${variant ? `[${variant}]` : ''} ${scenario.id}`,
    setup(sim) {
      const w = new World(sim, driver, variant, scenario);
      scenario.build(w);
      w.spawnTeardown();
      return w.hooks();
    },
  };
}
