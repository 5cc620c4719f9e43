package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tollgate/tollgate/tracing"
)

// tracingConfig reads the OpenTelemetry SDK's environment variables, as
// every SDK does (opentelemetry.io/docs/specs/otel/configuration/
// sdk-environment-variables):
//
//   - OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or
//     OTEL_EXPORTER_OTLP_ENDPOINT (a base URL: /v1/traces is appended for
//     HTTP) turn export on; so does OTEL_TRACES_EXPORTER=otlp, to the
//     default localhost endpoint. Without either nothing is exported — a
//     gateway without a collector should not retry one forever — but trace
//     context is still propagated. OTEL_TRACES_EXPORTER=none and
//     OTEL_SDK_DISABLED=true turn export off.
//   - OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL: http/protobuf (default) or grpc.
//   - OTEL_EXPORTER_OTLP_(TRACES_)HEADERS: key=value,… (e.g. a collector's
//     API key; never logged).
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG: always_on,
//     always_off, traceidratio, parentbased_always_on (default),
//     parentbased_always_off, parentbased_traceidratio.
//   - OTEL_SERVICE_NAME (default tollgate) and OTEL_RESOURCE_ATTRIBUTES.
func tracingConfig(ctx context.Context, env map[string]string, version string, userID bool) (tracing.Config, error) {
	cfg := tracing.Config{UserID: userID}
	get := func(specific, general string) string {
		if v := env[specific]; v != "" {
			return v
		}
		return env[general]
	}
	exporter := strings.TrimSpace(env["OTEL_TRACES_EXPORTER"])
	endpoint := env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
	base := env["OTEL_EXPORTER_OTLP_ENDPOINT"]
	switch {
	case strings.EqualFold(env["OTEL_SDK_DISABLED"], "true"), exporter == "none":
		return cfg, nil
	case exporter != "" && exporter != "otlp":
		return cfg, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported: want otlp or none", exporter)
	case exporter == "" && endpoint == "" && base == "":
		return cfg, nil
	}
	var errs []error
	protocol := get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	if protocol == "" {
		protocol = "http/protobuf"
	}
	headers, err := keyValues(get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"))
	if err != nil {
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: %w", err))
	}
	if endpoint == "" && base != "" {
		endpoint = base
		if protocol == "http/protobuf" {
			endpoint = strings.TrimRight(base, "/") + "/v1/traces"
		}
	}
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %q: want an http:// or https:// URL", endpoint))
		}
	}
	if cfg.Sampler, err = sampler(env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"]); err != nil {
		errs = append(errs, err)
	}
	attrs, err := keyValues(env["OTEL_RESOURCE_ATTRIBUTES"])
	if err != nil {
		errs = append(errs, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err))
	}
	if len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}
	kvs := []attribute.KeyValue{attribute.String("service.name", "tollgate"), attribute.String("service.version", version)}
	for k, v := range attrs {
		kvs = append(kvs, attribute.String(k, v))
	}
	if name := env["OTEL_SERVICE_NAME"]; name != "" {
		kvs = append(kvs, attribute.String("service.name", name)) // the later value of a key wins
	}
	cfg.Resource = resource.NewSchemaless(kvs...)
	switch protocol {
	case "http/protobuf":
		opts := []otlptracehttp.Option{otlptracehttp.WithHeaders(headers)}
		if endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(endpoint))
		}
		cfg.Exporter, err = otlptracehttp.New(ctx, opts...)
	case "grpc":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithHeaders(headers)}
		if endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(endpoint))
		}
		cfg.Exporter, err = otlptracegrpc.New(ctx, opts...)
	default:
		err = fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not supported: want http/protobuf or grpc", protocol)
	}
	return cfg, err
}

// sampler is OTEL_TRACES_SAMPLER with its argument.
func sampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := 1.0
	if arg != "" && strings.HasSuffix(name, "traceidratio") {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q: want a ratio from 0 to 1", arg)
		}
		ratio = r
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER: %q is not supported", name)
}

// keyValues parses the W3C Baggage-like list the OTEL_* variables use:
// key=value pairs separated by commas, values percent-encoded.
func keyValues(s string) (map[string]string, error) {
	out := map[string]string{}
	for pair := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", strings.TrimSpace(k))
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("the value of %q: %w", k, err)
		}
		out[k] = dv
	}
	return out, nil
}
