'use strict';
// What every job of the guest run shares: where the repository is, and running a command.
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const repo = path.resolve(__dirname, '../..');

/** Runs `cmd` with `args` (execFileSync options `o` override); returns its stdout, stderr shown. Throws on failure. */
function sh(cmd, args, o = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...o });
}

module.exports = { repo, sh };
