package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/verifier"
)

func TestParseForm(t *testing.T) {
	tests := []struct {
		body string
		want map[string]string
		err  bool
	}{
		{"client_id=anonymous& grant_type=password& scope=openid", map[string]string{"client_id": "anonymous", "grant_type": "password", "scope": "openid"}, false},
		{" grant_type=refresh_token& client_id=anonymous& refresh_token=a.b.c", map[string]string{"grant_type": "refresh_token", "client_id": "anonymous", "refresh_token": "a.b.c"}, false},
		{"password=%20lead+and+trail%20&x=", map[string]string{"password": " lead and trail ", "x": ""}, false},
		{"email=client1@company.com&password=******", map[string]string{"email": "client1@company.com", "password": "******"}, false},
		{"a=1&&b=2&", map[string]string{"a": "1", "b": "2"}, false},
		{"a=1&a=2", nil, true},
		{"a=%zz", nil, true},
	}
	for _, tt := range tests {
		got, err := parseForm([]byte(tt.body))
		if (err != nil) != tt.err {
			t.Errorf("%q: err %v", tt.body, err)
			continue
		}
		if tt.err {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("%q: %v is not invalid_request", tt.body, err)
			}
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("%q: %v, want %v", tt.body, got, tt.want)
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("%q: %s = %q, want %q", tt.body, k, got[k], v)
			}
		}
	}
}

func FuzzParseForm(f *testing.F) {
	for _, s := range []string{
		"client_id=anonymous& grant_type=password& response_type=token& scope=openid& username=<---USERNAME--->& password=<---PASSWORD--->",
		" grant_type=refresh_token& client_id=anonymous& refresh_token=<----REFRESH_TOKEN---->",
		"client_id=1d29e6d7-18cf-407d-a064-e4f8c4baefab&grant_type=password&email=client1@company.com&password=******",
		"a=1&a=2", "%", "=&=", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		m, err := parseForm([]byte(body))
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error %v is not invalid_request", err)
			}
			return
		}
		for k := range m {
			if k != strings.TrimSpace(k) {
				t.Fatalf("key %q keeps surrounding space", k)
			}
		}
	})
}

func FuzzParseJSONAPI(f *testing.F) {
	for _, s := range []string{
		`{"grant_type": "password", "credentials": {"username": "someuser@24i.com", "password": "qwerty123"}}`,
		"{\n\"grant_type\": \"password\",\n\"credentials\": {\n\"username\": \"someuser@24i.com\",\n\"password\": \"qwerty123\"\n}",
		`{"grant_type":"refresh_token","refresh_token":"a.b.c"}`,
		`{"credentials":{"email":"x@y"}} trailing`, `[]`, `null`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		g, err := parseJSONAPI([]byte(body))
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) || strings.Contains(err.Error(), body) && len(body) > 20 {
				t.Fatalf("error %v", err)
			}
			return
		}
		if g == nil {
			t.Fatal("nil grant without error")
		}
	})
}

// fixture is an Issuer over a keys directory and a users file.
type fixture struct {
	iss  *Issuer
	keys *Keys
	now  time.Time
}

