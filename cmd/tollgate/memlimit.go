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
// v1 memory/memory.limit_in_bytes), so that a burst of logins or renewals
// makes the collector work harder instead of the container being killed.
// It returns 0 and why when it sets none: GOMEMLIMIT is already set (the
// runtime read it), or there is no limit to read.
func memoryLimit(environ []string, root string) (int64, string) {
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
		return int64(float64(n) * memoryLimitShare), ""
	}
	return 0, "no cgroup memory limit found"
}

// applyMemoryLimit sets the soft memory limit memoryLimit computes for the
// cgroup tollgate runs in, and says so.
func applyMemoryLimit(environ []string, logger *zap.Logger) {
	limit, why := memoryLimit(environ, "/sys/fs/cgroup")
	if limit == 0 {
		logger.Debug("Go memory limit left alone", zap.String("why", why))
		return
	}
	debug.SetMemoryLimit(limit)
	logger.Info("Go memory limit set to 90% of the container's", zap.Int64("bytes", limit))
}
