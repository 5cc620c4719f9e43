package session

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/tollgate/tollgate/tracing"
)

// Observer is told of every store operation, for a latency histogram and
// an error counter.
type Observer interface {
	// StoreCall reports one operation: op is create, rotate, get,
	// lookup, update, revoke, list, count, limit (a Limiter's Take or
	// Give), device_create, device_get, device_decide or device_poll; d
	// is how long it took; err is what it returned (nil, or an
	// error to match with errors.Is: ErrUnavailable is the store failing,
	// the others are answers).
	StoreCall(ctx context.Context, op string, d time.Duration, err error)
}

// Option adjusts a store.
type Option func(*options)

type options struct {
	observer  Observer
	now       func() time.Time
	revokeFor time.Duration
}

func newOptions(opts []Option) options {
	o := options{observer: nopObserver{}, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithObserver reports every store operation to o.
func WithObserver(o Observer) Option {
	return func(opts *options) {
		if o != nil {
			opts.observer = o
		}
	}
}

// WithClock makes now the store's clock (for tests). Session times,
// expiry and the reuse interval are measured with it; a Redis store sends
// it with every operation, so replicas should agree on the time.
func WithClock(now func() time.Time) Option {
	return func(opts *options) {
		if now != nil {
			opts.now = now
		}
	}
}

// WithRevokeFor sets how long the store remembers a session it ends by
// itself, for a reused refresh handle or the per-user limit: the longest
// an access token can live (with the verifier's leeway). Zero, the
// default, remembers it until the session would have expired, which is
// safe but keeps it longer.
func WithRevokeFor(d time.Duration) Option {
	return func(opts *options) {
		if d > 0 {
			opts.revokeFor = d
		}
	}
}

// selfRevokeUntil is the until of a session the store ends by itself,
// given the session's expiry, in Unix milliseconds.
func (o *options) selfRevokeUntil(now, expires int64) int64 {
	if o.revokeFor > 0 {
		return now + o.revokeFor.Milliseconds()
	}
	return expires
}

type nopObserver struct{}

func (nopObserver) StoreCall(context.Context, string, time.Duration, error) {}

// observe reports an operation that started at start; call it deferred
// with a pointer to the operation's named error.
// A call made for a recorded request is a span of its trace too.
func (o *options) observe(ctx context.Context, op string, start time.Time, err *error) {
	o.observer.StoreCall(ctx, op, time.Since(start), *err)
	if span := tracing.FromContext(ctx); span.Recorded() {
		errType := ""
		if errors.Is(*err, ErrUnavailable) {
			errType = "unavailable" // the store's answers (not found, pending) are not failures
		}
		span.RecordChild(ctx, "session "+op, start, errType, attribute.String("db.operation.name", op))
	}
}
