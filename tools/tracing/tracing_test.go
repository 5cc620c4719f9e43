package tracing

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/tools/internal/product"
)

// root is the repository root, relative to this package's directory (where
// go test runs the tests).
const root = product.Root

// jaegerModfile is the go.mod, relative to root, that pins Jaeger.
const jaegerModfile = "tools/jaeger/go.mod"

const (
	// route and upstream name the proxied route and its upstream in
	// tollgate's configuration: the server span is "GET api", its client
	// span "upstream backend".
	route    = "api"
	upstream = "backend"

	username = "someuser@24i.com"
	password = "qwerty123"
)

// do sends req with a bound on the whole exchange.
func do(req *http.Request) (*http.Response, error) {
	return (&http.Client{Timeout: 10 * time.Second}).Do(req)
}

func TestTracesReachJaeger(t *testing.T) {
	dir := t.TempDir()
	j := startJaeger(t, buildJaeger(t, dir), dir)
	bin := product.Build(t.Context(), t, dir)
	keys := filepath.Join(dir, "keys")
	if b, err := exec.CommandContext(t.Context(), bin, "keygen", "-alg", "ES256", "-dir", keys).CombinedOutput(); err != nil {
		t.Fatalf("tollgate keygen: %v\n%s", err, b)
	}
	usersFile := filepath.Join(dir, "users.yaml")
	product.WriteFile(t, usersFile, product.Users(t, username, password))

	for _, tc := range []struct {
		protocol string
		port     int // Jaeger's OTLP receiver for the protocol
	}{
		{"http/protobuf", j.otlpHTTP},
		{"grpc", j.otlpGRPC},
	} {
		t.Run(strings.ReplaceAll(tc.protocol, "/", "_"), func(t *testing.T) {
			// The upstream keeps the traceparent tollgate sent it.
			received := make(chan string, 1)
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case received <- r.Header.Get("Traceparent"):
				default:
				}
				io.WriteString(w, "ok")
			}))
			t.Cleanup(api.Close)
			g := startTollgate(t, bin, t.TempDir(), keys, usersFile, api.URL,
				"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:"+strconv.Itoa(tc.port),
				"OTEL_EXPORTER_OTLP_PROTOCOL="+tc.protocol,
				"OTEL_TRACES_SAMPLER=always_on",
				"OTEL_SERVICE_NAME=tollgate",
			)

			tokens := g.login(t)
			client := traceparent{traceID: randomHex(t, 16), spanID: randomHex(t, 8), flags: "01"}
			if got := g.get(t, "/"+route+"/x?"+secretQuery, tokens["access_token"], client.String()); got != http.StatusOK {
				t.Fatalf("GET /%s/x: %d", route, got)
			}
			var sent traceparent
			select {
			case h := <-received:
				sent = parseTraceparent(t, h)
			default:
				t.Fatal("the upstream got no request")
			}
			// Stopped before anything is read from Jaeger: the spans
			// still queued must have been flushed on the way out.
			g.stop(t)

			t.Run("proxied request", func(t *testing.T) {
				if sent.traceID != client.traceID || sent.flags != "01" {
					t.Errorf("the upstream got traceparent %v, want trace %s, sampled", sent, client.traceID)
				}
				tr, raw := j.trace(t, client.traceID, "GET "+route, "upstream "+upstream)
				tr.checkService(t, "tollgate")
				server := tr.only(t, "GET "+route)
				for k, want := range map[string]string{
					"span.kind":                 "server",
					"http.route":                route,
					"http.request.method":       "GET",
					"http.response.status_code": "200",
					"tollgate.auth":             "ok",
					"tollgate.upstream":         upstream,
				} {
					if got := server.tag(k); got != want {
						t.Errorf("server span: %s = %q, want %q", k, got, want)
					}
				}
				if got := server.parent(); got != client.spanID {
					t.Errorf("server span's parent %q, want the client's span %s", got, client.spanID)
				}
				up := tr.only(t, "upstream "+upstream)
				if got := up.tag("span.kind"); got != "client" {
					t.Errorf("upstream span: span.kind = %q, want client", got)
				}
				if got := up.parent(); got != server.SpanID {
					t.Errorf("upstream span's parent %q, want the server span %s", got, server.SpanID)
				}
				if up.SpanID != sent.spanID {
					t.Errorf("upstream span %s, but the upstream was sent parent %s", up.SpanID, sent.spanID)
				}
				line := g.accessLog(t, route)
				if line.TraceID != client.traceID || line.SpanID != server.SpanID {
					t.Errorf("access log trace_id %s span_id %s, want %s %s", line.TraceID, line.SpanID, client.traceID, server.SpanID)
				}
				noSecret(t, raw, tokens)
			})

			t.Run("login", func(t *testing.T) {
				// A login without traceparent starts a trace of its own:
				// the access log names it.
				line := g.accessLog(t, "oauth_token")
				tr, raw := j.trace(t, line.TraceID, "POST oauth_token", "session create")
				tr.checkService(t, "tollgate")
				s := tr.only(t, "POST oauth_token")
				if s.SpanID != line.SpanID {
					t.Errorf("span %s, the access log says %s", s.SpanID, line.SpanID)
				}
				if len(s.References) != 0 {
					t.Errorf("the login's span has a parent: %+v", s.References)
				}
				if got := tr.only(t, "session create").parent(); got != s.SpanID {
					t.Errorf("session create's parent %q, want the login's span %s", got, s.SpanID)
				}
				for k, want := range map[string]string{
					"span.kind":                 "server",
					"http.response.status_code": "200",
					"tollgate.grant":            "password",
					"tollgate.client":           "anonymous",
				} {
					if got := s.tag(k); got != want {
						t.Errorf("login span: %s = %q, want %q", k, got, want)
					}
				}
				noSecret(t, raw, tokens)

				// An operator finds it by service, operation and grant.
				var services struct{ Data []string }
				j.get(t, "/api/services", &services)
				if !slices.Contains(services.Data, "tollgate") {
					t.Errorf("Jaeger's services: %v, want tollgate", services.Data)
				}
				q := url.Values{
					"service":   {"tollgate"},
					"operation": {"POST oauth_token"},
					"tags":      {`{"tollgate.grant":"password"}`},
					"lookback":  {"1h"},
					"limit":     {"100"},
				}
				var found struct{ Data []jaegerTrace }
				j.get(t, "/api/traces?"+q.Encode(), &found)
				if !slices.ContainsFunc(found.Data, func(tr jaegerTrace) bool { return tr.TraceID == line.TraceID }) {
					t.Errorf("a search by service, operation and tollgate.grant did not find the login's trace %s among %d", line.TraceID, len(found.Data))
				}
			})
		})
	}
}

