import { benchExplorer } from './explorer.bench.js';
import { benchIntervalTree } from './interval-tree.bench.js';

const only = process.argv[2];
if (!only || only === 'explorer') await benchExplorer();
if (!only || only === 'interval-tree') await benchIntervalTree();
