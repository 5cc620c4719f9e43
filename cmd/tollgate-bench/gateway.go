package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The user the harness logs in as (scenarios (c), (e) and (f)).
const (
	benchUser     = "bench"
	benchPassword = "bench-password"
)

// readyTimeout bounds the wait for a gateway's /readyz.
const readyTimeout = 30 * time.Second

// gateway is a `tollgate serve` process under test.
type gateway struct {
	*child
	admin string        // base URL of its admin listener
	key   crypto.Signer // its signing key, to mint tokens it accepts
	kid   string
}

// buildTollgate builds the tollgate command of this module into dir.
func buildTollgate(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "tollgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/tollgate/tollgate/cmd/tollgate")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build tollgate (run inside the tollgate module, or pass -tollgate): %w", err)
	}
	return bin, nil
}

// keygenOutput is what `tollgate keygen` prints.
var keygenOutput = regexp.MustCompile(`^wrote (.+) \((\S+), kid (\S+)\)\n?$`)

// startGateway runs `tollgate serve` (the binary bin) with a fresh signing
// key and users file in dir, both made by bin itself, and waits until its
// /readyz answers 200. env adds settings (NAME=value) to the harness's.
func startGateway(ctx context.Context, bin, dir, upstream, alg string, pprof bool, env ...string) (*gateway, error) {
	keys := filepath.Join(dir, "keys")
	out, err := exec.CommandContext(ctx, bin, "keygen", "-alg", alg, "-dir", keys).Output()
	if err != nil {
		return nil, fmt.Errorf("tollgate keygen: %w", err)
	}
	m := keygenOutput.FindStringSubmatch(string(out))
	if m == nil {
		return nil, fmt.Errorf("tollgate keygen printed %q", out)
	}
	key, err := readSigningKey(m[1])
	if err != nil {
		return nil, err
	}
	hash := exec.CommandContext(ctx, bin, "hash-password")
	hash.Stdin = strings.NewReader(benchPassword + "\n")
	out, err = hash.Output()
	if err != nil {
		return nil, fmt.Errorf("tollgate hash-password: %w", err)
	}
	users := filepath.Join(dir, "users.yaml")
	entry := fmt.Sprintf("users:\n  - {id: bench-user, username: %s, password_hash: \"%s\", profiles: [p1]}\n", benchUser, strings.TrimSpace(string(out)))
	if err := os.WriteFile(users, []byte(entry), 0o600); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(os.Environ(),
		"TOLLGATE_LISTEN="+addr, "TOLLGATE_ADMIN_LISTEN="+adminAddr, "TOLLGATE_PPROF="+strconv.FormatBool(pprof), "TOLLGATE_UPSTREAM_URL="+upstream,
		"TOLLGATE_PUBLIC_URL=http://"+addr, "TOLLGATE_SIGNING_KEYS_DIR="+keys,
		"TOLLGATE_USERS_FILE="+users, "TOLLGATE_LOG_LEVEL=warn", "TOLLGATE_SHUTDOWN_DELAY=0s",
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	gw := &gateway{
		child: &child{cmd: cmd, url: "http://" + addr, exited: make(chan struct{})},
		admin: "http://" + adminAddr,
		key:   key,
		kid:   m[3],
	}
	go func() { cmd.Wait(); close(gw.exited) }()
	if err := gw.waitReady(ctx); err != nil {
		gw.stop()
		return nil, err
	}
	return gw, nil
}

// waitReady polls the admin listener's /readyz until it answers 200: both
// listeners are then open and the signing key is loaded.
func (gw *gateway) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, gw.admin+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-gw.exited:
			return fmt.Errorf("tollgate serve exited before it was ready: %v", gw.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("tollgate serve: %s/readyz not 200 within %s", gw.admin, readyTimeout)
		case <-tick.C:
		}
	}
}

// readSigningKey reads the PKCS#8 PEM private key `tollgate keygen` wrote.
func readSigningKey(file string) (crypto.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PKCS#8 PEM private key", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: a %T cannot sign", file, k)
	}
	return s, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// loginScope is the scope the refresh scenarios log in with under
// -no-id-token: without openid, so that no grant mints an id_token.
const loginScope = "profile"

// login runs the password grant as the bench user and returns the tokens.
// scope "" asks for the issuer's default scope (openid profile); any other
// scope must not contain openid, and the answer must then hold no
// id_token.
func login(ctx context.Context, client *http.Client, base, scope string) (refresh, access string, err error) {
	body := "grant_type=password&client_id=anonymous&username=" + benchUser + "&password=" + benchPassword
	if scope != "" {
		body += "&scope=" + url.QueryEscape(scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth/token", strings.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		IDToken      string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("bench login: %d %v", resp.StatusCode, err)
	}
	if out.AccessToken == "" || out.RefreshToken == "" {
		return "", "", errors.New("bench login: no access or refresh token in the response")
	}
	if scope != "" && out.IDToken != "" {
		return "", "", fmt.Errorf("bench login: scope %q without openid, and yet an id_token", scope)
	}
	return out.RefreshToken, out.AccessToken, nil
}

// loginMany logs in n times (a few at a time: the per-user login limit
// allows 10 attempts in flight, and argon2id has 2 cores) and returns
// the n refresh tokens, each of its own session.
func loginMany(ctx context.Context, client *http.Client, base, scope string, n int) ([]string, error) {
	out := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	const parallel = 4
	for w := range parallel {
		wg.Go(func() {
			for i := w; i < n; i += parallel {
				out[i], _, errs[i] = login(ctx, client, base, scope)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// mintMany signs n distinct access tokens the gateway accepts, in
// parallel; their jti is prefix and a number, so that sets minted with
// different prefixes share no token (EdDSA signatures are
// deterministic).
func mintMany(key crypto.Signer, alg, kid, iss, prefix string, n int) ([]string, error) {
	method := jwt.GetSigningMethod(alg)
	if method == nil {
		return nil, fmt.Errorf("no signing method %q", alg)
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
					"iss": iss, "aud": "tollgate", "sub": "bench-user", "sid": "s", "profile": "p1", "jti": prefix + strconv.Itoa(i),
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

// cpuProfile saves a CPU profile of the gateway taken over about d.
func cpuProfile(ctx context.Context, admin string, d time.Duration, file string) error {
	secs := max(int(d.Seconds())-1, 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
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
