package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/exec"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/internal/bareproxy"
)

// child is a process under test.
type child struct {
	cmd    *exec.Cmd
	url    string        // base URL it serves on
	admin  string        // base URL of its runtime statistics (serveAnnounced's /metrics)
	exited chan struct{} // closed once the process has exited and been waited for
}

// startChild runs this harness binary (self) as one of its child processes
// and waits for the "listening <url> <admin url>" line it prints once it
// serves.
func startChild(ctx context.Context, self string, args ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	// Wait only once stdout is drained, as StdoutPipe requires.
	go func() {
		io.Copy(io.Discard, br)
		cmd.Wait()
		close(c.exited)
	}()
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%v: %w", args, err)
	}
	fields := strings.Fields(strings.TrimPrefix(line, "listening "))
	if len(fields) != 2 {
		c.stop()
		return nil, fmt.Errorf("%v: announced %q", args, line)
	}
	c.url, c.admin = fields[0], fields[1]
	return c, nil
}

// stop ends the process: SIGTERM, then SIGKILL if it has not exited
// within 10 s.
func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// cpu returns the process's user+system CPU seconds from /proc.
func (c *child) cpu() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100, nil // USER_HZ is 100 on Linux
}

// rss returns the process's resident set size in bytes.
func (c *child) rss() float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// raiseFileLimit lifts the soft open-files limit to the hard one, for the
// idle-connection measurement.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// serveUpstream answers 204 to everything: the upstream of the harness.
// A request with the query bareproxy.EchoQuery gets 200 and its own
// header (bareproxy.HeaderDiff).
func serveUpstream(ctx context.Context, stdout io.Writer) error {
	return serveAnnounced(ctx, stdout, bareproxy.Echo(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})))
}

// serveBare is the baseline (bareproxy.New): httputil.ReverseProxy with
// Rewrite, a transport tuned like tollgate's, and nothing else — with
// pool, also a BufferPool for its copy buffers, as tollgate has (the
// honest baseline). It adds extra to every outbound request's header, the
// same values each time.
func serveBare(ctx context.Context, upstream string, pool bool, extra http.Header, stdout io.Writer) error {
	target, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	return serveAnnounced(ctx, stdout, bareproxy.New(target, pool, extra))
}

// serveAnnounced serves h on a loopback port until ctx is cancelled, and
// the process's runtime statistics on another (runtimeStats), announcing
// "listening <url> <admin url>" on stdout once both accept connections.
func serveAnnounced(ctx context.Context, stdout io.Writer, h http.Handler) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("/", runtimeStats)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile) // -profile
	admin := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close(); admin.Close() }()
	go admin.Serve(adminLn)
	fmt.Fprintf(stdout, "listening http://%s http://%s\n", ln.Addr(), adminLn.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// runtimeStats writes, in the Prometheus text format and under the names
// tollgate's /metrics gives them (its Go collector), what the harness
// reads of a baseline process: its garbage collector's cycles and the
// runtime's CPU classes — so that a baseline's GC share is measured as
// tollgate's is.
func runtimeStats(w http.ResponseWriter, _ *http.Request) {
	samples := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/total:cpu-seconds"},
		{Name: "/cpu/classes/idle:cpu-seconds"},
	}
	metrics.Read(samples)
	fmt.Fprintf(w, "go_gc_duration_seconds_count %d\n", samples[0].Value.Uint64())
	fmt.Fprintf(w, "go_cpu_classes_gc_total_cpu_seconds_total %g\n", samples[1].Value.Float64())
	fmt.Fprintf(w, "go_cpu_classes_total_cpu_seconds_total %g\n", samples[2].Value.Float64())
	fmt.Fprintf(w, "go_cpu_classes_idle_cpu_seconds_total %g\n", samples[3].Value.Float64())
}
