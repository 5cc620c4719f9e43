package identity

import (
	"encoding/json"
	"testing"

	"github.com/tollgate/tollgate/jsonpath"
	"go.uber.org/zap"
)

func TestParseReply(t *testing.T) {
	reply, err := parseReply([]byte(`{"data":{"id":9001,"big":12345678901234567890}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := jsonpath.GetText(reply, "data.big"); !ok || got != "12345678901234567890" {
		t.Errorf("a big id lost its digits: %q", got)
	}
	if _, err := parseReply([]byte(`{"a":1} {"b":2}`)); err == nil {
		t.Error("two JSON values accepted")
	}
}

// FuzzLegacyReply feeds arbitrary replies and paths to the parser the
// legacy and external backends use.
func FuzzLegacyReply(f *testing.F) {
	f.Add(`{"data":{"user":{"id":"2"}}}`, "data.user.id")
	f.Add(`{"data":{"id":9001,"profiles":["lp1","lp2"]}}`, "data.profiles.0")
	f.Add(`{"active":true,"sub":"ext-42","exp":1700000000}`, "sub")
	f.Add(`[1,2,{"x":"y"}]`, "2.x")
	f.Add(`{"a":`, "a")
	f.Add(`nul`, "")
	f.Fuzz(func(t *testing.T, body, path string) {
		v, err := parseReply([]byte(body))
		if err != nil {
			return
		}
		s, ok := jsonpath.GetText(v, path)
		if ok && s == "" {
			t.Fatal("ok with an empty string")
		}
		l := &Legacy{cfg: LegacyConfig{UserIDPath: path, ProfilesPath: path, ClaimPaths: map[string]string{"x": path}}, logger: zap.NewNop()}
		u, err := l.user(v)
		if err == nil && (u.ID == "" || u.ID != s) {
			t.Fatalf("user id %q from path %q (GetText %q)", u.ID, path, s)
		}
		if err == nil {
			if _, err := json.Marshal(u.Claims); err != nil {
				t.Fatalf("claims cannot be put in a token: %v", err)
			}
		}
	})
}
