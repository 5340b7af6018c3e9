import { benchCpuFault } from './cpu-fault.bench.js';
import { benchNotifier } from './notifier.bench.js';

await benchNotifier();
await benchCpuFault();