func newFixture(t testing.TB, alg string) *fixture {
	t.Helper()
	dir := t.TempDir()
	if _, _, err := GenerateKey(filepath.Join(dir, "keys"), alg, time.Now()); err != nil {
		t.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	users := filepath.Join(dir, "users.yaml")
	os.WriteFile(users, []byte("users:\n  - {id: \"u1\", username: alice, password_hash: \""+string(hash)+"\", profiles: [p1]}\n"), 0o600)
	u, err := identity.New(identity.Config{Path: users}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys(KeysConfig{Dir: filepath.Join(dir, "keys")}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{keys: keys, now: time.Now()}
	v, err := verifier.New(verifier.Config{Issuers: []verifier.IssuerConfig{{
		Issuer: "https://auth.test", Audiences: []string{"api"}, Sources: []verifier.KeySource{keys},
	}}}, zap.NewNop(), verifier.WithClock(func() time.Time { return f.now }))
	if err != nil {
		t.Fatal(err)
	}
	f.iss, err = New(Config{Issuer: "https://auth.test", Audience: "api"}, keys, u, v, zap.NewNop(), WithClock(func() time.Time { return f.now }))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNewReportsEveryProblem(t *testing.T) {
	f := newFixture(t, "ES256")
	_, err := New(Config{Issuer: "not a url", Clients: []Client{{ID: ""}, {ID: "a", Grants: []string{"implicit"}}, {ID: "a"}}},
		f.keys, nil, nil, zap.NewNop())
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{`issuer: not an http(s) URL: "not a url"`, "no access token audience", "client 0: id is empty", `grant "implicit"`, `client "a": defined twice`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestKeysRefuseWeakOrForeignKeys(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadKeys(KeysConfig{Dir: dir}, zap.NewNop(), nil); err == nil || !strings.Contains(err.Error(), "tollgate keygen") {
		t.Errorf("empty directory: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "a.pem"), []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600)
	if _, err := LoadKeys(KeysConfig{Dir: dir}, zap.NewNop(), nil); err == nil || !strings.Contains(err.Error(), "not a private key") {
		t.Errorf("public key as signing key: %v", err)
	}
}

func BenchmarkMint(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			f := newFixture(b, alg)
			client := &Client{ID: "anonymous"}
			user := &identity.User{ID: "u1", Profiles: []string{"p1"}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.iss.mint(client, user, "openid profile", "p1", tokenSession{id: "sid"}, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRefreshGrant is one refresh_token grant through the HTTP
// handler, per signing key algorithm and refresh token kind: parse, verify
// the refresh token, look the user up, mint a new access and refresh
// token (no ID token: the refresh does not ask for openid), encode. b.N
// grants take the reported ns/op; tokens/s = 1e9 / ns/op.
func BenchmarkRefreshGrant(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		for _, signing := range []string{RefreshMAC, RefreshSignature} {
			b.Run(alg+"/"+signing, func(b *testing.B) { benchmarkRefreshGrant(b, alg, signing) })
		}
	}
}

func benchmarkRefreshGrant(b *testing.B, alg, signing string) {
	f := newFixture(b, alg)
	f.iss.cfg.RefreshSigning = signing
	h := f.iss.Handler()
	login := httptest.NewRecorder()
	h.ServeHTTP(login, httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader("grant_type=password&client_id=anonymous&username=alice&password=pw")))
	var out map[string]any
	json.Unmarshal(login.Body.Bytes(), &out)
	refresh, _ := out["refresh_token"].(string)
	if refresh == "" {
		b.Fatalf("login: %s", login.Body)
	}
	body := "grant_type=refresh_token&client_id=anonymous&refresh_token=" + refresh
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(body)))
		if rec.Code != 200 {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

// blockingUsers holds every password check until released.
type blockingUsers struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingUsers) Authenticate(ctx context.Context, login string, pw []byte) (*identity.User, error) {
	b.entered <- struct{}{}
	<-b.release
	return nil, identity.ErrInvalidCredentials
}

func (b *blockingUsers) Lookup(context.Context, string) (*identity.User, error) {
	return nil, identity.ErrUnknownUser
}

// TestLoginQueueIsBounded: beyond MaxLoginQueue waiting logins, a login is
// refused at once with 503 and Retry-After instead of queueing.
func TestLoginQueueIsBounded(t *testing.T) {
	f := newFixture(t, "ES256")
	users := &blockingUsers{entered: make(chan struct{}, 10), release: make(chan struct{})}
	iss, err := New(Config{Issuer: "https://auth.test", Audience: "api", MaxConcurrentLogins: 1, MaxLoginQueue: 2}, f.keys, users, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := iss.Handler()
	post := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader("grant_type=password&client_id=c&username=u&password=p")))
		return rec
	}
	done := make(chan int, 3)
	for range 3 {
		go func() { done <- post().Code }()
	}
	<-users.entered // one check runs
	for iss.waiting.Load() != 2 {
		runtime.Gosched() // two wait for its slot
	}
	rec := post()
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" || !strings.Contains(rec.Body.String(), "temporarily_unavailable") {
		t.Errorf("beyond the queue: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	close(users.release)
	for range 3 {
		if code := <-done; code != http.StatusBadRequest {
			t.Errorf("a queued login: %d, want 400 (wrong password)", code)
		}
	}
}
