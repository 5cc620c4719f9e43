package main

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/issuer"
)

// replicas starts n gateways sharing one keys directory, users file,
// issuer URL and Redis, as replicas behind one Service do; more can be
// started with the same settings.
func replicas(t *testing.T, n int, redisURL string, env ...string) ([]*authGateway, func() *authGateway) {
	t.Helper()
	return replicasWith(t, sourceDocClients, n, redisURL, env...)
}

// replicasWith is replicas with a configuration file of clients.
func replicasWith(t *testing.T, clients string, n int, redisURL string, env ...string) ([]*authGateway, func() *authGateway) {
	t.Helper()
	dir := t.TempDir()
	keys, users := filepath.Join(dir, "keys"), filepath.Join(dir, "users.yaml")
	if _, _, err := issuer.GenerateKey(keys, "ES256", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, []byte(sourceDocUsers(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := append([]string{"TOLLGATE_SESSION_STORE=" + redisURL, "TOLLGATE_SIGNING_KEYS_DIR=" + keys,
		"TOLLGATE_USERS_FILE=" + users, "TOLLGATE_PUBLIC_URL=https://tollgate.test"}, env...)
	start := func() *authGateway { return startTokenGatewayEnv(t, clients, true, shared) }
	var gs []*authGateway
	for range n {
		gs = append(gs, start())
	}
	return gs, start
}

// advance moves every replica's clock.
func advance(gs []*authGateway, d time.Duration) {
	for _, g := range gs {
		g.clock.Add(d)
	}
}

// refusedWithin polls until g refuses the access token, and returns how
// long that took (bounded at 5 s: the requirement is 1 s).
func refusedWithin(t *testing.T, g *authGateway, access string) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		if c, _ := callAPI(t, g, "/x", "Bearer "+access); c == 401 {
			return time.Since(start)
		}
	}
	t.Fatal("the other replica never refused the token")
	return 0
}

// TestSessionsAcrossReplicas: two gateways on one Redis are one session
// service — reuse detected on either ends the session on both; a logout
// on one is refused on the other within a second; login limits and
// session limits count across both; a restarted gateway finds its
// sessions.
func TestSessionsAcrossReplicas(t *testing.T) {
	redis := testkit.StartRedis(t)
	gs, another := replicas(t, 2, redis.URL(), "TOLLGATE_REFRESH_REUSE_INTERVAL=2s", "TOLLGATE_LOGIN_ATTEMPTS_PER_USER=3",
		"TOLLGATE_LOGIN_USER_REFILL=1h", "TOLLGATE_MAX_SESSIONS_PER_USER=2")
	a, b := gs[0], gs[1]

	t.Run("reuse on another replica", func(t *testing.T) {
		access, first := oauthLogin(t, a, "someuser@24i.com", "qwerty123")
		if code, _ := refreshWith(t, a, first); code != 200 {
			t.Fatal("refresh on A")
		}
		advance(gs, 3*time.Second)
		if code, out := refreshWith(t, b, first); code != 400 || out["error"] != "invalid_grant" {
			t.Fatalf("reuse on B: %d %v", code, out)
		}
		refusedWithin(t, a, access)
		refusedWithin(t, b, access)
	})
	t.Run("logout on one, refused on the other", func(t *testing.T) {
		var took []time.Duration
		for range 100 {
			access, refresh := oauthLogin(t, a, "someuser@24i.com", "qwerty123")
			if c, _ := callAPI(t, b, "/x", "Bearer "+access); c != 200 {
				t.Fatalf("B refuses a live token: %d", c)
			}
			resp, _ := send(t, http.MethodPost, a.url+"/oauth/logout", "client_id=anonymous&refresh_token="+refresh, "Content-Type", "application/x-www-form-urlencoded")
			if resp.StatusCode != 204 {
				t.Fatalf("logout: %d", resp.StatusCode)
			}
			took = append(took, refusedWithin(t, b, access))
		}
		slices.Sort(took)
		t.Logf("revocation on A to the first 401 on B, over 100 revocations: p50 %v, p99 %v, max %v", took[49], took[98], took[99])
		if took[98] > time.Second {
			t.Errorf("p99 %v: the other replica must refuse within a second", took[98])
		}
	})
	t.Run("limits count across replicas", func(t *testing.T) {
		for i, g := range []*authGateway{a, b, a} {
			if resp, _ := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=anonymous&username=agent1&password=wrong"); resp.StatusCode != 400 {
				t.Fatalf("wrong password %d: %d", i, resp.StatusCode)
			}
		}
		if resp, _ := send(t, http.MethodPost, b.url+"/oauth/token", "grant_type=password&client_id=anonymous&username=agent1&password=******"); resp.StatusCode != 429 {
			t.Errorf("the fourth attempt, on the other replica: %d", resp.StatusCode)
		}
		a1, _ := oauthLogin(t, a, "<---USERNAME--->", "<---PASSWORD--->")
		advance(gs, time.Second)
		oauthLogin(t, b, "<---USERNAME--->", "<---PASSWORD--->")
		advance(gs, time.Second)
		oauthLogin(t, a, "<---USERNAME--->", "<---PASSWORD--->") // the third: the first is evicted
		refusedWithin(t, b, a1)
	})
	t.Run("a restarted gateway finds the sessions", func(t *testing.T) {
		access, refresh := oauthLogin(t, a, "someuser@24i.com", "qwerty123")
		a.m.Close()
		restarted := another()
		if code, out := refreshWith(t, restarted, refresh); code != 200 {
			t.Errorf("refresh on the restarted gateway: %d %v", code, out)
		}
		if c, _ := callAPI(t, restarted, "/x", "Bearer "+access); c != 200 {
			t.Errorf("an access token of before the restart: %d", c)
		}
	})
	t.Run("Redis down and back", func(t *testing.T) {
		access, _ := oauthLogin(t, b, "someuser@24i.com", "qwerty123")
		redis.Stop()
		resp, body := send(t, http.MethodPost, b.url+"/oauth/token", "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=qwerty123")
		if resp.StatusCode != 503 || jsonObject(t, body)["error"] != "temporarily_unavailable" {
			t.Errorf("login with Redis down: %d %s", resp.StatusCode, body)
		}
		if c, _ := callAPI(t, b, "/x", "Bearer "+access); c != 200 {
			t.Errorf("the proxy with Redis down: %d", c)
		}
		waitFor(t, func() bool {
			return value(scrape(t, b.m), "tollgate_session_store_up", nil) == 0
		})
		redis.Start()
		waitFor(t, func() bool {
			resp, _ := send(t, http.MethodPost, b.url+"/oauth/token", "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=qwerty123")
			return resp.StatusCode == 200
		})
	})
}

