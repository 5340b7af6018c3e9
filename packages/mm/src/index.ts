export { Mm } from './mm.js';
