export {
  CHECK_STATUSES,
  FINAL_STATUSES,
  ITEM_STATUSES,
  type CheckStatus,
  type FinalStatus,
  type ItemStatus,
} from './status.js';
export type { ResultRecord, StoryResult } from './result.js';
export {
  USERNAME_MAX_LENGTH,
  isUsername,
  usernameProblem,
  type UsernameProblem,
} from './username.js';
