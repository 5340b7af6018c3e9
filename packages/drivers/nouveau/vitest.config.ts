import { hmmkitVitestConfig } from '../../../vitest.shared.js';

export default hmmkitVitestConfig();
