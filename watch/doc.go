// Package watch keeps a file or a directory of files current while
// tollgate runs: the users file and the signing keys directory are both
// replaced in place, usually by a Kubernetes ConfigMap or Secret update (an
// atomic swap of the ..data symlink) or by an operator.
//
// A Watcher polls: it notices another modification time, size, file
// (inode) or symlink target; content identical to the last read causes no
// load; a stamp taken within the file system's timestamp granularity of a
// modification proves nothing, so such a file is read again until its
// stamp is old enough; a version that fails to load is reported once, not
// on every poll.
//
// Rules:
//   - The owner's load function MUST NOT apply part of a version it
//     refuses: the last good version keeps serving.
//   - Reads are bounded (MaxBytes per file), so a runaway file cannot
//     exhaust memory.
package watch
