/**
 * Loading a driver's `expectations.json` from disk (Node only).
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { type Expectations, ExpectationsError, parseExpectations } from './expectations.js';

/** Reads and validates an expectations file; throws {@link ExpectationsError} with every problem. */
export function loadExpectations(path: string | URL): Expectations {
  const file = typeof path === 'string' ? path : path.pathname;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const msg = `cannot read expectations file ${file}: ${(e as Error).message}`;
    throw new ExpectationsError(msg, [msg]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    const msg = `${file} is not valid JSON: ${(e as Error).message}`;
    throw new ExpectationsError(msg, [msg]);
  }
  return parseExpectations(json, file);
}

/**
 * The expectations file of a driver module at `modulePath`: `<module>.expectations.json` next to
 * the module, else `expectations.json` next to the nearest `package.json` above it. Null if none.
 */
export function findExpectationsFile(modulePath: string): string | null {
  const abs = resolve(modulePath);
  const sibling = join(dirname(abs), `${basename(abs, extname(abs))}.expectations.json`);
  if (existsSync(sibling)) return sibling;
  let dir = dirname(abs);
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) {
      const f = join(dir, 'expectations.json');
      return existsSync(f) ? f : null;
    }
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}
