//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package verifier

// mapPopulate is 0 where mmap has no MAP_POPULATE: pages fault in as
// slots are first written.
const mapPopulate = 0
