/**
 * `@hmmkit/sim/interval-tree`: an augmented interval tree with the semantics of the Linux
 * kernel's `interval_tree_insert()`, `interval_tree_remove()`, `interval_tree_iter_first()` and
 * `interval_tree_iter_next()` (closed intervals, duplicates allowed, results in ascending start
 * order with ties in insertion order).
 *
 * @example
 * ```ts
 * import { IntervalTree } from '@hmmkit/sim/interval-tree';
 *
 * const tree = new IntervalTree<string>();
 * tree.insert(0x1000, 0x1fff, 'vma A');
 * for (let n = tree.iterFirst(0x1800, 0x1800); n !== -1; n = tree.iterNext(n, 0x1800, 0x1800)) {
 *   console.log(tree.value(n)); // 'vma A'
 * }
 * ```
 *
 * @module
 */
export { IntervalTree, type NodeId } from './interval-tree.js';
