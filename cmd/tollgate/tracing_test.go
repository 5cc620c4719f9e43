package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestTracingConfig reads the OTEL_* variables as every SDK does: export
// only when asked for, the endpoint as base or as is, the sampler with
// its argument, the resource; and refuses what it cannot honour.
func TestTracingConfig(t *testing.T) {
	for _, c := range []struct {
		name    string
		env     map[string]string
		export  bool
		sampler string
		err     string
	}{
		{name: "nothing set: propagation only", env: map[string]string{}},
		{name: "disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "an endpoint turns export on", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
			export: true, sampler: "ParentBased{root:AlwaysOnSampler"},
		{name: "otlp asked for, default endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, export: true},
		{name: "gRPC with 1% sampling", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
			export: true, sampler: "ParentBased{root:TraceIDRatioBased{0.01}"},
		{name: "always_off", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "always_off"},
			export: true, sampler: "AlwaysOffSampler"},
		{name: "an unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: `OTEL_TRACES_EXPORTER: "zipkin" is not supported`},
		{name: "http/json", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			err: `OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" is not supported`},
		{name: "a ratio out of range", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
			"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "5"}, err: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "an unknown sampler", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "sometimes"},
			err: `OTEL_TRACES_SAMPLER: "sometimes"`},
		{name: "not a URL", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, err: "want an http:// or https:// URL"},
		{name: "a header without a value, whose secret is not echoed", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
			"OTEL_EXPORTER_OTLP_HEADERS": "api-key"}, err: `"api-key" is not key=value`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := tracingConfig(t.Context(), c.env, "v1.2.3", false)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (cfg.Exporter != nil) != c.export {
				t.Fatalf("exporter %v, want export %v", cfg.Exporter, c.export)
			}
			if cfg.Exporter != nil {
				t.Cleanup(func() { cfg.Exporter.Shutdown(t.Context()) })
			}
			if c.sampler != "" && !strings.HasPrefix(cfg.Sampler.Description(), c.sampler) {
				t.Errorf("sampler %q, want %q", cfg.Sampler.Description(), c.sampler)
			}
		})
	}
	cfg, err := tracingConfig(t.Context(), map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
		"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=tv%20platform", "OTEL_SERVICE_NAME": "edge-gw"}, "v1.2.3", true)
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Exporter.Shutdown(t.Context())
	for k, want := range map[attribute.Key]string{"service.name": "edge-gw", "service.version": "v1.2.3", "deployment.environment": "prod", "team": "tv platform"} {
		if v, ok := cfg.Resource.Set().Value(k); !ok || v.AsString() != want {
			t.Errorf("resource %s = %q, want %q", k, v.AsString(), want)
		}
	}
	if !cfg.UserID {
		t.Error("TOLLGATE_TRACE_USER_ID lost")
	}
}

const clientTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// callTraced calls the API through g with the headers given.
func callTraced(t *testing.T, g *authGateway, path string, hdr ...string) testkit.Echoed {
	t.Helper()
	resp, b := send(t, http.MethodGet, g.url+path, "", hdr...)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
	}
	var e testkit.Echoed
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestTracePropagation: with no exporter, the upstream sees the client's
// trace continued under a span ID of tollgate's, or a fresh valid trace
// when the client sent none or a broken one; the access log names the
// trace.
func TestTracePropagation(t *testing.T) {
	g := startTokenGatewayEnv(t, sourceDocClients, true, nil)
	access, _ := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
	bearer := "Bearer " + access
	client, _ := tracing.ParseTraceparent(clientTraceparent)

	e := callTraced(t, g, "/channels", "Authorization", bearer, "Traceparent", clientTraceparent, "Tracestate", "rojo=00f067aa0ba902b7")
	got, ok := tracing.ParseTraceparent(e.Headers["Traceparent"])
	if !ok || got.TraceID != client.TraceID || got.SpanID == client.SpanID || got.Flags != client.Flags {
		t.Errorf("the upstream saw %q for the client's %q", e.Headers["Traceparent"], clientTraceparent)
	}
	if e.Headers["Tracestate"] != "rojo=00f067aa0ba902b7" {
		t.Errorf("tracestate %q", e.Headers["Tracestate"])
	}
	traceID := hex.EncodeToString(client.TraceID[:])
	lines := g.logs.FilterMessage("request").FilterFieldKey("trace_id").All()
	if len(lines) == 0 || lines[len(lines)-1].ContextMap()["trace_id"] != traceID ||
		lines[len(lines)-1].ContextMap()["span_id"] != hex.EncodeToString(got.SpanID[:]) {
		t.Errorf("the access log does not name the trace %s and tollgate's span: %v", traceID, lines[len(lines)-1].ContextMap())
	}

	for _, hdr := range [][]string{nil, {"Traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "Tracestate", "rojo=1"}} {
		e := callTraced(t, g, "/channels", append([]string{"Authorization", bearer}, hdr...)...)
		fresh, ok := tracing.ParseTraceparent(e.Headers["Traceparent"])
		if !ok || fresh.TraceID == client.TraceID || e.Headers["Tracestate"] != "" {
			t.Errorf("sent %v: the upstream saw %q / %q", hdr, e.Headers["Traceparent"], e.Headers["Tracestate"])
		}
	}
}

// TestTraceSpans records a gateway's spans in the SDK's in-memory
// exporter: a login, then an API call with a cookie and a query string.
// The spans have their names, attributes and parents, the upstream was
// told its client span as parent, and neither the token, the password
// nor the cookie appears anywhere in them.
func TestTraceSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	g := startTokenGatewayWith(t, sourceDocClients, true, []string{"TOLLGATE_SESSION_STORE=memory"}, []mainOption{withSpanExporter(exp)})
	const password, cookie = "qwerty123", "legacy-session=c00kie-s3cret"
	access, refresh := oauthLogin(t, g, "someuser@24i.com", password)
	e := callTraced(t, g, "/channels/1?pin=0000", "Authorization", "Bearer "+access, "Traceparent", clientTraceparent, "Cookie", cookie)
	upstreamParent, _ := tracing.ParseTraceparent(e.Headers["Traceparent"])

	spans := exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	// Everything a span carries: its name, status, attributes and events.
	// None may hold a credential, the query string, or personal data — the
	// login name is also the email claim of the user's tokens.
	secrets := []string{access, refresh, password, "c00kie-s3cret", "pin=0000", "someuser@24i.com"}
	for _, s := range spans {
		byName[s.Name] = s
		texts := map[string]string{"name": s.Name, "status": s.Status.Description}
		for _, a := range s.Attributes {
			texts["attribute "+string(a.Key)] = a.Value.Emit()
		}
		for _, e := range s.Events {
			texts["event"] = e.Name
			for _, a := range e.Attributes {
				texts["event attribute "+string(a.Key)] = a.Value.Emit()
			}
		}
		for where, v := range texts {
			for _, secret := range secrets {
				if strings.Contains(v, secret) {
					t.Errorf("span %q: its %s carries a secret", s.Name, where)
				}
			}
		}
	}
	login, ok := byName["POST oauth_token"]
	if !ok {
		t.Fatalf("no login span in %v", names(spans))
	}
	for k, want := range map[string]string{"tollgate.grant": "password", "tollgate.client": "anonymous", "tollgate.dialect": "oauth", "http.response.status_code": "200"} {
		if !hasAttr(login.Attributes, k, want) {
			t.Errorf("login span: no %s=%s in %v", k, want, login.Attributes)
		}
	}
	if create, ok := byName["session create"]; !ok || create.Parent.SpanID() != login.SpanContext.SpanID() {
		t.Errorf("no session span under the login: %v", names(spans))
	}
	var api, upstream tracetest.SpanStub
	for _, s := range spans {
		switch {
		case s.SpanKind == trace.SpanKindServer && s.SpanContext.TraceID() == trace.TraceID(mustTrace(t).TraceID):
			api = s
		case strings.HasPrefix(s.Name, "upstream "):
			upstream = s
		}
	}
	switch {
	case api.Name != "GET default":
		t.Errorf("API span named %q (spans %v)", api.Name, names(spans))
	case api.Parent.SpanID() != trace.SpanID(mustTrace(t).SpanID) || !api.Parent.IsRemote():
		t.Errorf("API span's parent %v", api.Parent)
	case !hasAttr(api.Attributes, "tollgate.auth", "ok") || !hasAttr(api.Attributes, "url.path", "/channels/1"):
		t.Errorf("API span attributes %v", api.Attributes)
	case upstream.Parent.SpanID() != api.SpanContext.SpanID() || upstream.SpanKind != trace.SpanKindClient:
		t.Errorf("upstream span %q parent %v, API span %v", upstream.Name, upstream.Parent.SpanID(), api.SpanContext.SpanID())
	case upstreamParent.SpanID != [8]byte(upstream.SpanContext.SpanID()):
		t.Errorf("the upstream's parent %x is not the upstream span %v", upstreamParent.SpanID, upstream.SpanContext.SpanID())
	}
	for _, a := range api.Attributes {
		if a.Key == "enduser.id" {
			t.Error("the user's ID recorded without TOLLGATE_TRACE_USER_ID")
		}
	}
	// The token was new to the verifier on the first call; the second is
	// answered by the cache. Both name the issuer.
	if !hasAttr(api.Attributes, "tollgate.token_cache_hit", "false") || !hasAttr(api.Attributes, "tollgate.issuer", g.m.cfg.PublicURL) {
		t.Errorf("first API span: cache and issuer attributes %v", api.Attributes)
	}
	const second = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b8-01"
	callTraced(t, g, "/channels/1", "Authorization", "Bearer "+access, "Traceparent", second)
	sc, _ := tracing.ParseTraceparent(second)
	var again tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.SpanKind == trace.SpanKindServer && s.SpanContext.TraceID() == trace.TraceID(sc.TraceID) {
			again = s
		}
	}
	if !hasAttr(again.Attributes, "tollgate.token_cache_hit", "true") || !hasAttr(again.Attributes, "tollgate.issuer", g.m.cfg.PublicURL) {
		t.Errorf("second API span %q: cache and issuer attributes %v", again.Name, again.Attributes)
	}
}

