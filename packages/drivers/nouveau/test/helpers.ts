/**
 * Shared test wiring: a machine, a process, one nouveau GPU and one client, built inside a
 * program's setup the way the conformance adapter builds them.
 */
import { type Mm, PAGE_SIZE, PROT_READ, PROT_WRITE, System } from '@hmmkit/mm';
import { dfs, type ExploreOptions, explore, type Program, pct, random, type Sim } from '@hmmkit/sim';
import { NouveauCli, type NouveauDrm, type NouveauOptions, nouveauDrmLoad } from '../src/drm.js';

export const BASE = 0x200000;

export interface World {
  sim: Sim;
  sys: System;
  mm: Mm;
  drm: NouveauDrm;
  cli: NouveauCli;
  page(i: number): number;
}

/** A machine with one anonymous read-write mapping of `pages` pages at {@link BASE}. */
export function world(sim: Sim, options: NouveauOptions = {}, pages = 2, memoryPages = 32): World {
  const sys = new System(sim, { memoryPages, swapSlots: 8, thp: 'never' });
  const mm = sys.createMm('proc');
  sys.mmapSetup(mm, { addr: BASE, len: pages * PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
  const drm = nouveauDrmLoad(sim, sys, { name: 'nouveau0', ...options });
  const cli = new NouveauCli(drm, mm);
  return { sim, sys, mm, drm, cli, page: (i) => BASE + i * PAGE_SIZE };
}

/** The first failure of an exploration with each strategy in turn, or null. */
export function firstFailure(program: Program, opts: Partial<ExploreOptions> = {}, runs = 400) {
  for (const strategy of [pct({ depth: 3, seed: 1 }), random(7), pct({ depth: 4, seed: 3 })]) {
    const r = explore(program, {
      strategy,
      ...opts,
      budgets: { maxRuns: runs, maxSteps: 5000, ...opts.budgets },
    });
    if (r.failures.length) return { result: r, failure: r.failures[0]! };
  }
  return null;
}

export { dfs, explore };
