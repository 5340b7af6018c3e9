import { Access } from './op.js';

const names: Record<number, string> = Object.fromEntries(
  Object.entries(Access).map(([k, v]) => [v, k.replace(/^./, (c) => c.toLowerCase())]),
);

/** `accessName(Access.Read) === 'read'`. */
export function accessName(a: Access): string {
  return names[a] ?? String(a);
}
