// The Storage request (Kata's agent.proto `message Storage`) and everything that can be checked
// about one before the system is touched: its shapes and normalizeStorage in request.ts, its
// placement and validation in validate.ts.
export {
  normalizeStorage,
  withoutTrailingSlash,
  type FsGroup,
  type FsGroupInput,
  type GroupChangePolicy,
  type KataFsGroup,
  type KataStorage,
  type Storage,
  type StorageInput,
} from './request';
export {
  allowedRootOf,
  beneathRefusal,
  checkAllowedRoots,
  checkPlacement,
  optionValues,
  placeMountPoint,
  validateStorage,
  withoutOptions,
  type Placement,
  type PreparedStorage,
} from './validate';
