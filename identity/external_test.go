package identity

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// externalReplies are the external server's answers about tokens: the same
// claims by introspection (with active: true) and by userinfo.
var externalReplies = map[string]map[string]any{
	"tok-stb-3efb85fa":       {"sub": "2", "client_id": "stb-app"},
	"tok-other-9c1d2e77":     {"sub": "2", "client_id": "other-app"},
	"tok-aud-4b8f0a13":       {"sub": "2", "aud": "tollgate"},
	"tok-auds-77e2c9d0":      {"sub": "2", "aud": []any{"x", "tollgate"}, "client_id": "other-app"},
	"tok-aud-other-5a6b7c8d": {"sub": "2", "aud": []any{"x"}},
	"tok-aud-junk-1f2e3d4c":  {"sub": "2", "aud": []any{1, map[string]any{"a": "tollgate"}}},
	"tok-none-0a9b8c7d":      {"sub": "2"},
	"tok-empty-6e5d4c3b":     {"sub": "2", "client_id": "", "aud": ""},
}

// newExternalServer is a stand-in external OAuth server answering from
// externalReplies.
func newExternalServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		reply, ok := externalReplies[r.PostFormValue("token")]
		if !ok {
			json.NewEncoder(w).Encode(map[string]any{"active": false})
			return
		}
		active := map[string]any{"active": true}
		for k, v := range reply {
			active[k] = v
		}
		json.NewEncoder(w).Encode(active)
	})
	mux.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		reply, ok := externalReplies[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(reply)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestNewExternalAllowedApps(t *testing.T) {
	const url = "https://oauth.example/introspect"
	tests := []struct {
		name    string
		service Service
		wantErr string // "" means accepted
	}{
		{"introspection with allowed clients", Service{Name: "x", IntrospectionURL: url, ClientID: "tg", AllowedClients: []string{"stb-app"}}, ""},
		{"introspection with allowed audiences", Service{Name: "x", IntrospectionURL: url, ClientID: "tg", AllowedAudiences: []string{"tollgate"}}, ""},
		{"introspection with neither", Service{Name: "caiway", IntrospectionURL: url, ClientID: "tg"},
			`introspection service "caiway" accepts tokens issued to any app: set allowed_clients or allowed_audiences`},
		{"userinfo with neither", Service{Name: "x", UserinfoURL: url}, ""},
		{"userinfo with allowed clients", Service{Name: "x", UserinfoURL: url, AllowedClients: []string{"stb-app"}}, ""},
		{"an empty allowed client", Service{Name: "x", IntrospectionURL: url, ClientID: "tg", AllowedClients: []string{"stb-app", ""}},
			"allowed_clients holds an empty name"},
		{"an empty allowed audience", Service{Name: "x", UserinfoURL: url, AllowedAudiences: []string{""}},
			"allowed_audiences holds an empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewExternal([]Service{tt.service}, nil, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err %v; want ErrInvalidConfig saying %q", err, tt.wantErr)
			}
		})
	}
}

// A token another app of the external server obtained does not log its
// user in: the reply must show it was issued to an allowed client or
// audience.
func TestExchangeChecksAllowedApps(t *testing.T) {
	srv := newExternalServer(t)
	users, _ := newUsers(t, twoUsersYAML(t))
	intro := func(name string, clients, auds []string) Service {
		return Service{Name: name, IntrospectionURL: srv.URL + "/introspect", ClientID: "tollgate", ClientSecret: "s",
			AllowedClients: clients, AllowedAudiences: auds}
	}
	x, err := NewExternal([]Service{
		intro("intro-clients", []string{"stb-app"}, nil),
		intro("intro-audiences", nil, []string{"tollgate"}),
		intro("intro-both", []string{"stb-app"}, []string{"tollgate"}),
		{Name: "userinfo-any", UserinfoURL: srv.URL + "/userinfo"},
		{Name: "userinfo-lists", UserinfoURL: srv.URL + "/userinfo", AllowedClients: []string{"stb-app"}, AllowedAudiences: []string{"tollgate"}},
		{Name: "userinfo-clients", UserinfoURL: srv.URL + "/userinfo", AllowedClients: []string{"stb-app"}},
	}, users, nil)
	if err != nil {
		t.Fatal(err)
	}
	// accepted lists, per service, the tokens that log user 2 in; every
	// other token of externalReplies must be ErrInactiveToken.
	accepted := map[string][]string{
		"intro-clients":   {"tok-stb-3efb85fa"},
		"intro-audiences": {"tok-aud-4b8f0a13", "tok-auds-77e2c9d0"},
		"intro-both":      {"tok-stb-3efb85fa", "tok-aud-4b8f0a13", "tok-auds-77e2c9d0"},
		"userinfo-any": {"tok-stb-3efb85fa", "tok-other-9c1d2e77", "tok-aud-4b8f0a13", "tok-auds-77e2c9d0",
			"tok-aud-other-5a6b7c8d", "tok-aud-junk-1f2e3d4c", "tok-none-0a9b8c7d", "tok-empty-6e5d4c3b"},
		// Checked on the fields the reply has: a reply with neither passes.
		"userinfo-lists": {"tok-stb-3efb85fa", "tok-aud-4b8f0a13", "tok-auds-77e2c9d0", "tok-aud-junk-1f2e3d4c",
			"tok-none-0a9b8c7d", "tok-empty-6e5d4c3b"},
		// No audience list: aud is not looked at, client_id is.
		"userinfo-clients": {"tok-stb-3efb85fa", "tok-aud-4b8f0a13", "tok-aud-other-5a6b7c8d", "tok-aud-junk-1f2e3d4c",
			"tok-none-0a9b8c7d", "tok-empty-6e5d4c3b"},
	}
	for service, ok := range accepted {
		for token := range externalReplies {
			t.Run(service+"/"+token, func(t *testing.T) {
				u, err := x.Exchange(t.Context(), service, token)
				if slices.Contains(ok, token) {
					if err != nil || u == nil || u.ID != "2" {
						t.Errorf("got %v, %v; want user 2", u, err)
					}
					return
				}
				if !errors.Is(err, ErrInactiveToken) || u != nil {
					t.Errorf("got %v, %v; want ErrInactiveToken", u, err)
				}
				if err != nil && strings.Contains(err.Error(), token) {
					t.Errorf("the error quotes the token: %v", err)
				}
			})
		}
	}
}
