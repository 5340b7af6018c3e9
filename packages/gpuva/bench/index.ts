import { benchSmMap } from './sm-map.bench.js';

const only = process.argv[2];
if (!only || only === 'sm-map') await benchSmMap();