func mustTrace(t *testing.T) tracing.SpanContext {
	sc, ok := tracing.ParseTraceparent(clientTraceparent)
	if !ok {
		t.Fatal("the test's traceparent")
	}
	return sc
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func hasAttr(attrs []attribute.KeyValue, key, value string) bool {
	for _, a := range attrs {
		if string(a.Key) == key && a.Value.Emit() == value {
			return true
		}
	}
	return false
}

// TestTraceExemplars: a recorded request leaves its trace ID on the
// request and upstream latency histograms, as OpenMetrics exemplars; a
// request whose trace is not sampled leaves none.
func TestTraceExemplars(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	g := startTokenGatewayWith(t, sourceDocClients, true, nil, []mainOption{withSpanExporter(exp)})
	access, _ := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
	const unsampled = "00-6bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	callTraced(t, g, "/channels/1", "Authorization", "Bearer "+access, "Traceparent", clientTraceparent)
	callTraced(t, g, "/channels/2", "Authorization", "Bearer "+access, "Traceparent", unsampled)

	req, err := http.NewRequest(http.MethodGet, "http://"+g.m.AdminAddr()+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("Content-Type %q", ct)
	}
	sampled := fmt.Sprintf(`# {trace_id="%x"}`, mustTrace(t).TraceID)
	for _, family := range []string{`tollgate_http_request_duration_seconds_bucket{route="default",`, `tollgate_upstream_duration_seconds_bucket{upstream="default",`} {
		found := false
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(line, family) && strings.Contains(line, sampled) {
				found = true
			}
		}
		if !found {
			t.Errorf("no exemplar of the sampled trace on %s…}", family)
		}
	}
	if strings.Contains(string(b), "6bf92f3577b34da6a3ce929d0e0e4736") {
		t.Error("an unsampled trace left an exemplar")
	}
}
