import { benchIntervalTree } from './interval-tree.bench.js';

await benchIntervalTree();
