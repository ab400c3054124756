// The sandbox's storage table, its locks, the request runner and the release, one concept a file;
// only the Sandbox class and its option and result types leave this folder.
export { Sandbox, type SandboxOptions, type AddStoragesOptions, type StorageInfo } from './sandbox';
