export { runCli } from './cli.js';
export {
  normaliseUsername,
  readEntries,
  splitCsvLine,
  formatFromName,
  type InputFormat,
  type RawEntry,
} from './input.js';
