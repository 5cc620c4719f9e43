package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/session"
)

// The session store scenarios (-store): the refresh grant against a
// gateway with the memory store and with a Redis store, and the hot token
// against the Redis gateway once its revoked set holds revokedSessions
// ids.
const (
	storeMemory = "memory"
	storeRedis  = "redis"
	storeAll    = "all"

	revokedSessions = 10000
	revokeBatch     = 1000 // ids per Revoke call, so per pub/sub message
)

// startRedis runs redis-server (the binary bin) on a unix socket in dir,
// without TCP and without persistence, and waits until it answers PING.
// It returns the server and its session store URL.
func startRedis(ctx context.Context, bin, dir string) (*child, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	sock := filepath.Join(dir, "redis.sock")
	logFile, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return nil, "", err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.CommandContext(ctx, bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("redis-server (install it, or pass -redis-server): %w", err)
	}
	c := &child{cmd: cmd, url: "unix://" + sock, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(c.exited) }()

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !pingRedis(sock) {
		select {
		case <-c.exited:
			b, _ := os.ReadFile(logFile.Name())
			return nil, "", fmt.Errorf("redis-server exited before it answered (%v):\n%s", cmd.ProcessState, b)
		case <-ctx.Done():
			c.stop()
			return nil, "", fmt.Errorf("redis-server: no PONG on %s within %s", sock, readyTimeout)
		case <-tick.C:
		}
	}
	return c, c.url, nil
}

// pingRedis reports whether a Redis server answers PING on the unix
// socket sock.
func pingRedis(sock string) bool {
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.TrimSpace(line) == "+PONG"
}

// seedRevoked revokes n made-up sessions in the Redis store at storeURL,
// the way `tollgate sessions revoke` does, in batches of revokeBatch: a
// gateway following the store hears each batch on the revocation channel.
func seedRevoked(ctx context.Context, storeURL string, n int) error {
	r, err := session.NewRedis(session.RedisConfig{URL: storeURL}, zap.NewNop())
	if err != nil {
		return err
	}
	defer r.Close()
	until := time.Now().Add(time.Hour) // outlives any run
	ids := make([]string, 0, revokeBatch)
	for i := range n {
		ids = append(ids, fmt.Sprintf("bench-revoked-%06d", i))
		if len(ids) == revokeBatch || i == n-1 {
			if err := r.Revoke(ctx, ids, session.CauseOperator, until); err != nil {
				return fmt.Errorf("seed revoked sessions: %w", err)
			}
			ids = ids[:0]
		}
	}
	return nil
}

// waitRevoked polls the gateway's /metrics until its revoked set
// (tollgate_revoked_sessions) holds at least n sessions, for at most
// readyTimeout.
func waitRevoked(ctx context.Context, admin string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var seen float64
	for {
		if v, err := revokedGauge(ctx, client, admin); err == nil {
			seen = v
			if v >= float64(n) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the gateway's tollgate_revoked_sessions is %v, not %d, after %s", seen, n, readyTimeout)
		case <-tick.C:
		}
	}
}

// revokedGauge reads tollgate_revoked_sessions from the admin listener's
// /metrics.
func revokedGauge(ctx context.Context, client *http.Client, admin string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "tollgate_revoked_sessions "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no tollgate_revoked_sessions in /metrics")
}

// refreshChains is the load of the refresh grant with one-time refresh
// tokens: connection c starts from handles[c] (a session of its own) and
// presents each time the refresh token the previous answer returned.
// After a failed request it presents the same token again, which the
// gateway takes as a retry within the reuse interval.
func refreshChains(ctx context.Context, base string, handles []string) load {
	return func(c int) sender {
		handle := handles[c]
		return sender{
			next: func(int) (*http.Request, error) {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth/token",
					strings.NewReader("grant_type=refresh_token&client_id=anonymous&refresh_token="+handle))
				if err == nil {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				return req, err
			},
			answer: func(body []byte) error {
				next, err := refreshTokenOf(body)
				if err == nil {
					handle = next
				}
				return err
			},
		}
	}
}

// refreshTokenField starts the refresh token in a token response.
var refreshTokenField = []byte(`"refresh_token":"`)

// refreshTokenOf finds the refresh token in a token response. It scans
// rather than decodes the JSON: the load generator shares the cores with
// the gateway, and a handle ("tgr_" and base64url) needs no unescaping.
func refreshTokenOf(body []byte) (string, error) {
	_, rest, ok := bytes.Cut(body, refreshTokenField)
	if !ok {
		return "", errors.New("no refresh_token in the answer")
	}
	tok, _, ok := bytes.Cut(rest, []byte(`"`))
	if !ok || len(tok) == 0 || bytes.IndexByte(tok, '\\') >= 0 {
		return "", errors.New("refresh_token not a plain JSON string")
	}
	return string(tok), nil
}

// printStoreRatios prints the ratios the session store scenarios are
// judged by (docs/PERFORMANCE.md), those of the scenarios that ran: each
// store's refresh grant against the stateless one (e) of the same run,
// and the hot token with a full revoked set against the bare proxy (b),
// next to (c)'s.
func printStoreRatios(w io.Writer, results map[string]result) {
	e := results["e"]
	var refresh []string
	if m, ok := results["e-memory"]; ok {
		refresh = append(refresh, fmt.Sprintf("memory %.2f (target ≥ 1.0)", m.rps/e.rps))
	}
	if r, ok := results["e-redis"]; ok {
		refresh = append(refresh, fmt.Sprintf("Redis %.2f (target ≥ 0.8; redis-server CPU %.3f s/10k on top of the gateway's %.3f)",
			r.rps/e.rps, r.sidecarCPUPer10k, r.cpuPer10k))
	}
	if len(refresh) > 0 {
		fmt.Fprintf(w, "sessions: refresh grant tokens/s ×(e) stateless: %s\n", strings.Join(refresh, ", "))
	}
	if r, ok := results["c-revoked"]; ok {
		b, c := results["b"], results["c"]
		fmt.Fprintf(w, "sessions: one hot token with %d revoked sessions: %.2f×(b) requests/s (target ≥ 0.95; (c) %.2f), p99 %.2f×(b) ((c) %.2f)\n",
			revokedSessions, r.rps/b.rps, c.rps/b.rps, float64(r.p99)/float64(b.p99), float64(c.p99)/float64(b.p99))
	}
}
