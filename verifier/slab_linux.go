package verifier

import "syscall"

// mapPopulate asks mmap to fault a chunk's pages in as it maps them.
const mapPopulate = syscall.MAP_POPULATE
