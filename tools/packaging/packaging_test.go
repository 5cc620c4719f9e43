package packaging

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/tollgate/tollgate/tools/internal/product"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// root is the repository root, relative to this package's directory (where
// go test runs the tests).
const root = product.Root

// dockerfile parses the repository's Dockerfile with BuildKit's parser and
// returns the instructions of each stage.
func dockerfile(t *testing.T) [][]*parser.Node {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
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
	// The package is the command's last word, as the image builds it.
	fields := strings.Fields(build)
	pkg := fields[len(fields)-1]
	if !strings.HasPrefix(pkg, "./") {
		t.Fatalf("build command %q does not end with a package path", build)
	}
	out := filepath.Join(t.TempDir(), "tollgate")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", strings.ReplaceAll(ldflags[1], "${VERSION}", "v9.9.9-test"), "-o", out, pkg)
	cmd.Dir = root
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
// values and runs `tollgate check-config` on the configuration it
// produces: the ConfigMap's YAML file and the Deployment's environment,
// with the Secrets it mounts replaced by real files.
func TestChartRendersAcceptedConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "tool", "helm", "template", "t", filepath.Join(root, "charts/tollgate"),
		"-f", filepath.Join(root, "charts/tollgate/ci/full-values.yaml"))
	rendered, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
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
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("rendered chart: %v", err)
		}
		switch doc.Kind {
		case "ConfigMap":
			if c, ok := doc.Data["tollgate.yaml"]; ok {
				configYAML = c
			}
		case "Deployment":
			if len(doc.Spec.Template.Spec.Containers) == 0 {
				t.Fatal("the rendered Deployment has no container")
			}
			for _, e := range doc.Spec.Template.Spec.Containers[0].Env {
				switch {
				case e.ValueFrom == nil:
					env = append(env, e.Name+"="+e.Value)
				case e.Name == "TOLLGATE_SESSION_STORE": // what the Secret would hold
					env = append(env, e.Name+"=redis://redis.tollgate.svc:6379/0")
				}
			}
		}
	}
	if configYAML == "" || len(env) == 0 {
		t.Fatalf("rendered chart has no config (%d bytes) or env (%v)", len(configYAML), env)
	}
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "TOLLGATE_SESSION_STORE=") }) {
		t.Errorf("redis.enabled did not set TOLLGATE_SESSION_STORE: %v", env)
	}
	if !slices.Contains(env, "GOGC=200") {
		t.Errorf("goRuntime.gogc did not reach the container: %v", env)
	}
	// tracing.* become the standard OTEL_* variables, which check-config
	// below parses as serve would.
	for _, want := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector.observability:4318", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.01", "OTEL_SERVICE_NAME=tollgate-edge", "TOLLGATE_TRACE_USER_ID=true"} {
		if !slices.Contains(env, want) {
			t.Errorf("tracing values: no %s in %v", want, env)
		}
	}

	dir := t.TempDir()
	bin := product.Build(ctx, t, dir)
	keys := filepath.Join(dir, "keys")
	if b, err := exec.CommandContext(ctx, bin, "keygen", "-alg", "ES256", "-dir", keys).CombinedOutput(); err != nil {
		t.Fatalf("tollgate keygen: %v\n%s", err, b)
	}
	product.WriteFile(t, filepath.Join(dir, "users.yaml"), sourceDocUsers(t))
	product.WriteFile(t, filepath.Join(dir, "tollgate.yaml"), configYAML)
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "TOLLGATE_SIGNING_KEYS_DIR":
			env[i] = k + "=" + keys
		case "TOLLGATE_USERS_FILE":
			env[i] = k + "=" + filepath.Join(dir, "users.yaml")
		case "TOLLGATE_SESSION_STORE_PASSWORD_FILE":
			env[i] = k + "=" + filepath.Join(dir, "redis-password")
			product.WriteFile(t, filepath.Join(dir, "redis-password"), "s3cret\n")
		case "TOLLGATE_CONFIG_FILE":
			env[i] = k + "=" + filepath.Join(dir, "tollgate.yaml")
		}
	}
	// The rendered environment and nothing else, as in the container. The
	// remote JWKS in the full values is only fetched by serve, not by
	// check-config, so no network is needed.
	var stdout, stderr strings.Builder
	check := exec.CommandContext(ctx, bin, "check-config")
	check.Env = env
	check.Stdout, check.Stderr = &stdout, &stderr
	if err := check.Run(); err != nil {
		t.Fatalf("check-config rejects the chart's configuration: %v\n%s\nenv: %v\nconfig:\n%s", err, stderr.String(), env, configYAML)
	}
	if !strings.Contains(stdout.String(), "configuration ok") {
		t.Errorf("check-config exited 0 without saying the configuration is ok: %q", stdout.String())
	}
	if strings.Contains(stderr.String(), "unknown environment variable") {
		t.Errorf("the chart sets a variable tollgate does not know: %s", stderr.String())
	}
}

// sourceDocUsers are the users the fielded clients log in as (docs/CLIENTS.md; the same
// users as cmd/tollgate's tests).
func sourceDocUsers(t *testing.T) string {
	t.Helper()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	return `users:
  - id: "2"
    username: someuser@24i.com
    email: someuser@24i.com
    password_hash: "` + hash("qwerty123") + `"
    profiles: ["4f3d8946-4423-11ea-bbb8-b7af30354b4a", "kids-2"]
  - id: bfeb45d7-50dc-416d-b3c8-35db64d288f3
    username: agent1
    email: client1@company.com
    password_hash: "` + hash("******") + `"
    profiles: [p-agent]
    role: AGENT
    partner_id: "10000"
    claims: {agentId: "f9683b7b-e332-4864-b725-ac6cdc207dbd", siteId: 10115}
  - id: vm-1
    username: <---USERNAME--->
    password_hash: "` + hash("<---PASSWORD--->") + `"
    profiles: [vm-profile]
`
}

// TestChartTracingSamplerArg: a sampler argument of 0 (sample no new
// trace) reaches the container; left out, the SDK would read the ratio
// as 1 and sample every trace.
func TestChartTracingSamplerArg(t *testing.T) {
	for _, tc := range []struct {
		set, want string // want "": no OTEL_TRACES_SAMPLER_ARG
	}{
		{"tracing.samplerArg=0", `{name: OTEL_TRACES_SAMPLER_ARG, value: "0"}`},
		{"tracing.samplerArg=0.25", `{name: OTEL_TRACES_SAMPLER_ARG, value: "0.25"}`},
		{`tracing.samplerArg=""`, ""},
	} {
		out, err := exec.CommandContext(t.Context(), "go", "tool", "helm", "template", "t", filepath.Join(root, "charts/tollgate"),
			"--set", "tracing.endpoint=http://collector:4318", "--set-json", tc.set).Output()
		if err != nil {
			t.Fatalf("helm template --set-json %s: %v", tc.set, err)
		}
		got := strings.Contains(string(out), "OTEL_TRACES_SAMPLER_ARG")
		switch {
		case tc.want == "" && got:
			t.Errorf("%s: OTEL_TRACES_SAMPLER_ARG rendered", tc.set)
		case tc.want != "" && !strings.Contains(string(out), tc.want):
			t.Errorf("%s: no %s in the Deployment", tc.set, tc.want)
		}
	}
}
