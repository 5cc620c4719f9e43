package identity

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// FuzzCookieSessionsForwardsOnlyConfiguredCookies sends whatever cookies a
// Cookie header parses into, leniently (http.Request.Cookies) and strictly
// (http.ParseCookie), through CookieSessions.UserID to a legacy stand-in
// that echoes the Cookie headers it got: exactly the cookies with a
// configured name reach it, unchanged and in order, and nothing else.
func FuzzCookieSessionsForwardsOnlyConfiguredCookies(f *testing.F) {
	for _, seed := range []string{
		"PHPSESSID=good",
		"PHPSESSID=good; tracking=abc",
		"tracking=abc; other=1",
		"phpsessid=wrong-case; PHPSESSID2=near",
		"PHPSESSID=a; PHPSESSID=b; legacy_session=c",
		`PHPSESSID="quoted value"; x=1`,
		"PHPSESSID=a b, c",
		"PHPSESSID=a;tracking=b;legacy_session=",
		"PHPSESSID=a; PHPSESSID",
		"PHPSESSID=a%3B%20tracking%3Dx",
		"PHPSESSID=a\x00b; legacy_session=\x7f",
		"PHPSESSID=a\"; tracking=\"b",
		" ; ;=; =x; PHPSESSID ",
		"legacy_session=é; PHPSESSID=ok",
		"",
	} {
		f.Add(seed)
	}
	configured := []string{"PHPSESSID", "legacy_session"}
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"seen": strings.Join(r.Header.Values("Cookie"), "\n")})
	}))
	f.Cleanup(srv.Close)
	c, err := NewCookieSessions(CookieConfig{URL: srv.URL, Cookies: configured, UserIDPath: "seen"}, nil)
	if err != nil {
		f.Fatal(err)
	}

	check := func(t *testing.T, parser string, cookies []*http.Cookie) {
		var want []string // name=value of the cookies that should arrive
		for _, ck := range cookies {
			if slices.Contains(configured, ck.Name) {
				want = append(want, ck.Name+"="+ck.Value)
			}
		}
		before := requests.Load()
		seen, err := c.UserID(t.Context(), cookies)
		sent := requests.Load() - before
		if len(want) == 0 {
			if !errors.Is(err, ErrSessionInvalid) || sent != 0 {
				t.Fatalf("%s: no configured cookie, yet %d requests and err %v", parser, sent, err)
			}
			return
		}
		if err != nil || sent != 1 {
			t.Fatalf("%s: %d requests, err %v", parser, sent, err)
		}
		headers := strings.Split(seen, "\n")
		if len(headers) != 1 {
			t.Fatalf("%s: %d Cookie headers sent", parser, len(headers))
		}
		got, err := http.ParseCookie(headers[0])
		if err != nil {
			t.Fatalf("%s: sent a malformed Cookie header %q: %v", parser, headers[0], err)
		}
		var gotPairs []string
		for _, ck := range got {
			if !slices.Contains(configured, ck.Name) {
				t.Fatalf("%s: cookie %q was forwarded (header %q)", parser, ck.Name, headers[0])
			}
			gotPairs = append(gotPairs, ck.Name+"="+ck.Value)
		}
		if !slices.Equal(gotPairs, want) {
			t.Fatalf("%s: forwarded %q, want %q", parser, gotPairs, want)
		}
	}
	f.Fuzz(func(t *testing.T, header string) {
		check(t, "Request.Cookies", (&http.Request{Header: http.Header{"Cookie": {header}}}).Cookies())
		if cookies, err := http.ParseCookie(header); err == nil {
			check(t, "ParseCookie", cookies)
		}
	})
}
