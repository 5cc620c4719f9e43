package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/issuer"
)

// buildBinary builds tollgate into a temporary directory, to run it as
// operators do: as a process that gets signals.
func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "tollgate")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is a running tollgate binary and its log lines.
type process struct {
	cmd *exec.Cmd
	// lines receives every line the process writes to stderr.
	lines chan string
	// exited is closed when the process has exited; err is then set.
	exited chan struct{}
	err    error
	mu     sync.Mutex
	log    []string // guarded by mu
}

// startProcess runs bin serve with environ only, and kills it at cleanup
// if the test has not stopped it.
func startProcess(t *testing.T, bin string, environ []string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, "serve"), lines: make(chan string, 1000), exited: make(chan struct{})}
	p.cmd.Env = environ
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log = append(p.log, sc.Text())
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for it; it is in log
			}
		}
	}()
	go func() {
		<-read // Wait closes the pipe: read it to the end first
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitLog returns the first log line, as JSON, whose msg is msg. It fails
// if the process exits first or nothing comes within a minute.
func (p *process) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		select {
		case line := <-p.lines:
			var entry map[string]any
			if json.Unmarshal([]byte(line), &entry) == nil && entry["msg"] == msg {
				return entry
			}
		case <-p.exited:
			t.Fatalf("the process exited (%v) before logging %q; it logged:\n%s", p.err, msg, p.logged())
		case <-deadline.C:
			t.Fatalf("no log line %q within a minute; logged:\n%s", msg, p.logged())
		}
	}
}

func (p *process) logged() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

