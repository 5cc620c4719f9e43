package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzConfigFile feeds arbitrary YAML to the configuration parser and the
// checks serve runs on it: nothing may panic, and a file that parses must
// parse the same way twice (no state between calls).
func FuzzConfigFile(f *testing.F) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		f.Fatal(err)
	}
	// Seeds: every YAML example of the README, and some hostile shapes.
	for _, block := range strings.Split(string(readme), "```yaml\n")[1:] {
		f.Add(block[:strings.Index(block, "```")])
	}
	for _, s := range []string{"", "routes: [", "a: &a [*a, *a]", "routes: [{prefix: /, upstream: x, auth: maybe}]",
		"upstreams: [{name: a, url: 'http://user:pw@x'}]", "---\nrealm: a\n---\nrealm: b\n", "scopes: [{name: \"a b\"}]",
		"clients: [{id: x, grants: [implicit]}]", "headers: [{header: 'X-A', claim: '..'}]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		a, errA := parseFile([]byte(data))
		b, errB := parseFile([]byte(data))
		if (errA == nil) != (errB == nil) || len(a.Routes) != len(b.Routes) || len(a.Clients) != len(b.Clients) {
			t.Fatalf("two parses differ: %v / %v", errA, errB)
		}
		if errA != nil {
			return
		}
		cfg := &Config{File: a, UpstreamURL: "http://127.0.0.1:1", Issuer: "https://i.test", Audience: []string{"a"},
			JWKSURLs: []string{"https://i.test/jwks"}, LogFormat: "json", LogLevel: "info"}
		cfg.check()
		cfg.proxyConfig()
		cfg.verifierConfig()
		cfg.issuerConfig()
	})
}
