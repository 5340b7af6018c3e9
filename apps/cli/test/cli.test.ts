/**
 * The `hmmkit` command end to end: real processes for the exit codes and the replay round trip,
 * the rest in-process (same code path, faster).
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandArgs, FIXTURE, run, spawn } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'hmmkit-cli-'));
const QUICK = 'runs=100,time=5s,shrink=40';

describe('hmmkit (spawned)', () => {
  it('conform on the correct fixture driver exits 0', () => {
    const r = spawn([
      'conform',
      '--driver',
      FIXTURE,
      '--scenario',
      'munmap/read',
      '--scenario',
      'atomic/cpu-write',
      '--budget',
      QUICK,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/✓ munmap\/read +pass/);
    expect(r.stdout).toMatch(/- atomic\/cpu-write +skip +requires atomics/);
    expect(r.stdout).toMatch(/^OK {2}1 passed, 0 failed, 1 skipped/m);
  });

  it('a caught variant exits 0, and its printed replay command reproduces the failure (exit 1)', () => {
    const r = spawn([
      'conform',
      '--driver',
      FIXTURE,
      '--variant',
      'no-clear',
      '--scenario',
      'munmap/read',
      '--budget',
      QUICK,
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`✓ fixture-mirror [no-clear] caught by munmap/read`);
    const cmd = /replay: (pnpm hmmkit replay .*)$/m.exec(r.stdout)![1]!;
    const kind = /✓ munmap\/read +xfail +([a-z-]+)/.exec(r.stdout)![1]!;
    const again = spawn(commandArgs(cmd));
    expect(again.code).toBe(1);
    expect(again.stdout).toContain(`replayed: ${kind} after`);
    expect(again.stdout).toContain('CPU0');
  });

  it('a variant the kit does not catch exits 1 ("variant not caught")', () => {
    const r = spawn([
      'conform',
      '--driver',
      FIXTURE,
      '--variant',
      'unbounded-retry',
      '--scenario',
      'touch/write',
      '--budget',
      'runs=20',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[unbounded-retry] variant not caught');
  });

  it('bad arguments exit 2 with a clear message', () => {
    const r = spawn(['conform', '--driver', FIXTURE, '--budget', 'runs=lots']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      "hmmkit: error: budget 'runs=lots': runs 'lots' must be a whole number (e.g. 2000 or 2k)\n",
    );
  });
});

describe('hmmkit (in-process)', () => {
  it('list --json names the drivers, their variants and the scenarios', async () => {
    const r = await run(['list', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.kitVersion).toBe(1);
    expect(j.scenarios.map((s: { id: string }) => s.id)).toContain('fork/cow');
    expect(j.drivers[0].name).toBe('dmirror');
    expect(j.violationKinds['stale-mapping']).toMatch(/invalidation window/);
  });

  it('list prints text', async () => {
    const r = await run(['list']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Scenarios');
    expect(r.stdout).toMatch(/continuous\/read +continuous invalidation/);
  });

  it('--help shows examples, exit 0; no command exits 2 with usage', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('runs=N');
    const c = await run(['conform', '--help']);
    expect(c.code).toBe(0);
    expect(c.stdout).toContain('--variant <name>');
    const none = await run([]);
    expect(none.code).toBe(2);
  });

  it('conform --json and --junit', async () => {
    const junit = join(tmp, 'out.xml');
    const r = await run([
      'conform',
      '--driver',
      FIXTURE,
      '--scenario',
      'touch/read',
      '--budget',
      QUICK,
      '--json',
      '--junit',
      junit,
    ]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.schema).toBe('hmmkit.conform/1');
    expect(j.results[0]).toEqual(expect.objectContaining({ scenario: 'touch/read', status: 'pass' }));
    expect(existsSync(junit)).toBe(true);
    expect(readFileSync(junit, 'utf8')).toMatch(
      /<testcase classname="hmmkit.fixture-mirror" name="touch\/read"/,
    );
  });

  it('an expectations file: an unexpected pass exits 1', async () => {
    const f = join(tmp, 'exp.json');
    writeFileSync(
      f,
      JSON.stringify({ scenarios: { 'touch/read': { expected: 'FAIL', reason: 'pretend' } } }),
    );
    const r = await run([
      'conform',
      '--driver',
      FIXTURE,
      '--scenario',
      'touch/read',
      '--budget',
      QUICK,
      '--expectations',
      f,
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/✗ touch\/read +UNEXPECTED PASS/);
  });

  it('explore finds a failure with full control of strategy and budget (exit 1), or none (exit 0)', async () => {
    const bad = await run([
      'explore',
      '--driver',
      FIXTURE,
      '--variant',
      'program-before-retry',
      '--scenario',
      'mprotect/write',
      '--strategy',
      'dfs',
      '--budget',
      'runs=3000',
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/dfs +\d+ runs/);
    expect(bad.stdout).toContain(
      'replay: pnpm hmmkit replay --driver packages/conformance/test/fixtures/mirror-driver.ts --variant program-before-retry --scenario mprotect/write --schedule s1:',
    );
    const good = await run([
      'explore',
      '--driver',
      FIXTURE,
      '--scenario',
      'mprotect/write',
      '--strategy',
      'dfs:1',
      '--budget',
      'runs=3000',
    ]);
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(
      /no violation in \d+ runs \(every interleaving within the preemption bound\)/,
    );
  });

  it('replay --json prints the traced run', async () => {
    const r = await run([
      'replay',
      '--driver',
      FIXTURE,
      '--variant',
      'no-clear',
      '--scenario',
      'munmap/read',
      '--schedule',
      's1:',
      '--json',
    ]);
    const j = JSON.parse(r.stdout);
    expect(j.schema).toBe('hmmkit.trace/1');
    expect(r.code).toBe(j.violation ? 1 : 0);
  });

  const usage: [string, string[], RegExp][] = [
    [
      'unknown driver',
      ['conform', '--driver', 'nosuch'],
      /unknown driver 'nosuch' \(bundled drivers: dmirror, nouveau; or give a path to a driver module\)/,
    ],
    [
      'missing module',
      ['conform', '--driver', './nope/driver.js'],
      /driver module \.\/nope\/driver\.js not found/,
    ],
    [
      'unknown scenario',
      ['conform', '--driver', FIXTURE, '--scenario', 'fork/spoon'],
      /unknown scenario 'fork\/spoon'/,
    ],
    [
      'unknown variant',
      ['conform', '--driver', FIXTURE, '--variant', 'nope'],
      /driver 'fixture-mirror' has no variant 'nope'/,
    ],
    ['bad strategy', ['conform', '--driver', FIXTURE, '--strategy', 'bfs'], /unknown strategy 'bfs'/],
    ['bad seed', ['conform', '--seed', '-1'], /--seed must be a non-negative integer/],
    [
      'malformed schedule',
      ['replay', '--driver', FIXTURE, '--scenario', 'munmap/read', '--schedule', 'abc'],
      /malformed schedule 'abc'/,
    ],
    [
      'stale schedule',
      ['replay', '--driver', FIXTURE, '--scenario', 'munmap/read', '--schedule', 's1:5.5'],
      /the schedule does not fit this driver and scenario: stale schedule/,
    ],
    [
      'missing option',
      ['replay', '--driver', FIXTURE, '--scenario', 'munmap/read'],
      /required option '--schedule <s1:...>' not specified/,
    ],
    ['unknown option', ['conform', '--frobnicate'], /unknown option '--frobnicate'/],
    [
      'inapplicable scenario',
      ['explore', '--driver', FIXTURE, '--scenario', 'atomic/cpu-write'],
      /does not apply to driver 'fixture-mirror'.*requires atomics/,
    ],
  ];
  for (const [what, args, msg] of usage) {
    it(`exit 2: ${what}`, async () => {
      const r = await run(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
    });
  }

  it('exit 2: a module that does not satisfy the contract, saying what is missing', async () => {
    const f = join(tmp, 'bad-driver.mjs');
    writeFileSync(
      f,
      "export default { name: 'bad', description: 'x', supports: { mirror: true, warp: 1 }, variants: [{ name: 'v' }] };\n",
    );
    const r = await run(['conform', '--driver', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('does not satisfy the driver contract');
    expect(r.stderr).toContain("- driver 'bad' has no `create` function");
    expect(r.stderr).toContain("- driver 'bad': unknown capability 'warp'");
    expect(r.stderr).toContain("- driver 'bad': variant 'v' has no `expect` list of violation kinds");
  });

  it('loads a named export, and asks to pick one when there are several', async () => {
    const f = join(tmp, 'two.mjs');
    const src = `import { fixtureDriver } from ${JSON.stringify(`${process.cwd().replace(/apps\/cli$/, '')}packages/conformance/test/fixtures/mirror-driver.ts`)};\nexport const a = fixtureDriver;\nexport const b = { ...fixtureDriver, name: 'other' };\n`;
    writeFileSync(f, src);
    const r = await run(['conform', '--driver', f, '--scenario', 'touch/read', '--budget', 'runs=10']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/exports several driver models \(a, b\): pick one with .*#NAME/);
    const ok = await run([
      'conform',
      '--driver',
      `${f}#b`,
      '--scenario',
      'touch/read',
      '--budget',
      'runs=10',
    ]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('other (correct driver)');
  });
});
