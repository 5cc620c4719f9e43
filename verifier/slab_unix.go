//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package verifier

import (
	"syscall"
	"unsafe"
)

// mapChunk maps a chunk of anonymous memory outside the Go heap, and
// returns it with the function that unmaps it; nil if the system refuses.
func mapChunk() (*chunk, func()) {
	size := int(unsafe.Sizeof(chunk{}))
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil
	}
	return (*chunk)(unsafe.Pointer(unsafe.SliceData(mem))), func() { syscall.Munmap(mem) }
}