// The proxied request also carries a session cookie and a query string
// with a secret, which no span may record.
const (
	secretCookie = "legacy-session=c00kie-s3cret"
	secretQuery  = "pin=0000"
)

// noSecret fails the test if a trace's JSON holds the password, the login
// name (also the tokens' email claim), the cookie, the query string or one
// of the tokens.
func noSecret(t *testing.T, raw []byte, tokens map[string]string) {
	t.Helper()
	secrets := map[string]string{"password": password, "login name": username, "cookie": "c00kie-s3cret", "query": secretQuery}
	for _, k := range []string{"access_token", "refresh_token", "id_token"} {
		if v := tokens[k]; v != "" {
			secrets[k] = v
		}
	}
	for name, v := range secrets {
		if bytes.Contains(raw, []byte(v)) {
			t.Errorf("the trace carries the %s", name)
		}
	}
}

// traceparent is a W3C traceparent header's fields (version 00).
type traceparent struct {
	traceID, spanID, flags string
}

func (tp traceparent) String() string { return "00-" + tp.traceID + "-" + tp.spanID + "-" + tp.flags }

func parseTraceparent(t *testing.T, h string) traceparent {
	t.Helper()
	f := strings.Split(h, "-")
	if len(f) != 4 || f[0] != "00" || len(f[1]) != 32 || len(f[2]) != 16 || len(f[3]) != 2 {
		t.Fatalf("traceparent %q", h)
	}
	return traceparent{traceID: f[1], spanID: f[2], flags: f[3]}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// jaeger is a running Jaeger with in-memory storage.
type jaeger struct {
	*process
	query              string // the query API's base URL
	otlpHTTP, otlpGRPC int    // the OTLP receiver's ports
}

// jaegerConfig is Jaeger's configuration (an OpenTelemetry Collector's):
// an OTLP receiver writing to in-memory storage and the query API reading
// it, each listener on loopback, no metrics server and no traces of
// Jaeger's own (the query API would send them to localhost:4317).
const jaegerConfig = `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 1000
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:%d
      grpc:
        endpoint: 127.0.0.1:%d
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

func startJaeger(t *testing.T, bin, dir string) *jaeger {
	t.Helper()
	ports := freePorts(t, 4)
	config := filepath.Join(dir, "jaeger.yaml")
	product.WriteFile(t, config, fmt.Sprintf(jaegerConfig, ports[0], ports[1], ports[2], ports[3]))
	j := &jaeger{
		// No environment: nothing in the test's may reconfigure it.
		process:  start(t, "jaeger", []string{}, bin, "--config", config),
		query:    "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		otlpHTTP: ports[2],
		otlpGRPC: ports[3],
	}
	// The collector logs this once every extension and every pipeline
	// component has started.
	j.waitOutput(t, time.Minute, func(line []byte) bool {
		return bytes.Contains(line, []byte("Everything is ready. Begin running and processing data."))
	})
	return j
}

// freePorts returns n loopback ports that were free a moment ago. Jaeger
// cannot be given port 0 (it would not say which port it got), so they
// are found by listening and closing; all are held until the last is
// found, so they differ.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// get reads a JSON response of the query API into out.
func (j *jaeger) get(t *testing.T, path string, out any) {
	t.Helper()
	status, body := j.fetch(t, path)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

func (j *jaeger) fetch(t *testing.T, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", j.query+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := do(req)
	if err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, j.output.String())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// trace polls the query API until the trace has a span of each of the
// names, and returns it with its JSON. Spans reach the store shortly
// after Jaeger has acknowledged them.
func (j *jaeger) trace(t *testing.T, id string, names ...string) (*jaegerTrace, []byte) {
	t.Helper()
	var tr *jaegerTrace
	var raw []byte
	var last string
	eventually(t, 10*time.Second, func() string { return fmt.Sprintf("trace %s with spans %q: last answer %s", id, names, last) }, func() bool {
		status, body := j.fetch(t, "/api/traces/"+id)
		last = fmt.Sprintf("%d %s", status, body)
		if status != http.StatusOK {
			return false
		}
		var resp struct{ Data []jaegerTrace }
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("GET /api/traces/%s: %v\n%s", id, err, body)
		}
		if len(resp.Data) != 1 {
			return false
		}
		tr, raw = &resp.Data[0], body
		return !slices.ContainsFunc(names, func(n string) bool { return len(tr.spans(n)) == 0 })
	})
	return tr, raw
}

// jaegerTrace is a trace as Jaeger's query API returns it.
type jaegerTrace struct {
	TraceID   string       `json:"traceID"`
	Spans     []jaegerSpan `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

type jaegerSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
	ProcessID string `json:"processID"`
}

