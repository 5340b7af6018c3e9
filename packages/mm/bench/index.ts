import { benchCpuFault } from './cpu-fault.bench.js';
import { benchHmm } from './hmm.bench.js';
import { benchNotifier } from './notifier.bench.js';

await benchNotifier();
await benchCpuFault();
await benchHmm();
