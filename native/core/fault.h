// Crash points for the journal's recovery tests: a process that dies at any step of a request or
// a release must be recoverable by the next one. With KATA_STORAGE_FAULT_KILL_AT=N in the
// environment when the addon loads, the Nth crash point this process passes (counted across
// every thread, the addon's steps and the Sandbox's journal appends alike) kills it with SIGKILL,
// the one death nothing can clean up after. Unset (always, outside those tests), a point is one
// load of a flag.
#pragma once

namespace kata {

// Passes one crash point: SIGKILL here if it is the configured one.
void CrashPoint();

}  // namespace kata
