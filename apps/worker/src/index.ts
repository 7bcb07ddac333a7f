export { startWorker, type RunningWorker, type StartWorkerOptions } from './worker.js';
export { actionFor, errorCode, causeChain, throttleDelayMs, type Action } from './outcomes.js';
