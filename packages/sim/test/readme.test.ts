import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README example', () => {
  it('is the file examples/counter.ts, verbatim', () => {
    const block = /## Example\n\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBe(readFileSync(new URL('../examples/counter.ts', import.meta.url), 'utf8'));
  });

  it('runs and prints what the README says it prints', async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      lines.push(args.join(' '));
    });
    await import('../examples/counter.js');
    spy.mockRestore();
    const shown = /Output of the first `console.log`:\n\n```\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(lines[0]).toBe(shown);
    expect(lines[1]).toMatch(/^replay with s1:/);
    expect(lines[2]).toBe('true');
  });
});
