package testkit_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/testkit"
)

func TestKeysSignWhatTheirPublicHalfVerifies(t *testing.T) {
	now := time.Now()
	for _, alg := range []string{"ES256", "RS256", "EdDSA", "HS256"} {
		k := testkit.NewKey(t, alg, "k-"+alg)
		raw := k.Access(t, testkit.Claims("iss", "aud", now, func(c jwt.MapClaims) { c["sub"] = "u-9" }))
		tok, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return k.Public(), nil }, jwt.WithValidMethods([]string{alg}))
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if tok.Header["kid"] != "k-"+alg || tok.Header["typ"] != "at+jwt" || tok.Claims.(jwt.MapClaims)["sub"] != "u-9" {
			t.Errorf("%s: header %v claims %v", alg, tok.Header, tok.Claims)
		}
		other := testkit.NewKey(t, alg, "")
		if _, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return other.Public(), nil }); err == nil {
			t.Errorf("%s: another key verifies", alg)
		}
	}
}

func TestClockAndEcho(t *testing.T) {
	c := testkit.NewClock(time.Unix(100, 0))
	c.Add(time.Minute)
	if c.Now().Unix() != 160 {
		t.Errorf("clock at %v", c.Now())
	}
	srv := testkit.Echo(t, "legacy")
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/a%2Fb?x=1", nil)
	req.Header.Add("X-Two", "1")
	req.Header.Add("X-Two", "2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e testkit.Echoed
	json.NewDecoder(resp.Body).Decode(&e)
	if e.Upstream != "legacy" || e.Method != "POST" || e.Path != "/a/b" || e.RawPath != "/a%2Fb" || e.Query != "x=1" ||
		e.Headers["X-Two"] != "1,2" || len(e.Header["X-Two"]) != 2 {
		t.Errorf("echoed %+v", e)
	}
}
