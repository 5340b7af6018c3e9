import { describe, expect, it } from 'vitest';
import { validateDriver, validateInstance } from '../src/index.js';
import { fixtureDriver } from './fixtures/mirror-driver.js';

describe('validateDriver', () => {
  it('accepts the fixture driver', () => {
    expect(validateDriver(fixtureDriver)).toEqual([]);
  });

  it('rejects what is not an object', () => {
    expect(validateDriver(undefined)[0]).toMatch(/must be an object/);
    expect(validateDriver(42)[0]).toMatch(/got a number/);
  });

  it('names every missing piece of a module', () => {
    const p = validateDriver({});
    expect(p).toContain('driver module has no `name` string');
    expect(p).toContain('driver module has no `create` function');
    expect(p.some((x) => x.includes('no `supports` capability manifest'))).toBe(true);
    expect(p.some((x) => x.includes('no `variants` array'))).toBe(true);
  });

  it('reports unknown capabilities, bad values, duplicate variants and missing expect lists', () => {
    const p = validateDriver({
      ...fixtureDriver,
      supports: { mirror: true, teleport: true, vmBind: 'yes' },
      variants: [
        { name: 'x', description: 'd', source: 's', expect: ['stale-mapping'] },
        { name: 'x', description: 'd', source: 's' },
        { name: 'Bad Name', description: '', source: 's', expect: [] },
      ],
    });
    expect(p.join('\n')).toMatch(/unknown capability 'teleport'/);
    expect(p.join('\n')).toMatch(/capability 'vmBind' must be one of false, "sync", "async"/);
    expect(p).toContain("driver 'fixture-mirror': duplicate variant name 'x'");
    expect(p).toContain("driver 'fixture-mirror': variant 'x' has no `expect` list of violation kinds");
    expect(p.join('\n')).toMatch(/variant name 'Bad Name' must be lowercase/);
    expect(p.join('\n')).toMatch(/variant 'Bad Name' has an empty `expect` list/);
  });

  it('checks instances against the manifest', () => {
    expect(validateInstance(null, {})).toEqual(['create() returned null, not an instance']);
    const p = validateInstance({ open() {}, access() {} }, { migration: true });
    expect(p).toContain('the instance has no `close` method');
    expect(p).toContain("the driver declares 'migration' but the instance has no `migrateToDevice` method");
  });
});
