import { describe, expect, it } from 'vitest';
import {
  CONFORM_SCHEMA,
  type ConformanceReport,
  formatText,
  KIT_VERSION,
  reportToJson,
  runConformance,
  toJunitXml,
} from '../src/index.js';
import { fixtureDriver } from './fixtures/mirror-driver.js';
import { quick } from './helpers.js';

/** A strict little well-formedness check: balanced elements, quoted attributes, known entities. */
function parseXml(xml: string): { name: string; attrs: Record<string, string>; children: unknown[] } {
  let i = 0;
  const text = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  type El = { name: string; attrs: Record<string, string>; children: unknown[] };
  const stack: El[] = [{ name: '#root', attrs: {}, children: [] }];
  const checkText = (t: string) => {
    if (/[<>]/.test(t)) throw new Error(`raw markup in text: ${t.slice(0, 40)}`);
    for (const m of t.matchAll(/&([^;]*);/g)) {
      if (!['amp', 'lt', 'gt', 'quot', 'apos'].includes(m[1]!)) throw new Error(`bad entity &${m[1]};`);
    }
    if (/&(?![a-z]+;)/.test(t)) throw new Error(`bare & in: ${t.slice(0, 40)}`);
  };
  while (i < text.length) {
    if (text[i] === '<') {
      const end = text.indexOf('>', i);
      if (end < 0) throw new Error('unterminated tag');
      const tag = text.slice(i + 1, end);
      i = end + 1;
      if (tag.startsWith('/')) {
        const el = stack.pop()!;
        if (el.name !== tag.slice(1)) throw new Error(`</${tag.slice(1)}> closes <${el.name}>`);
        continue;
      }
      const selfClosing = tag.endsWith('/');
      const body = selfClosing ? tag.slice(0, -1) : tag;
      const m = /^([A-Za-z][\w-]*)((?:\s+[\w-]+="[^"]*")*)\s*$/.exec(body);
      if (!m) throw new Error(`malformed tag <${tag}>`);
      const attrs: Record<string, string> = {};
      for (const a of m[2]!.matchAll(/([\w-]+)="([^"]*)"/g)) {
        checkText(a[2]!);
        attrs[a[1]!] = a[2]!;
      }
      const el: El = { name: m[1]!, attrs, children: [] };
      stack[stack.length - 1]!.children.push(el);
      if (!selfClosing) stack.push(el);
    } else {
      const next = text.indexOf('<', i);
      const t = text.slice(i, next < 0 ? text.length : next);
      checkText(t);
      i = next < 0 ? text.length : next;
    }
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  const root = stack[0]!.children.filter((c) => typeof c === 'object');
  if (root.length !== 1) throw new Error('not exactly one root element');
  return root[0] as El;
}

describe('reporters', () => {
  const report: ConformanceReport = runConformance(fixtureDriver, {
    budget: quick,
    scenarios: ['touch/write', 'mprotect/write', 'atomic/cpu-write'],
    variants: [null, 'program-before-retry', 'leak-subscription', 'blocks-nonblockable'],
    driverRef: 'test/fixtures/mirror-driver.ts',
    expectations: {
      scenarios: { 'touch/write': { expected: 'FAIL', reason: 'pretend <bug> & "quotes"' } },
      variants: { nope: {} },
    },
  });

  it('has every status in the sample report', () => {
    const statuses = new Set(report.results.map((r) => r.status));
    expect([...statuses].sort()).toEqual(['pass', 'skip', 'unexpected-pass', 'xfail']);
    expect(report.variants.find((v) => v.variant === 'blocks-nonblockable')!.caught).toBe(false);
  });

  it('JSON: versioned schema with the documented shape', () => {
    const json = JSON.parse(reportToJson(report));
    expect(json.schema).toBe(CONFORM_SCHEMA);
    expect(json.schema).toBe('hmmkit.conform/1');
    expect(json.kitVersion).toBe(KIT_VERSION);
    expect(Object.keys(json).sort()).toEqual(
      [
        'budget',
        'drivers',
        'kitVersion',
        'ok',
        'results',
        'schema',
        'seed',
        'stale',
        'strategy',
        'strictExpectations',
        'summary',
        'variants',
      ].sort(),
    );
    expect(json.summary).toEqual(
      expect.objectContaining({
        pass: expect.any(Number),
        fail: 0,
        skip: 4,
        unexpectedPass: 1,
        notCaught: 1,
        stale: 1,
      }),
    );
    const xf = json.results.find(
      (r: { status: string; variant: string }) =>
        r.status === 'xfail' && r.variant === 'program-before-retry',
    );
    expect(Object.keys(xf.failure)).toEqual(
      expect.arrayContaining([
        'kind',
        'message',
        'threads',
        'objects',
        'schedule',
        'foundSchedule',
        'strategy',
        'replayCommand',
        'diagram',
        'shrink',
        'runsToFailure',
        'timeToFailureMs',
      ]),
    );
    expect(xf.failure.replayCommand).toMatch(
      /^pnpm hmmkit replay --driver test\/fixtures\/mirror-driver.ts --variant program-before-retry --scenario mprotect\/write --schedule s1:/,
    );
    expect(json.ok).toBe(false);
  });

  it('JUnit: well-formed, with failures and skips counted', () => {
    const xml = toJunitXml(report);
    const root = parseXml(xml);
    expect(root.name).toBe('testsuites');
    const suites = root.children as {
      name: string;
      attrs: Record<string, string>;
      children: { name: string; attrs: Record<string, string>; children: { name: string }[] }[];
    }[];
    const correct = suites.find((s) => s.attrs.name === 'fixture-mirror')!;
    expect(correct.attrs).toEqual(expect.objectContaining({ tests: '3', failures: '1', skipped: '1' }));
    const up = correct.children.find((c) => c.attrs.name === 'touch/write')!;
    expect(up.children[0]!.name).toBe('failure');
    const blocks = suites.find((s) => s.attrs.name === 'fixture-mirror[blocks-nonblockable]')!;
    const caught = blocks.children.find((c) => c.attrs.name === 'variant is caught')!;
    expect(caught.children[0]!.name).toBe('failure');
    const skipped = blocks.children.find((c) => c.attrs.name === 'atomic/cpu-write')!;
    expect(skipped.children[0]!.name).toBe('skipped');
    const total = suites.reduce((a, s) => a + Number(s.attrs.failures), 0);
    expect(root.attrs.failures).toBe(String(total));
    expect(xml).toContain('pretend &lt;bug&gt; &amp; &quot;quotes&quot;');
    expect(suites.find((s) => s.attrs.name === 'expectations')!.attrs.skipped).toBe('1');
  });

  it('text: one line per scenario, the failures, the variants and the summary', () => {
    const text = formatText(report);
    expect(text).toMatch(
      /^hmmkit conformance kit v1 {2}seed 0, budget runs=150,time=5s,steps=5000,shrink=60/,
    );
    expect(text).toContain('fixture-mirror (correct driver)');
    expect(text).toMatch(/✗ touch\/write +UNEXPECTED PASS/);
    expect(text).toMatch(/- atomic\/cpu-write +skip +requires atomics/);
    expect(text).toMatch(
      /✓ mprotect\/write +xfail +(stale-mapping|freed-frame|data-integrity|use-after-free)/,
    );
    expect(text).toContain(
      'replay: pnpm hmmkit replay --driver test/fixtures/mirror-driver.ts --variant program-before-retry',
    );
    expect(text).toContain('✗ fixture-mirror [blocks-nonblockable] variant not caught');
    expect(text).toContain(
      "Stale expectations\n  ! fixture-mirror: no variant 'nope' exists in driver 'fixture-mirror'",
    );
    expect(text).toMatch(
      /FAILED {2}\d+ passed, 0 failed, 4 skipped, \d+ expected failures, 1 unexpected passes; variants caught 2\/3/,
    );
  });
});
