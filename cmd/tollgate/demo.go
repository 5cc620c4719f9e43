package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/issuer"
)

// The demo's user and clients, shaped like the fielded clients' examples
// (docs/CLIENTS.md).
const (
	demoUser     = "demo@example.com"
	demoPassword = "demo-password"
	demoPartner  = "10000"
	demoClient   = "1d29e6d7-18cf-407d-a064-e4f8c4baefab" // the client_id of docs/CLIENTS.md §4.1
	demoTV       = "demo-tv"                              // a set-top box signing in with the device flow
)

// demo runs the gateway with an ephemeral signing key, a demo user and a
// built-in echo upstream on loopback, and prints tokens and curl commands to
// try. It needs no configuration; TOLLGATE_LISTEN and TOLLGATE_ADMIN_LISTEN
// still apply.
func demo(ctx context.Context, reload <-chan os.Signal, environ []string, stdout, stderr io.Writer) error {
	cfg, _, errs := parseConfig(environ)
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
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
	if !set("SESSION_STORE") {
		// Sessions in memory: one-time refresh tokens, logout and the
		// device sign-in work without a Redis.
		cfg.SessionStore = "memory"
	}
	cfg.ShutdownDelay = 0 // no load balancer to warn

	dir, err := os.MkdirTemp("", "tollgate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// ES256 signs access tokens (the newest key); an RS256 key signs ID
	// tokens, as OpenID Connect clients expect by default.
	if _, _, err := issuer.GenerateKey(filepath.Join(dir, "keys"), "RS256", time.Now().Add(-time.Second)); err != nil {
		return err
	}
	if _, _, err := issuer.GenerateKey(filepath.Join(dir, "keys"), "ES256", time.Now()); err != nil {
		return err
	}
	if err := writeDemoUsers(filepath.Join(dir, "users.yaml")); err != nil {
		return err
	}
	echo, err := startEcho()
	if err != nil {
		return err
	}
	defer echo.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("public listener: %w", err)
	}
	public := "http://" + ln.Addr().String()
	cfg.UpstreamURL = "http://" + echo.Addr().String()
	cfg.SigningKeysDir = filepath.Join(dir, "keys")
	cfg.UsersFile = filepath.Join(dir, "users.yaml")
	cfg.PublicURL = public
	cfg.File.Clients = []FileClient{
		{ID: "anonymous", Grants: []string{"password", "refresh_token"}},
		{ID: demoClient, Grants: []string{"password", "refresh_token"}, PartnerID: demoPartner},
		{ID: demoTV, Grants: []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"}},
	}
	if err := errors.Join(cfg.check()...); err != nil {
		ln.Close()
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	logger, err := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil {
		ln.Close()
		return err
	}
	defer logger.Sync()
	m, err := NewMain(cfg, logger)
	if err != nil {
		ln.Close()
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	for _, w := range m.warnings {
		logger.Warn(w)
	}
	return start(ctx, m, reload, ln, func(m *Main) error { return printDemo(ctx, m, stdout) })
}

// printDemo logs the demo user in through the issuer — the tokens are
// exactly what the token endpoints hand out — and prints them with the
// commands to try. The expired token comes from the same issuer code with
// a clock two hours back.
func printDemo(ctx context.Context, m *Main, stdout io.Writer) error {
	valid, err := m.issuer.Login(ctx, "anonymous", demoUser, demoPassword)
	if err != nil {
		return fmt.Errorf("demo login: %w", err)
	}
	past, err := issuer.New(m.cfg.issuerConfig(), m.keys, m.userStore, m.verifier, nil,
		issuer.WithClock(func() time.Time { return time.Now().Add(-2 * time.Hour) }))
	if err != nil {
		return err
	}
	expired, err := past.Login(ctx, "anonymous", demoUser, demoPassword)
	if err != nil {
		return fmt.Errorf("demo login: %w", err)
	}
	return demoText.Execute(stdout, map[string]string{
		"Public": m.cfg.PublicURL, "Admin": "http://" + m.AdminAddr(), "Token": valid.Access, "Expired": expired.Access,
		"Refresh": valid.Refresh, "User": demoUser, "Password": demoPassword, "Partner": demoPartner, "Client": demoClient, "TV": demoTV,
	})
}

var demoText = template.Must(template.New("demo").Parse(`
tollgate demo is running (Ctrl-C to stop)
  public listener: {{.Public}}   (token endpoints; every other path goes to a built-in echo upstream, auth required)
  admin listener:  {{.Admin}}    (/metrics, /healthz, /readyz)
  demo user: {{.User}} / {{.Password}} (partner {{.Partner}})

A valid access token (ES256, 1 hour) and its refresh token, as the password grant hands them out:
TOKEN={{.Token}}
REFRESH={{.Refresh}}

# 1. A valid call: the echo upstream shows the identity headers tollgate added.
curl -s {{.Public}}/api/hello -H "Authorization: Bearer $TOKEN"

# 2. An expired token: 401 with WWW-Authenticate: Bearer error="invalid_token".
curl -si {{.Public}}/api/hello -H 'Authorization: Bearer {{.Expired}}'

# 3. A spoofed identity header: X-User-Id is removed and replaced from the token.
curl -s {{.Public}}/api/hello -H "Authorization: Bearer $TOKEN" -H 'X-User-Id: admin'

# 4. No token at all: 401.
curl -si {{.Public}}/api/hello

# 5. Log in as the fielded clients do (docs/CLIENTS.md §1.1, §3.2, §4.1):
curl --location --request POST '{{.Public}}/api/auth/v1/access_tokens' --header 'Content-Type: application/x-www-form-urlencoded' --data-raw '{"grant_type": "password", "credentials": {"username": "{{.User}}", "password": "{{.Password}}"}}'
curl -X POST -H 'Content-Type: application/x-www-form-urlencoded' -d 'client_id=anonymous& grant_type=password& response_type=token& scope=openid& username={{.User}}& password={{.Password}}' {{.Public}}/auth/realms/platform/protocol/openid-connect/token
curl '{{.Public}}/oauth/token?partnerId={{.Partner}}' -H 'Content-Type: application/x-www-form-urlencoded' -X 'POST' -d 'client_id={{.Client}}&grant_type=password&email={{.User}}&password={{.Password}}'

# 6. Renew with the refresh token (docs/CLIENTS.md §3.4's request):
curl -X POST -H 'Content-Type: application/x-www-form-urlencoded' -d " grant_type=refresh_token& client_id=anonymous& refresh_token=$REFRESH" {{.Public}}/auth/realms/platform/protocol/openid-connect/token

# 7. Who am I (docs/CLIENTS.md §4.2), discovery and keys:
curl {{.Public}}/oauth/userinfo -H "Authorization:Bearer $TOKEN"
curl -s {{.Public}}/.well-known/openid-configuration
curl -s {{.Public}}/.well-known/jwks.json

# 8. Sign a TV box in without a keyboard (device flow, RFC 8628). The box asks for a code:
curl -s {{.Public}}/oauth/device/code -d client_id={{.TV}} -d scope=openid -d device_name='Living room TV'
#    Open its verification_uri_complete in a browser (on a phone: the QR code at
#    {{.Public}}/oauth/device/qr?user_code=USER_CODE), sign in as {{.User}} / {{.Password}}
#    and allow. Meanwhile the box polls every interval seconds with its device_code;
#    authorization_pending until you allow, then its tokens:
curl -s {{.Public}}/oauth/token -d grant_type=urn:ietf:params:oauth:grant-type:device_code -d client_id={{.TV}} -d device_code=DEVICE_CODE

# 9. Metrics and readiness.
curl -s {{.Admin}}/metrics | grep tollgate_
curl -s {{.Admin}}/readyz
`))

// writeDemoUsers writes the demo users file.
func writeDemoUsers(path string) error {
	hash, err := identity.PasswordHasher{}.Hash([]byte(demoPassword))
	if err != nil {
		return err
	}
	users := fmt.Sprintf(`users:
  - id: demo-user
    username: demo
    email: %s
    password_hash: %q
    profiles: [demo-profile, kids-profile]
    role: AGENT
    partner_id: %q
    claims: {agentId: f9683b7b-e332-4864-b725-ac6cdc207dbd, siteId: 10115}
`, demoUser, hash, demoPartner)
	return os.WriteFile(path, []byte(users), 0o600)
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
