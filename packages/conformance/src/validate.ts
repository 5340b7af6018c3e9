/**
 * Contract validation: what a module that claims to be a driver model is missing, in words a
 * driver author can act on. Used by the CLI for `--driver PATH` and by the runner before a run.
 */
import type { Capabilities, Capability, DriverInstance } from './contract.js';

/** Every capability name of {@link Capabilities}, with the values it accepts. */
export const CAPABILITIES: Readonly<Record<Capability, readonly (boolean | string)[]>> = {
  mirror: [true, false],
  atomics: [true, false],
  migration: [true, false],
  userptr: [true, false],
  vmBind: [false, 'sync', 'async'],
  odp: [true, false],
  nonBlocking: ['trylock', 'refuse', 'blocks'],
};

/** Capability names in manifest order. */
export const capabilityNames = Object.keys(CAPABILITIES) as Capability[];

const VARIANT_NAME = /^[a-z0-9][a-z0-9._-]*$/;

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `a ${typeof v}`;
}

/**
 * Checks that `x` satisfies {@link DriverModel} as far as can be seen without running it.
 * Returns the problems found, one clear sentence each; an empty list means it looks valid.
 */
export function validateDriver(x: unknown): string[] {
  const problems: string[] = [];
  if (x === null || typeof x !== 'object') {
    return [
      `a driver model must be an object (export a DriverModel as default or named export), got ${describeValue(x)}`,
    ];
  }
  const d = x as Record<string, unknown>;
  const label = typeof d.name === 'string' && d.name ? `driver '${d.name}'` : 'driver module';
  if (typeof d.name !== 'string' || d.name === '') problems.push('driver module has no `name` string');
  else if (!VARIANT_NAME.test(d.name))
    problems.push(
      `driver name '${d.name}' must be lowercase letters, digits, '.', '_' or '-' (it is used on the command line)`,
    );
  if (typeof d.description !== 'string') problems.push(`${label} has no \`description\` string`);
  if (typeof d.create !== 'function') problems.push(`${label} has no \`create\` function`);
  if (d.supports === undefined) {
    problems.push(`${label} has no \`supports\` capability manifest (e.g. { mirror: true })`);
  } else if (d.supports === null || typeof d.supports !== 'object' || Array.isArray(d.supports)) {
    problems.push(`${label}: \`supports\` must be an object, got ${describeValue(d.supports)}`);
  } else {
    for (const [k, v] of Object.entries(d.supports as Record<string, unknown>)) {
      const allowed = CAPABILITIES[k as Capability];
      if (!allowed) {
        problems.push(
          `${label}: unknown capability '${k}' in \`supports\` (known: ${capabilityNames.join(', ')})`,
        );
      } else if (v !== undefined && !allowed.includes(v as boolean | string)) {
        problems.push(
          `${label}: capability '${k}' must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(v)}`,
        );
      }
    }
  }
  if (!Array.isArray(d.variants)) {
    problems.push(`${label} has no \`variants\` array (use [] for a driver without bug variants)`);
  } else {
    const seen = new Set<string>();
    d.variants.forEach((v: unknown, i: number) => {
      if (v === null || typeof v !== 'object') {
        problems.push(`${label}: variant #${i} must be an object, got ${describeValue(v)}`);
        return;
      }
      const r = v as Record<string, unknown>;
      const name = typeof r.name === 'string' ? r.name : undefined;
      const vl = name ? `variant '${name}'` : `variant #${i}`;
      if (!name) problems.push(`${label}: variant #${i} has no \`name\` string`);
      else {
        if (!VARIANT_NAME.test(name))
          problems.push(
            `${label}: variant name '${name}' must be lowercase letters, digits, '.', '_' or '-'`,
          );
        if (seen.has(name)) problems.push(`${label}: duplicate variant name '${name}'`);
        seen.add(name);
      }
      if (typeof r.description !== 'string' || !r.description)
        problems.push(`${label}: ${vl} has no \`description\``);
      if (typeof r.source !== 'string' || !r.source)
        problems.push(`${label}: ${vl} has no \`source\` (where the mistake comes from)`);
      if (!Array.isArray(r.expect))
        problems.push(`${label}: ${vl} has no \`expect\` list of violation kinds`);
      else if (r.expect.length === 0)
        problems.push(`${label}: ${vl} has an empty \`expect\` list (name the kinds the kit must report)`);
      else if (!r.expect.every((k) => typeof k === 'string' && k !== ''))
        problems.push(`${label}: ${vl}: \`expect\` must list violation kinds as strings`);
    });
  }
  return problems;
}

/** Methods the contract requires of every instance, and those a capability requires. */
const REQUIRED_METHODS = ['open', 'access', 'close', 'mappings', 'liveSubscriptions'] as const;
const CAPABILITY_METHODS: Partial<Record<Capability, readonly (keyof DriverInstance)[]>> = {
  migration: ['migrateToDevice', 'migrateToSystem'],
  userptr: ['registerRange', 'unregisterRange'],
  odp: ['registerRange', 'unregisterRange'],
  vmBind: ['bind', 'unbind'],
};

/**
 * Checks an instance returned by `create()` against the contract and the driver's manifest.
 * Returns the problems found (the harness reports them as a `contract` violation).
 */
export function validateInstance(inst: unknown, supports: Partial<Capabilities>): string[] {
  if (inst === null || typeof inst !== 'object')
    return [`create() returned ${describeValue(inst)}, not an instance`];
  const r = inst as Record<string, unknown>;
  const problems: string[] = [];
  for (const m of REQUIRED_METHODS) {
    if (typeof r[m] !== 'function') problems.push(`the instance has no \`${m}\` method`);
  }
  for (const [cap, methods] of Object.entries(CAPABILITY_METHODS) as [
    Capability,
    (keyof DriverInstance)[],
  ][]) {
    if (!supports[cap]) continue;
    for (const m of methods) {
      if (typeof r[m] !== 'function')
        problems.push(`the driver declares '${cap}' but the instance has no \`${m}\` method`);
    }
  }
  return problems;
}
