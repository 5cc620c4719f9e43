package issuer

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/edge"
)

// Error is a refused token request: what the client is told — the wire
// Code (RFC 6749 §5.2 or JSON:API), the HTTP Status and a Description —
// and, for the log only, the internal cause. Each dialect has one writer
// that turns an Error into its body; nothing else reaches the client.
type Error struct {
	// Code is the wire code: invalid_request, invalid_grant, …
	Code string
	// Status is the HTTP status in the OAuth dialect (the JSON:API
	// dialect answers invalid_grant with 401).
	Status int
	// Description is shown to the client. It never holds a token, a
	// password, a secret, a backend's address or its error text.
	Description string
	// Reason is a bounded label for metrics and logs saying why a login
	// failed (invalid_credentials, partner_mismatch, unknown_profile), or
	// "".
	Reason string
	// Challenge is the WWW-Authenticate value sent with the answer, if any.
	Challenge string
	// RetryAfter, if positive, is sent as Retry-After (429, 503).
	RetryAfter time.Duration

	cause error // internal: logged, never sent
}

func (e *Error) Error() string {
	s := e.Code
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.cause }

// Is matches an Error against a sentinel of the same Code and status.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Status == e.Status || t.Status == 0)
}

// Sentinels, one per wire code; match with errors.Is.
var (
	ErrInvalidRequest       = &Error{Code: "invalid_request", Status: http.StatusBadRequest}
	ErrInvalidClient        = &Error{Code: "invalid_client", Status: http.StatusUnauthorized}
	ErrInvalidGrant         = &Error{Code: "invalid_grant", Status: http.StatusBadRequest}
	ErrUnauthorizedClient   = &Error{Code: "unauthorized_client", Status: http.StatusBadRequest}
	ErrUnsupportedGrantType = &Error{Code: "unsupported_grant_type", Status: http.StatusBadRequest}
	ErrInvalidScope         = &Error{Code: "invalid_scope", Status: http.StatusBadRequest}
	// ErrForbidden: the caller may not have this (another user's profile,
	// a legacy session the legacy system refuses).
	ErrForbidden = &Error{Code: "forbidden", Status: http.StatusForbidden}
	// ErrUnavailable: a backend (external OAuth server, legacy system) is
	// down or answered nonsense; nothing was cached.
	ErrUnavailable = &Error{Code: "temporarily_unavailable", Status: http.StatusBadGateway}
	// ErrNotEnabled: the endpoint's backend is not configured.
	ErrNotEnabled = &Error{Code: "not_found", Status: http.StatusNotFound}
	// ErrServer: a fault of tollgate's own; the client learns nothing more.
	ErrServer = &Error{Code: "server_error", Status: http.StatusInternalServerError}
	// ErrTooManyRequests: a brute-force limit is reached (RetryAfter says
	// when to try again).
	ErrTooManyRequests = &Error{Code: "too_many_requests", Status: http.StatusTooManyRequests}
	// ErrBusy: too many logins wait already; retry shortly.
	ErrBusy = &Error{Code: "temporarily_unavailable", Status: http.StatusServiceUnavailable}

	// ErrInvalidConfig wraps every problem New finds.
	ErrInvalidConfig = errors.New("issuer: invalid config")
)

// refuse builds an Error of kind's code and status.
func refuse(kind *Error, description string) *Error {
	return &Error{Code: kind.Code, Status: kind.Status, Description: description}
}

// because records the internal cause, for the log.
func (e *Error) because(cause error) *Error { e.cause = cause; return e }

// reason records why a login failed, for metrics.
func (e *Error) reason(r string) *Error { e.Reason = r; return e }

// retryAfter sets the Retry-After wait.
func (e *Error) retryAfter(d time.Duration) *Error { e.RetryAfter = d; return e }

// challenge sets the WWW-Authenticate value.
func (e *Error) challenge(c string) *Error { e.Challenge = c; return e }

// fromRefusal is the token endpoints' form of an RFC 6750 refusal, so a
// bad Authorization header is answered in the same words as on the proxy.
func fromRefusal(f *edge.Refusal) *Error {
	return &Error{Code: f.Code, Status: f.Status, Description: f.Description, Challenge: f.Challenge}
}

// errorOf returns err as an *Error; anything else is a server error whose
// text stays in the log.
func errorOf(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return refuse(ErrServer, "internal error").because(err)
}

// clientGone reports whether err only says the client went away.
func clientGone(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}
