package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		environ []string
		offHeap int64
		want    int64
	}{
		{"cgroup v2 limit", map[string]string{"memory.max": "268435456\n"}, nil, 0, 241591910},
		{"less the records outside the heap", map[string]string{"memory.max": "268435456\n"}, nil, 40 << 20, 241591910 - 40<<20},
		{"records leaving the heap too little", map[string]string{"memory.max": "268435456\n"}, nil, 200 << 20, 268435456 / 4},
		{"cgroup v2 unlimited", map[string]string{"memory.max": "max\n"}, nil, 0, 0},
		{"cgroup v1 limit", map[string]string{"memory/memory.limit_in_bytes": "536870912\n"}, nil, 0, 483183820},
		{"cgroup v1 unlimited", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, nil, 0, 0},
		{"v2 preferred over v1", map[string]string{"memory.max": "1000", "memory/memory.limit_in_bytes": "2000"}, nil, 0, 900},
		{"garbage", map[string]string{"memory.max": "lots"}, nil, 0, 0},
		{"no cgroup files", nil, nil, 0, 0},
		{"GOMEMLIMIT wins", map[string]string{"memory.max": "268435456"}, []string{"GOMEMLIMIT=100MiB"}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.files {
				path := filepath.Join(root, name)
				os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, why := memoryLimit(tt.environ, root, tt.offHeap)
			if got != tt.want {
				t.Errorf("limit %d (%s), want %d", got, why, tt.want)
			}
			if got == 0 && why == "" {
				t.Error("no limit and no reason")
			}
			if tt.offHeap > 0 && (why != "") != (tt.want == 268435456/4) {
				t.Errorf("clamped to a quarter without a warning, or a warning without: %q", why)
			}
		})
	}
}
