package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"
)

// BackendObserver receives every call to a backend, for metrics. backend
// is a bounded name ("external:<service>", "cookie", "legacy_login",
// "legacy_lookup").
type BackendObserver interface {
	BackendCall(ctx context.Context, backend string, d time.Duration, err error)
}

type nopBackendObserver struct{}

func (nopBackendObserver) BackendCall(context.Context, string, time.Duration, error) {}

// BackendOption configures optional behaviour of the HTTP backends.
type BackendOption func(*backendOptions)

type backendOptions struct {
	client    *http.Client
	transport http.RoundTripper // nil: http.DefaultTransport
	obs       BackendObserver
	now       func() time.Time
}

// WithBackendTransport sends backend calls through rt (tracing wraps the
// default transport here).
func WithBackendTransport(rt http.RoundTripper) BackendOption {
	return func(o *backendOptions) { o.transport = rt }
}

// WithBackendObserver receives backend calls.
func WithBackendObserver(obs BackendObserver) BackendOption {
	return func(o *backendOptions) { o.obs = obs }
}

// WithBackendClock sets the clock of caches and expiry checks.
func WithBackendClock(now func() time.Time) BackendOption {
	return func(o *backendOptions) { o.now = now }
}

// orNop returns logger, or a logger that logs nothing when it is nil.
func orNop(logger *zap.Logger) *zap.Logger {
	if logger == nil {
		return zap.NewNop()
	}
	return logger
}

func newBackendOptions(timeout time.Duration, opts []BackendOption) backendOptions {
	o := backendOptions{obs: nopBackendObserver{}, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	o.client = &http.Client{
		Transport: o.transport,
		Timeout:   timeout,
		// Redirects are not followed: a backend that redirects is
		// misconfigured, and following could leak credentials.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return o
}

// maxReplyBytes bounds every backend reply.
const maxReplyBytes = 1 << 20

// call performs one backend request and decodes its JSON reply (nil when
// the body is empty or not JSON). Transport errors and 5xx are ErrBackend;
// the caller interprets 2xx/4xx.
func call(ctx context.Context, o backendOptions, name string, req *http.Request) (int, any, error) {
	start := time.Now()
	status, v, err := doCall(ctx, o.client, req)
	o.obs.BackendCall(ctx, name, time.Since(start), callFailure(status, v, err))
	return status, v, err
}

// errUnusableReply is what the metrics count for a reply no caller can
// use: a redirect (never followed), or a 2xx without a JSON body.
var errUnusableReply = errors.New("identity: unusable reply")

// callFailure says whether a call failed, for the metrics: a transport
// error or 5xx, and also a reply the callers refuse as ErrBackend. A 4xx
// is the backend working (a wrong password, an inactive token).
func callFailure(status int, reply any, err error) error {
	switch {
	case err != nil:
		return err
	case status >= 300 && status < 400, status < 300 && reply == nil:
		return errUnusableReply
	}
	return nil
}

func doCall(ctx context.Context, client *http.Client, req *http.Request) (int, any, error) {
	req = req.WithContext(ctx)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) { // without the URL, which may carry a secret
			cause = ue.Err
		}
		return 0, nil, fmt.Errorf("%w: %s: %v", ErrBackend, req.URL.Host, cause)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes+1))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s: reading reply: %v", ErrBackend, req.URL.Host, err)
	}
	if len(body) > maxReplyBytes {
		return 0, nil, fmt.Errorf("%w: %s: reply larger than %d bytes", ErrBackend, req.URL.Host, maxReplyBytes)
	}
	if resp.StatusCode >= 500 {
		return resp.StatusCode, nil, fmt.Errorf("%w: %s answered %d", ErrBackend, req.URL.Host, resp.StatusCode)
	}
	v, _ := parseReply(body)
	return resp.StatusCode, v, nil
}

// parseReply decodes a backend's JSON reply, keeping numbers exact
// (json.Number). Anything that is not one JSON value is an error.
func parseReply(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}
