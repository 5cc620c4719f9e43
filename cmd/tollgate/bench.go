package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/issuer"
)

// benchmark runs the load harness: an upstream, a bare
// httputil.ReverseProxy and tollgate, each in its own process on loopback,
// driven in turn with the same load; it prints one table with ratios
// against the bare proxy.
func benchmark(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 5*time.Second, "load per scenario (bounded)")
	conns := fs.Int("conns", 32, "concurrent keep-alive connections")
	tokens := fs.Int("tokens", 100000, "distinct valid tokens for the cache-miss scenario")
	idle := fs.Int("idle", 10000, "idle keep-alive connections for the memory measurement (0: skip)")
	profiles := fs.String("profile", "", "directory for CPU profiles of scenarios (c) and (e) (empty: none)")
	alg := fs.String("alg", "ES256", "algorithm of the gateway's signing key, so of every token: ES256, EdDSA or RS256")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *duration > time.Minute || *duration <= 0 {
		return errors.New("bench: -duration must be within (0, 1m]")
	}
	raiseFileLimit()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tollgate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	upstream, err := startChild(ctx, self, []string{"bench-upstream"}, nil)
	if err != nil {
		return err
	}
	defer upstream.stop()
	bare, err := startChild(ctx, self, []string{"bench-bare", upstream.url}, nil)
	if err != nil {
		return err
	}
	defer bare.stop()
	gw, key, kid, admin, err := startBenchGateway(ctx, self, dir, upstream.url, *alg, *profiles != "")
	if err != nil {
		return err
	}
	defer gw.stop()

	client := newLoadClient(*conns)
	refresh, access, err := benchLogin(ctx, client, gw.url)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "minting %d tokens for the cache-miss scenario…\n", *tokens)
	many, err := mintMany(key, *alg, kid, gw.url, *tokens)
	if err != nil {
		return err
	}
	hot := []string{"Bearer " + access}
	get := func(base string, auths []string) request {
		return func(i int) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/channels/1", nil)
			if err == nil && auths != nil {
				req.Header.Set("Authorization", auths[i%len(auths)])
			}
			return req, err
		}
	}
	post := func(body string) request {
		return func(int) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.url+"/oauth/token", strings.NewReader(body))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			return req, err
		}
	}
	scenarios := []struct {
		name, profile string
		proc          *child
		req           request
	}{
		{"(a) direct upstream", "", upstream, get(upstream.url, nil)},
		{"(b) bare httputil.ReverseProxy", "", bare, get(bare.url, hot)},
		{"(c) tollgate, one hot token", "c", gw, get(gw.url, hot)},
		{fmt.Sprintf("(d) tollgate, %d distinct %s tokens", len(many), *alg), "", gw, get(gw.url, many)},
		{fmt.Sprintf("(e) refresh grant, %s", *alg), "e", gw, post("grant_type=refresh_token&client_id=anonymous&refresh_token=" + refresh)},
		{"(f) password grant (argon2id default)", "", gw, post("grant_type=password&client_id=anonymous&username=bench&password=bench-password")},
	}
	var results []result
	for _, s := range scenarios {
		fmt.Fprintf(stderr, "%s: %s…\n", s.name, *duration)
		var profiled chan error
		if *profiles != "" && s.profile != "" {
			profiled = make(chan error, 1)
			go func() { profiled <- cpuProfile(ctx, admin, *duration, filepath.Join(*profiles, s.profile+".pprof")) }()
		}
		r, err := drive(ctx, client, s.proc, s.req, *conns, *duration)
		if profiled != nil {
			if perr := <-profiled; perr != nil {
				fmt.Fprintf(stderr, "profile of %s: %v\n", s.name, perr)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		r.name = s.name
		results = append(results, r)
	}
	printTable(stdout, results, results[1])
	if *idle > 0 {
		perConn, n, err := freshIdleMemory(ctx, self, filepath.Join(dir, "idle"), upstream.url, *alg, *idle)
		if err != nil {
			fmt.Fprintf(stdout, "\nidle keep-alive connections: not measured: %v\n", err)
		} else {
			fmt.Fprintf(stdout, "\nidle keep-alive connections: %d held open, %.1f KiB RSS each\n", n, perConn/1024)
		}
	}
	fmt.Fprintf(stdout, "\n%s, GOMAXPROCS %d, %d connections, %s per scenario; load generator on the same machine\n",
		time.Now().Format("2006-01-02"), runtime.GOMAXPROCS(0), *conns, *duration)
	return nil
}

// request builds the i-th request of a scenario.
type request func(i int) (*http.Request, error)

type result struct {
	name              string
	requests, errors  int
	rps               float64
	p50, p99, p999    time.Duration
	cpuPer10k, rssMiB float64
}

// drive sends requests on conns connections for d and measures the
// process under test.
func drive(ctx context.Context, client *http.Client, proc *child, next request, conns int, d time.Duration) (result, error) {
	var r result
	cpu0, err := proc.cpu()
	if err != nil {
		return r, err
	}
	deadline := time.Now().Add(d)
	var seq atomic.Int64
	var failed atomic.Int64
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range conns {
		wg.Go(func() {
			buf := make([]time.Duration, 0, 1<<16)
			for time.Now().Before(deadline) && ctx.Err() == nil && len(buf) < 1<<20 {
				req, err := next(int(seq.Add(1)))
				if err != nil {
					failed.Add(1)
					return
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 400 {
					failed.Add(1)
					continue
				}
				buf = append(buf, time.Since(t0))
			}
			lat[c] = buf
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := proc.cpu()
	if err != nil {
		return r, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r.requests, r.errors = len(all), int(failed.Load())
	if r.requests == 0 {
		return r, fmt.Errorf("no successful request (%d failed)", r.errors)
	}
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(float64(len(all))*p))] }
	r.rps = float64(r.requests) / elapsed.Seconds()
	r.p50, r.p99, r.p999 = pct(0.50), pct(0.99), pct(0.999)
	r.cpuPer10k = (cpu1 - cpu0) / float64(r.requests) * 10000
	r.rssMiB = proc.rss() / (1 << 20)
	return r, nil
}

func printTable(w io.Writer, results []result, base result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trequests/s\t×(b)\tp50\tp99\t×(b)\tp99.9\tCPU s/10k req\t×(b)\tRSS MiB\terrors\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%s\t%s\t%.2f\t%s\t%.3f\t%.2f\t%.1f\t%d\t\n", r.name, r.rps, r.rps/base.rps,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), float64(r.p99)/float64(base.p99),
			r.p999.Round(time.Microsecond), r.cpuPer10k, r.cpuPer10k/base.cpuPer10k, r.rssMiB, r.errors)
	}
	tw.Flush()
}

func newLoadClient(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConns = conns * 2
	t.MaxIdleConnsPerHost = conns * 2
	t.MaxConnsPerHost = conns
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// child is a process under test.
type child struct {
	cmd *exec.Cmd
	url string
}

// startChild runs self with args and waits for the "listening <url>" line
// (bench children) or for env's listen address to answer (serve).
func startChild(ctx context.Context, self string, args, env []string) (*child, error) {
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%v: %w", args, err)
	}
	c.url = strings.TrimSpace(strings.TrimPrefix(line, "listening "))
	go io.Copy(io.Discard, out)
	return c, nil
}

func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
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

// cpuProfile saves a CPU profile of the gateway taken over about d.
func cpuProfile(ctx context.Context, admin string, d time.Duration, file string) error {
	secs := max(int(d.Seconds())-1, 1)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin, secs), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// startBenchGateway runs `tollgate serve` with a fresh key and a bench user.
func startBenchGateway(ctx context.Context, self, dir, upstream, alg string, pprof bool) (*child, crypto.Signer, string, string, error) {
	keyFile, kid, err := issuer.GenerateKey(filepath.Join(dir, "keys"), alg, time.Now())
	if err != nil {
		return nil, nil, "", "", err
	}
	pemBytes, _ := os.ReadFile(keyFile)
	block, _ := pem.Decode(pemBytes)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, "", "", err
	}
	hash, err := identity.PasswordHasher{}.Hash([]byte("bench-password"))
	if err != nil {
		return nil, nil, "", "", err
	}
	users := filepath.Join(dir, "users.yaml")
	os.WriteFile(users, []byte("users:\n  - {id: bench-user, username: bench, password_hash: \""+hash+"\", profiles: [p1]}\n"), 0o600)
	addr, err := freeAddr()
	if err != nil {
		return nil, nil, "", "", err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, nil, "", "", err
	}
	env := []string{
		"TOLLGATE_LISTEN=" + addr, "TOLLGATE_ADMIN_LISTEN=" + adminAddr, "TOLLGATE_PPROF=" + strconv.FormatBool(pprof), "TOLLGATE_UPSTREAM_URL=" + upstream,
		"TOLLGATE_PUBLIC_URL=http://" + addr, "TOLLGATE_SIGNING_KEYS_DIR=" + filepath.Join(dir, "keys"),
		"TOLLGATE_USERS_FILE=" + users, "TOLLGATE_LOG_LEVEL=warn", "TOLLGATE_SHUTDOWN_DELAY=0s",
	}
	c, err := startChild(ctx, self, []string{"bench-serve"}, env)
	if err != nil {
		return nil, nil, "", "", err
	}
	return c, k.(crypto.Signer), kid, "http://" + adminAddr, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func benchLogin(ctx context.Context, client *http.Client, base string) (refresh, access string, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth/token",
		strings.NewReader("grant_type=password&client_id=anonymous&username=bench&password=bench-password"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var out struct{ AccessToken, RefreshToken string }
	var raw map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != 200 {
		return "", "", fmt.Errorf("bench login: %d %v", resp.StatusCode, err)
	}
	out.AccessToken, _ = raw["access_token"].(string)
	out.RefreshToken, _ = raw["refresh_token"].(string)
	return out.RefreshToken, out.AccessToken, nil
}

// mintMany signs n distinct access tokens the gateway accepts, in
// parallel.
func mintMany(key crypto.Signer, alg, kid, iss string, n int) ([]string, error) {
	method := jwt.GetSigningMethod(alg)
	if method == nil {
		return nil, fmt.Errorf("bench: no signing method %q", alg)
	}
	out := make([]string, n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	workers := 4
	now := time.Now()
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				t := jwt.NewWithClaims(method, jwt.MapClaims{
					"iss": iss, "aud": "tollgate", "sub": "bench-user", "sid": "s", "profile": "p1", "jti": strconv.Itoa(i),
					"type": "access", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "client_id": "anonymous", "scope": "openid",
				})
				t.Header["kid"] = kid
				t.Header["typ"] = "at+jwt"
				s, err := t.SignedString(key)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				out[i] = "Bearer " + s
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	return out, nil
}

// freshIdleMemory measures idle connections on a gateway of its own: the
// one that served the scenarios holds heap it is still returning to the
// system, which would hide the connections' memory.
func freshIdleMemory(ctx context.Context, self, dir, upstream, alg string, n int) (float64, int, error) {
	gw, _, _, _, err := startBenchGateway(ctx, self, dir, upstream, alg, false)
	if err != nil {
		return 0, 0, err
	}
	defer gw.stop()
	return idleMemory(ctx, gw, n)
}

// idleMemory opens n keep-alive connections to the gateway, sends one
// request on each and leaves them idle, and returns the RSS growth per
// connection.
func idleMemory(ctx context.Context, gw *child, n int) (float64, int, error) {
	u, _ := url.Parse(gw.url)
	before := gw.rss()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			if i == 0 {
				return 0, 0, err
			}
			n = i
			break
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /api/x HTTP/1.1\r\nHost: bench\r\n\r\n")
	}
	for _, c := range conns { // read each 401 so the server's side is idle
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	if ctx.Err() != nil {
		return 0, 0, ctx.Err()
	}
	return (gw.rss() - before) / float64(n), n, nil
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

// benchUpstream answers 204 to everything: the upstream of the harness.
func benchUpstream(ctx context.Context, stdout io.Writer) error {
	return serveBench(ctx, stdout, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
}

// benchBare is the baseline: httputil.ReverseProxy with Rewrite, a
// transport tuned like tollgate's, and nothing else.
func benchBare(ctx context.Context, upstream string, stdout io.Writer) error {
	target, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 256, 64
	return serveBench(ctx, stdout, &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: t,
	})
}

func serveBench(ctx context.Context, stdout io.Writer, h http.Handler) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	fmt.Fprintf(stdout, "listening http://%s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// benchServe is `serve` that announces its address on stdout once ready.
func benchServe(ctx context.Context, environ []string, stdout, stderr io.Writer) error {
	return serve(ctx, environ, stderr, func(m *Main) { fmt.Fprintf(stdout, "listening http://%s\n", m.PublicAddr()) })
}
