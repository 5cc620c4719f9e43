package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/issuer"
)

// dockerfile parses ../../Dockerfile with BuildKit's parser and returns
// the instructions of each stage.
func dockerfile(t *testing.T) [][]*parser.Node {
	t.Helper()
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	var stages [][]*parser.Node
	for _, n := range res.AST.Children {
		if strings.EqualFold(n.Value, "from") {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], n)
		}
	}
	return stages
}

func args(n *parser.Node) []string {
	var out []string
	for a := n.Next; a != nil; a = a.Next {
		out = append(out, a.Value)
	}
	return out
}

func TestDockerfileFinalStage(t *testing.T) {
	stages := dockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(stages))
	}
	final := stages[len(stages)-1]
	var user, entrypoint string
	var exposed []string
	for _, n := range final {
		switch strings.ToLower(n.Value) {
		case "user":
			user = strings.Join(args(n), " ")
		case "entrypoint":
			if n.Attributes["json"] != true {
				t.Error("ENTRYPOINT is not in exec form")
			}
			entrypoint = strings.Join(args(n), " ")
		case "expose":
			exposed = append(exposed, args(n)...)
		case "run":
			t.Errorf("the final stage runs a command (%v): it has no shell", args(n))
		}
	}
	if base := args(final[0])[0]; !strings.Contains(base, "distroless/static") && base != "scratch" {
		t.Errorf("final base %q", base)
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("final stage runs as %q, want a non-root user", user)
	}
	if entrypoint != "/tollgate serve" {
		t.Errorf("ENTRYPOINT %q", entrypoint)
	}
	if !slices.Contains(exposed, "8080") || !slices.Contains(exposed, "9090") {
		t.Errorf("EXPOSE %v", exposed)
	}
}

// TestDockerBuildFlagsProduceAWorkingBinary builds the binary with the
// Dockerfile's own go build command and runs `tollgate version`.
func TestDockerBuildFlagsProduceAWorkingBinary(t *testing.T) {
	var build string
	for _, n := range dockerfile(t)[0] {
		if strings.EqualFold(n.Value, "run") && strings.Contains(strings.Join(args(n), " "), "go build") {
			build = strings.Join(args(n), " ")
		}
	}
	if !strings.Contains(build, "CGO_ENABLED=0") || !strings.Contains(build, "-trimpath") {
		t.Fatalf("build command %q is not static and trimmed", build)
	}
	ldflags := regexp.MustCompile(`-ldflags "([^"]+)"`).FindStringSubmatch(build)
	if ldflags == nil {
		t.Fatalf("no -ldflags in %q", build)
	}
	out := filepath.Join(t.TempDir(), "tollgate")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", strings.ReplaceAll(ldflags[1], "${VERSION}", "v9.9.9-test"), "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	b, err := exec.CommandContext(ctx, out, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(b), "tollgate v9.9.9-test") {
		t.Fatalf("tollgate version: %v %q", err, b)
	}
}

// TestChartRendersAcceptedConfig renders the Helm chart with the full
// values and runs check-config on the configuration it produces: the
// ConfigMap's YAML file and the Deployment's environment, with the Secrets
// it mounts replaced by real files.
func TestChartRendersAcceptedConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "tool", "-modfile=tools/go.mod", "helm", "template", "t", "charts/tollgate",
		"-f", "charts/tollgate/ci/full-values.yaml")
	cmd.Dir = "../.."
	rendered, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	dir := t.TempDir()
	var configYAML string
	var env []string
	dec := yaml.NewDecoder(bytes.NewReader(rendered))
	for {
		var doc struct {
			Kind string
			Data map[string]string
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Env []struct {
								Name, Value string
								ValueFrom   any `yaml:"valueFrom"`
							}
						}
					}
				}
			}
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		switch doc.Kind {
		case "ConfigMap":
			if c, ok := doc.Data["tollgate.yaml"]; ok {
				configYAML = c
			}
		case "Deployment":
			for _, e := range doc.Spec.Template.Spec.Containers[0].Env {
				if e.ValueFrom == nil {
					env = append(env, e.Name+"="+e.Value)
				}
			}
		}
	}
	if configYAML == "" || len(env) == 0 {
		t.Fatalf("rendered chart has no config (%d bytes) or env (%v)", len(configYAML), env)
	}
	if !slices.Contains(env, "GOGC=200") {
		t.Errorf("goRuntime.gogc did not reach the container: %v", env)
	}
	keys := filepath.Join(dir, "keys")
	if _, _, err := issuer.GenerateKey(keys, "ES256", time.Now()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "users.yaml"), []byte(sourceDocUsers(t)), 0o600)
	os.WriteFile(filepath.Join(dir, "tollgate.yaml"), []byte(configYAML), 0o600)
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "TOLLGATE_SIGNING_KEYS_DIR":
			env[i] = k + "=" + keys
		case "TOLLGATE_USERS_FILE":
			env[i] = k + "=" + filepath.Join(dir, "users.yaml")
		case "TOLLGATE_CONFIG_FILE":
			env[i] = k + "=" + filepath.Join(dir, "tollgate.yaml")
		}
	}
	// The remote JWKS in the full values is only fetched by serve, not by
	// check-config, so no network is needed.
	var stdout, stderr strings.Builder
	if err := run(t.Context(), []string{"check-config"}, env, nil, &stdout, &stderr); err != nil {
		t.Fatalf("check-config rejects the chart's configuration: %v\nenv: %v\nconfig:\n%s", err, env, configYAML)
	}
	if strings.Contains(stderr.String(), "unknown environment variable") {
		t.Errorf("the chart sets a variable tollgate does not know: %s", stderr.String())
	}
}

// TestBenchHarnessRuns runs the load harness briefly, as the README tells
// people to, and checks that every scenario produced figures.
func TestBenchHarnessRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "tollgate")
	if b, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	for _, alg := range []string{"ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			out, err := exec.CommandContext(ctx, bin, "bench", "-alg", alg, "-duration", "300ms", "-conns", "4", "-tokens", "200", "-idle", "50").Output()
			if err != nil {
				t.Fatalf("bench: %v\n%s", err, out)
			}
			checkBenchTable(t, string(out), alg)
		})
	}
}

func checkBenchTable(t *testing.T, table, alg string) {
	t.Helper()
	for _, row := range []string{"(a) direct upstream", "(b) bare httputil.ReverseProxy", "(c) tollgate, one hot token",
		"(d) tollgate, 200 distinct " + alg + " tokens", "(e) refresh grant, " + alg, "(f) password grant", "idle keep-alive connections: 50 held open"} {
		if !strings.Contains(table, row) {
			t.Errorf("no %q in:\n%s", row, table)
		}
	}
	// Every scenario served requests without errors (last column 0).
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "(") && !strings.HasSuffix(strings.TrimSpace(line), " 0") {
			t.Errorf("scenario with errors: %s", line)
		}
	}
}