// spans returns the trace's spans named name.
func (tr *jaegerTrace) spans(name string) []jaegerSpan {
	var out []jaegerSpan
	for _, s := range tr.Spans {
		if s.OperationName == name {
			out = append(out, s)
		}
	}
	return out
}

// only returns the trace's one span named name.
func (tr *jaegerTrace) only(t *testing.T, name string) jaegerSpan {
	t.Helper()
	s := tr.spans(name)
	if len(s) != 1 {
		t.Fatalf("%d spans named %q in trace %s", len(s), name, tr.TraceID)
	}
	return s[0]
}

// checkService checks that every span of the trace is service's.
func (tr *jaegerTrace) checkService(t *testing.T, service string) {
	t.Helper()
	for _, s := range tr.Spans {
		if got := tr.Processes[s.ProcessID].ServiceName; got != service {
			t.Errorf("span %q is of service %q, want %q", s.OperationName, got, service)
		}
	}
}

// tag returns the span's tag key as text, or "" if it has none.
func (s jaegerSpan) tag(key string) string {
	for _, tg := range s.Tags {
		if tg.Key == key {
			return fmt.Sprint(tg.Value)
		}
	}
	return ""
}

// parent returns the span ID the span is a child of, or "".
func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// gateway is a running tollgate serve.
type gateway struct {
	*process
	public, admin string // host:port
}

