package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/verifier"
)

const (
	demoIssuer   = "tollgate-demo"
	demoAudience = "demo-api"
	demoKeyID    = "demo-key"
)

// demo runs the gateway with an ephemeral signing key and a built-in echo
// upstream on loopback, and prints tokens and curl commands to try. It needs
// no configuration; TOLLGATE_LISTEN and TOLLGATE_ADMIN_LISTEN still apply.
func demo(ctx context.Context, environ []string, stdout, stderr io.Writer) error {
	cfg, _, errs := parseConfig(environ)
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %v", errs)
	}
	set := func(name string) bool {
		return slices.ContainsFunc(environ, func(kv string) bool { return strings.HasPrefix(kv, envPrefix+name+"=") })
	}
	if !set("LISTEN") {
		cfg.Listen = "127.0.0.1:8080"
	}
	if !set("ADMIN_LISTEN") {
		cfg.AdminListen = "127.0.0.1:9090"
	}
	if !set("LOG_FORMAT") {
		cfg.LogFormat = "console"
	}
	cfg.ShutdownDelay = 0 // no load balancer to warn

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	echo, err := startEcho()
	if err != nil {
		return err
	}
	defer echo.Close()
	cfg.UpstreamURL = "http://" + echo.Addr().String()
	cfg.extraIssuers = []verifier.IssuerConfig{{
		Issuer:     demoIssuer,
		Audiences:  []string{demoAudience},
		Algorithms: []string{"ES256"},
		Sources: []verifier.KeySource{verifier.NewKeySet(&verifier.Key{
			ID: demoKeyID, Algorithms: []string{"ES256"}, Public: &key.PublicKey,
		})},
	}}
	if err := errors.Join(cfg.check()...); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	logger, err := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	defer logger.Sync()
	m, err := NewMain(cfg, logger)
	if err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		return err
	}
	now := time.Now()
	valid, err := demoToken(key, now, time.Hour)
	if err != nil {
		return err
	}
	expired, err := demoToken(key, now.Add(-2*time.Hour), time.Hour)
	if err != nil {
		return err
	}
	err = demoText.Execute(stdout, map[string]string{
		"Public": "http://" + m.PublicAddr(), "Admin": "http://" + m.AdminAddr(),
		"Token": valid, "Expired": expired,
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return m.Close()
}

var demoText = template.Must(template.New("demo").Parse(`
tollgate demo is running (Ctrl-C to stop)
  public listener: {{.Public}}   (every path goes to a built-in echo upstream; auth required)
  admin listener:  {{.Admin}}    (/metrics, /healthz, /readyz)

A valid access token (ES256, 1 hour):
TOKEN={{.Token}}

# 1. A valid call: the echo upstream shows the identity headers tollgate added.
curl -s {{.Public}}/api/hello -H "Authorization: Bearer $TOKEN"

# 2. An expired token: 401 with WWW-Authenticate: Bearer error="invalid_token".
curl -si {{.Public}}/api/hello -H 'Authorization: Bearer {{.Expired}}'

# 3. A spoofed identity header: X-User-Id is removed and replaced from the token.
curl -s {{.Public}}/api/hello -H "Authorization: Bearer $TOKEN" -H 'X-User-Id: admin'

# 4. No token at all: 401.
curl -si {{.Public}}/api/hello

# 5. Metrics and readiness.
curl -s {{.Admin}}/metrics | grep tollgate_
curl -s {{.Admin}}/readyz
`))

// demoToken mints an access token for the demo user, issued at iat.
func demoToken(key *ecdsa.PrivateKey, iat time.Time, ttl time.Duration) (string, error) {
	sid := make([]byte, 8)
	rand.Read(sid)
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": demoIssuer, "aud": demoAudience, "sub": "demo-user",
		"iat": iat.Unix(), "nbf": iat.Unix(), "exp": iat.Add(ttl).Unix(),
		"jti": hex.EncodeToString(sid), "type": "access", "profile": "demo-profile",
		"sid": hex.EncodeToString(sid), "client_id": "demo", "scope": "openid profile",
	})
	t.Header["typ"] = "at+jwt"
	t.Header["kid"] = demoKeyID
	return t.SignedString(key)
}

// echoServer is the demo's upstream: it answers every request with the
// method, path and headers it received.
type echoServer struct {
	ln  net.Listener
	srv *http.Server
}

func startEcho() (*echoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &echoServer{ln: ln, srv: &http.Server{
		Handler:           http.HandlerFunc(echoHandler),
		ReadHeaderTimeout: 10 * time.Second,
	}}
	go e.srv.Serve(ln)
	return e, nil
}

func (e *echoServer) Addr() net.Addr { return e.ln.Addr() }
func (e *echoServer) Close() error   { return e.srv.Close() }

func echoHandler(w http.ResponseWriter, r *http.Request) {
	headers := map[string]string{}
	for k, v := range r.Header {
		headers[k] = strings.Join(v, ", ")
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "headers": headers})
}
