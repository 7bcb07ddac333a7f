export {
  createBoardApp,
  startBoard,
  isLoopbackHost,
  type BoardAppOptions,
  type RunningBoard,
} from './server.js';