// TestSessionsCommand: support staff list a user's sessions and end one,
// or all, through the configured Redis; the gateways honour it.
func TestSessionsCommand(t *testing.T) {
	redis := testkit.StartRedis(t)
	gs, _ := replicas(t, 1, redis.URL())
	g := gs[0]
	a1, _ := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
	a2, _ := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
	env := []string{"TOLLGATE_SESSION_STORE=" + redis.URL()}
	sessions := func(args ...string) string {
		var out, errOut strings.Builder
		if err := run(t.Context(), append([]string{"sessions"}, args...), env, nil, &out, &errOut); err != nil {
			t.Fatalf("sessions %v: %v %s", args, err, errOut.String())
		}
		return out.String()
	}
	_, c1 := claimsOf(t, a1)
	_, c2 := claimsOf(t, a2)
	list := sessions("list", "--user", "2")
	if !strings.Contains(list, c1["sid"].(string)) || !strings.Contains(list, c2["sid"].(string)) || !strings.Contains(list, "anonymous") {
		t.Fatalf("list:\n%s", list)
	}
	if out := sessions("revoke", "--session", c1["sid"].(string)); !strings.Contains(out, "revoked 1") {
		t.Errorf("revoke: %s", out)
	}
	refusedWithin(t, g, a1)
	if c, _ := callAPI(t, g, "/x", "Bearer "+a2); c != 200 {
		t.Errorf("the other session: %d", c)
	}
	sessions("revoke", "--user", "2")
	refusedWithin(t, g, a2)
	if list := sessions("list", "--user", "2"); strings.Contains(list, c2["sid"].(string)) {
		t.Errorf("after revoking the user's sessions:\n%s", list)
	}
	var errOut strings.Builder
	if err := run(t.Context(), []string{"sessions", "revoke"}, env, nil, &errOut, &errOut); err == nil {
		t.Error("revoke with neither --user nor --session")
	}
}