// TestSIGHUPReloads runs the binary and sends it SIGHUP after adding a
// user to the users file: the process keeps serving, logs the reload and
// its outcome, and the new user can log in. SIGTERM still stops it
// cleanly afterwards.
func TestSIGHUPReloads(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	keys, users := filepath.Join(dir, "keys"), filepath.Join(dir, "users.yaml")
	if _, _, err := issuer.GenerateKey(keys, "ES256", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, []byte(sourceDocUsers(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, bin, []string{
		"TOLLGATE_LISTEN=127.0.0.1:0",
		"TOLLGATE_ADMIN_LISTEN=127.0.0.1:0",
		"TOLLGATE_UPSTREAM_URL=" + testkit.Echo(t, "api").URL,
		"TOLLGATE_PUBLIC_URL=http://tollgate.test",
		"TOLLGATE_SIGNING_KEYS_DIR=" + keys,
		"TOLLGATE_USERS_FILE=" + users,
		"TOLLGATE_RELOAD_INTERVAL=1h", // only SIGHUP reloads within the test
		"TOLLGATE_SHUTDOWN_DELAY=0s",
	})
	listening := p.waitLog(t, "tollgate listening")
	public, admin := "http://"+listening["public"].(string), "http://"+listening["admin"].(string)
	loginAs := func(user, pw string) int {
		resp, _ := send(t, http.MethodPost, public+"/oauth/token", "grant_type=password&client_id=anonymous&username="+user+"&password="+pw,
			"Content-Type", "application/x-www-form-urlencoded")
		return resp.StatusCode
	}
	if code := loginAs("newcomer", "pw"); code != http.StatusBadRequest {
		t.Fatalf("unknown user: %d", code)
	}

	edited := sourceDocUsers(t) + "  - {id: \"77\", username: newcomer, password_hash: \"" + bcryptHash(t, "pw") + "\"}\n"
	if err := os.WriteFile(users, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	requested := p.waitLog(t, "reload requested by SIGHUP")
	if nr, _ := requested["not_reloaded"].(string); !strings.Contains(nr, "environment") || !strings.Contains(nr, "YAML") {
		t.Errorf("the reload line does not say the configuration is not reloaded: %v", requested)
	}
	if got := p.waitLog(t, "users file reloaded"); got["users"] != float64(4) {
		t.Errorf("users file reloaded with %v users, want 4", got["users"])
	}
	p.waitLog(t, "signing keys reloaded")
	if code := loginAs("newcomer", "pw"); code != http.StatusOK {
		t.Errorf("the new user after SIGHUP: %d", code)
	}
	if code := loginAs("someuser@24i.com", "qwerty123"); code != http.StatusOK {
		t.Errorf("an existing user after SIGHUP: %d", code)
	}
	select {
	case <-p.exited:
		t.Fatalf("the process exited after SIGHUP: %v", p.err)
	default:
	}
	if resp := get(t, admin+"/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("readyz after SIGHUP: %d", resp.StatusCode)
	}

	// A broken users file on SIGHUP is refused; the last good one serves.
	if err := os.WriteFile(users, []byte("users: [this is: not yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "users file reload failed; the last good version keeps serving")
	if code := loginAs("newcomer", "pw"); code != http.StatusOK {
		t.Errorf("the last good users file after a broken one: %d", code)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("exit after SIGTERM: %v", p.err)
		}
	case <-time.After(time.Minute):
		t.Fatal("no exit within a minute of SIGTERM")
	}
	if !strings.Contains(p.logged(), `"msg":"stopped"`) {
		t.Errorf("no clean stop logged:\n%s", p.logged())
	}
}

// TestConfigProblemsInOnePass gives check-config and serve a configuration
// with a problem of every stage at once: an unknown YAML key and a value of
// the wrong type, a bad duration in the environment, a route to an unknown
// upstream, a bad header mapping and a missing key file. Both report every
// one in a single run, with the same list, and serve logs the unknown
// variable warning although it refuses to start.
func TestConfigProblemsInOnePass(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tollgate.yaml")
	yml := `
upstreams:
  - {name: api, url: "http://127.0.0.1:1"}
routes:
  - {prefix: /, upstream: api}
  - {prefix: /v2, upstream: nowhere}
  - {prefix: /v3, upstream: api, strip_prefix: maybe}
headers:
  - {header: "X Bad Header", claim: sub}
trusted_issuers:
  - issuer: https://login.example.test
    audiences: [api]
    key_files: [` + filepath.Join(dir, "missing.pem") + `]
    colour: blue
realm_name: typo
`
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := []string{
		"TOLLGATE_LISTEN=127.0.0.1:0",
		"TOLLGATE_ADMIN_LISTEN=127.0.0.1:0",
		"TOLLGATE_CONFIG_FILE=" + file,
		"TOLLGATE_UPSTREAM_TIMEOUT=soon",
		"TOLLGATE_UPSTREAM_TIMOUT=30s", // a typo: a warning
	}
	want := []string{
		"unknown key colour", // YAML: every unknown key…
		"unknown key realm_name",
		"maybe",                      // …and every value of the wrong type
		"TOLLGATE_UPSTREAM_TIMEOUT",  // the environment
		`unknown upstream "nowhere"`, // what building the proxy finds
		"X Bad Header",
		"missing.pem", // what building the verifier finds
	}

	var stdout, stderr strings.Builder
	checkErr := run(t.Context(), []string{"check-config"}, environ, nil, &stdout, &stderr)
	if checkErr == nil {
		t.Fatal("check-config accepted the configuration")
	}
	for _, w := range want {
		if !strings.Contains(checkErr.Error(), w) {
			t.Errorf("check-config does not report %s:\n%v", w, checkErr)
		}
	}
	if !strings.Contains(stderr.String(), "warning: unknown environment variable TOLLGATE_UPSTREAM_TIMOUT") {
		t.Errorf("check-config: no warning for the unknown variable:\n%s", stderr.String())
	}
	// A value that does not parse is reported once, not also as the zero
	// value it would have left.
	if strings.Contains(checkErr.Error(), "TOLLGATE_UPSTREAM_TIMEOUT: must be positive") {
		t.Errorf("the bad duration is reported twice:\n%v", checkErr)
	}
	if strings.Contains(checkErr.Error(), "main.") {
		t.Errorf("Go type names in the report:\n%v", checkErr)
	}

	stderr.Reset()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // serve would run until cancelled if it started
	defer cancel()
	serveErr := run(ctx, []string{"serve"}, environ, nil, io.Discard, &stderr)
	if serveErr == nil {
		t.Fatal("serve started with the configuration")
	}
	if serveErr.Error() != checkErr.Error() {
		t.Errorf("serve and check-config report differently:\nserve:\n%v\ncheck-config:\n%v", serveErr, checkErr)
	}
	var warned bool
	for line := range strings.Lines(stderr.String()) {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil && entry["level"] == "warn" &&
			entry["msg"] == "unknown environment variable TOLLGATE_UPSTREAM_TIMOUT is ignored" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("serve did not log the unknown variable warning when refusing to start:\n%s", stderr.String())
	}
}

// TestParseFileReportsEveryProblem checks the YAML pass alone: every
// unknown key and wrong type, with its line, and a second document.
func TestParseFileReportsEveryProblem(t *testing.T) {
	f, errs := parseFile([]byte("realm: r\nroutes:\n  - {prefix: /a, upstrem: x}\n  - {prefix: /b, strip_prefix: maybe}\nextra: 1\n---\nrealm: b\n"))
	var got []string
	for _, err := range errs {
		got = append(got, err.Error())
	}
	want := []string{"line 3: unknown key upstrem", "line 4: cannot unmarshal", "line 5: unknown key extra", "more than one YAML document"}
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("problem %d: %q, want %s…", i, got[i], w)
		}
	}
	// What could be decoded is kept, for the checks that follow.
	if f.Realm != "r" || len(f.Routes) != 2 || f.Routes[1].Prefix != "/b" {
		t.Errorf("decoded %+v", f)
	}
}

// TestHijackedConnectionsDrain checks that a WebSocket through the gateway
// gets the drain window on shutdown: it stays usable after Close begins
// and the public listener has stopped accepting; Close waits for it to
// close by itself, and cuts it (and logs it) at the drain timeout.
func TestHijackedConnectionsDrain(t *testing.T) {
	upstream := wsEcho(t)
	for _, tt := range []struct {
		name         string
		drainTimeout time.Duration
		clientCloses bool
	}{
		{"cut at the drain timeout", 2 * time.Second, false},
		{"closed by the client within it", time.Minute, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			logger := zap.New(zapcore.NewTee(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Core(), core))
			g := startGatewayLogger(t, logger, "", "TOLLGATE_UPSTREAM_URL="+upstream.URL,
				fmt.Sprintf("TOLLGATE_DRAIN_TIMEOUT=%s", tt.drainTimeout))
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			h := http.Header{}
			h.Set("Authorization", "Bearer "+g.token(t, nil))
			c, _, err := websocket.Dial(ctx, "ws://"+g.m.PublicAddr()+"/live", &websocket.DialOptions{HTTPHeader: h})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.CloseNow()
			echo := func(msg string) error {
				if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
					return err
				}
				_, got, err := c.Read(ctx)
				if err == nil && string(got) != "user-42: "+msg {
					err = fmt.Errorf("echoed %q", got)
				}
				return err
			}
			if err := echo("before"); err != nil {
				t.Fatal(err)
			}

			began := time.Now()
			closed := make(chan error, 1)
			go func() { closed <- g.m.Close() }()
			// Once a new connection is refused, Shutdown is under way.
			waitFor(t, func() bool {
				conn, err := net.Dial("tcp", g.m.PublicAddr())
				if err != nil {
					return true
				}
				conn.Close()
				return false
			})
			for i := range 3 {
				if err := echo(fmt.Sprintf("draining %d", i)); err != nil {
					t.Fatalf("the WebSocket during the drain window: %v", err)
				}
			}
			select {
			case err := <-closed:
				t.Fatalf("Close returned (%v) while a WebSocket was open in its drain window", err)
			default:
			}

			if tt.clientCloses {
				if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
					t.Fatalf("closing the WebSocket: %v", err)
				}
			}
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close: %v", err)
				}
			case <-ctx.Done():
				t.Fatal("Close did not return")
			}
			cut := logs.FilterMessage("hijacked connections cut at the drain timeout").All()
			if tt.clientCloses {
				if len(cut) != 0 {
					t.Errorf("a WebSocket closed by its client was reported cut: %v", cut[0].ContextMap())
				}
				return
			}
			if elapsed := time.Since(began); elapsed < tt.drainTimeout {
				t.Errorf("Close returned after %v, before the drain timeout %v", elapsed, tt.drainTimeout)
			}
			if len(cut) != 1 || cut[0].ContextMap()["connections"] != int64(1) {
				t.Errorf("cut connections logged: %v", logs.FilterMessage("hijacked connections cut at the drain timeout").All())
			}
			if err := echo("after"); err == nil {
				t.Error("the WebSocket still works after Close")
			} else if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the WebSocket was not closed, the read timed out: %v", err)
			}
		})
	}
}

// wsEcho is a WebSocket upstream that echoes each message prefixed with
// the X-User-Id it was given.
func wsEcho(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte(r.Header.Get("X-User-Id")+": "), msg...)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(s.Close)
	return s
}
