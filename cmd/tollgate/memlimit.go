package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// memoryLimitShare is the part of the container's memory limit given to
// the Go heap as a soft limit; the rest covers goroutine stacks, the
// runtime's own memory and the kernel's accounting of the process.
const memoryLimitShare = 0.9

// noLimit is where cgroup v1 reports "no limit" (a page-rounded MaxInt64).
const noLimit = 1 << 62

// memoryLimit returns the soft memory limit serve gives the Go runtime:
// 90% of the memory limit of the cgroup under root (v2 memory.max, else
// v1 memory/memory.limit_in_bytes), less offHeap — memory tollgate maps
// outside the Go heap, which the runtime does not count (the token
// cache's records) — so that a burst of logins or renewals makes the
// collector work harder instead of the container being killed; never less
// than a quarter of the container's limit, and then why, as a warning. It
// returns 0 and why when it sets none: GOMEMLIMIT is already set (the
// runtime read it), or there is no limit to read.
func memoryLimit(environ []string, root string, offHeap int64) (int64, string) {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "GOMEMLIMIT=") {
			return 0, "GOMEMLIMIT is set"
		}
	}
	for _, file := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, "the container has no memory limit"
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Sprintf("unreadable cgroup memory limit %q", s)
		}
		if n >= noLimit {
			return 0, "the container has no memory limit"
		}
		limit := int64(float64(n)*memoryLimitShare) - offHeap
		if limit < n/4 {
			return n / 4, fmt.Sprintf("the token cache's records (%d bytes at most, outside the Go heap) leave the heap less than a quarter of the container's %d bytes: the container may be killed when the cache fills; lower TOLLGATE_TOKEN_CACHE_SIZE or raise the limit", offHeap, n)
		}
		return limit, ""
	}
	return 0, "no cgroup memory limit found"
}

// applyMemoryLimit sets the soft memory limit memoryLimit computes for the
// cgroup tollgate runs in, and says so.
func applyMemoryLimit(environ []string, offHeap int64, logger *zap.Logger) {
	limit, why := memoryLimit(environ, "/sys/fs/cgroup", offHeap)
	if limit == 0 {
		logger.Debug("Go memory limit left alone", zap.String("why", why))
		return
	}
	if why != "" {
		logger.Warn(why)
	}
	debug.SetMemoryLimit(limit)
	logger.Info("Go memory limit set to 90% of the container's, less the token cache's records outside the heap",
		zap.Int64("bytes", limit), zap.Int64("off_heap_bytes", offHeap))
}
