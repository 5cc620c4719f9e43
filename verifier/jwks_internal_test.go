package verifier

import (
	"net/http"
	"testing"
	"time"
)

// TestRemoteTimeoutNotCappedByClient: RemoteConfig.Timeout bounds a fetch;
// the default HTTP client must not cut a longer one short.
func TestRemoteTimeoutNotCappedByClient(t *testing.T) {
	cfg := RemoteConfig{Timeout: time.Minute}
	v, err := New(Config{Issuers: []IssuerConfig{{
		Issuer: "https://issuer.test", Audiences: []string{"api"}, JWKSURLs: []string{"https://issuer.test/jwks"}, Remote: cfg,
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*Remote{"New": v.remotes[0], "NewRemote": NewRemote(cfg, []string{"ES256"}, nil)} {
		if c := r.client.Timeout; c != 0 && c < cfg.Timeout {
			t.Errorf("%s: the default client's timeout %v cuts the configured %v short", name, c, cfg.Timeout)
		}
	}
	// A client given explicitly is used as it is.
	own := &http.Client{Timeout: time.Second}
	if r := NewRemote(cfg, []string{"ES256"}, nil, WithHTTPClient(own)); r.client != own {
		t.Error("WithHTTPClient ignored")
	}
}