// startTollgate runs tollgate serve with token endpoints, an in-memory
// session store and one route to upstreamURL; otel are the OTEL_*
// variables.
func startTollgate(t *testing.T, bin, dir, keys, usersFile, upstreamURL string, otel ...string) *gateway {
	t.Helper()
	config := filepath.Join(dir, "tollgate.yaml")
	product.WriteFile(t, config, fmt.Sprintf(`
upstreams:
  - {name: %s, url: %q}
routes:
  - {name: %s, prefix: /%s, upstream: %s}
clients:
  - {id: anonymous, grants: [password]}
`, upstream, upstreamURL, route, route, upstream))
	env := append([]string{
		"TOLLGATE_LISTEN=127.0.0.1:0",
		"TOLLGATE_ADMIN_LISTEN=127.0.0.1:0",
		"TOLLGATE_PUBLIC_URL=https://auth.test",
		"TOLLGATE_SIGNING_KEYS_DIR=" + keys,
		"TOLLGATE_USERS_FILE=" + usersFile,
		"TOLLGATE_CONFIG_FILE=" + config,
		"TOLLGATE_SESSION_STORE=memory",
		"TOLLGATE_SHUTDOWN_DELAY=0s",
		"TOLLGATE_DRAIN_TIMEOUT=5s",
		"TOLLGATE_LOG_FORMAT=json",
	}, otel...)
	g := &gateway{process: start(t, "tollgate serve", env, bin, "serve")}
	g.waitOutput(t, 30*time.Second, func(line []byte) bool {
		var l struct{ Msg, Public, Admin string }
		if json.Unmarshal(line, &l) != nil || l.Msg != "tollgate listening" {
			return false
		}
		g.public, g.admin = l.Public, l.Admin
		return true
	})
	eventually(t, 30*time.Second, func() string { return "tollgate is not ready:\n" + g.output.String() }, func() bool {
		req, err := http.NewRequestWithContext(t.Context(), "GET", "http://"+g.admin+"/readyz", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return g
}

// login runs the password grant and returns the token response's strings.
func (g *gateway) login(t *testing.T) map[string]string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {"anonymous"}, "username": {username}, "password": {password}}
	req, err := http.NewRequestWithContext(t.Context(), "POST", "http://"+g.public+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	tokens := map[string]string{}
	for k, v := range out {
		if s, ok := v.(string); ok {
			tokens[k] = s
		}
	}
	if tokens["access_token"] == "" {
		t.Fatalf("login: no access token in %s", b)
	}
	return tokens
}

// get sends a GET with a bearer token and a traceparent and returns the
// status code.
func (g *gateway) get(t *testing.T, path, token, tp string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", "http://"+g.public+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Traceparent", tp)
	req.Header.Set("Cookie", secretCookie)
	resp, err := do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// stop sends SIGTERM and waits for a clean exit, which flushes the spans
// still queued.
func (g *gateway) stop(t *testing.T) {
	t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("tollgate did not stop on SIGTERM:\n%s", g.output.String())
	}
	if g.err != nil {
		t.Fatalf("tollgate serve: %v\n%s", g.err, g.output.String())
	}
	if out := g.output.String(); strings.Contains(out, "exporting the last spans failed") {
		t.Fatalf("tollgate could not flush its spans:\n%s", out)
	}
}

// accessLogLine is the part of an access log line the tests read.
type accessLogLine struct {
	Msg     string
	Route   string
	TraceID string `json:"trace_id"`
	SpanID  string `json:"span_id"`
}

// accessLog returns the one access log line of the route.
func (g *gateway) accessLog(t *testing.T, route string) accessLogLine {
	t.Helper()
	var found []accessLogLine
	sc := bufio.NewScanner(strings.NewReader(g.output.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l accessLogLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "request" && l.Route == route {
			found = append(found, l)
		}
	}
	if len(found) != 1 || found[0].TraceID == "" {
		t.Fatalf("%d access log lines of route %s:\n%s", len(found), route, g.output.String())
	}
	return found[0]
}

// process is a started command whose output is kept for the test to read
// and for failure messages. It is killed at the end of the test if it is
// still running.
type process struct {
	name   string
	cmd    *exec.Cmd
	output syncBuffer    // stdout and stderr
	exited chan struct{} // closed once cmd.Wait has returned
	err    error         // cmd.Wait's error; read after exited is closed
}

func start(t *testing.T, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout = &p.output
	p.cmd.Stderr = &p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill() // ErrProcessDone if it has stopped
		<-p.exited
	})
	return p
}

// waitOutput waits until match accepts a line of the process's output. It
// fails the test if the process exits first or timeout passes.
func (p *process) waitOutput(t *testing.T, timeout time.Duration, match func(line []byte) bool) {
	t.Helper()
	eventually(t, timeout, func() string { return p.name + " did not start:\n" + p.output.String() }, func() bool {
		select {
		case <-p.exited:
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.output.String())
		default:
		}
		return slices.ContainsFunc(bytes.Split([]byte(p.output.String()), []byte("\n")), match)
	})
}

// eventually calls cond every 20 ms until it returns true, and fails the
// test with what's message if it has not within timeout.
func eventually(t *testing.T, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("after %v: %s", timeout, what())
		case <-t.Context().Done():
			t.Fatalf("%v: %s", t.Context().Err(), what())
		}
	}
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// buildJaeger returns Jaeger at the version jaegerModfile pins, built as a
// `go tool` (so cached whole, link included: test.sh builds it the same
// way beforehand). It is built without -race: the race detector is for
// tollgate's code. dir is unused: the binary stays in the build cache.
func buildJaeger(t *testing.T, _ string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", "tool", "-modfile="+jaegerModfile, "-n", "jaeger")
	cmd.Dir = root
	start := time.Now()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go tool -n jaeger: %v\n%s", err, stderr.String())
	}
	bin := strings.TrimSpace(string(out))
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("go tool -n jaeger printed %q: %v", bin, err)
	}
	t.Logf("built Jaeger in %v", time.Since(start).Round(time.Second))
	return bin
}
