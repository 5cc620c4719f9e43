package verifier

import "errors"

// Error is why Verify refused a token. It carries its own bounded Reason
// label (for metrics, logs and the proxy's refusals) and the Description a
// client may be shown, so a new kind of refusal is added here and nowhere
// else. Match one with errors.Is against the sentinels below.
type Error struct {
	// Reason is a short label: expired, bad_signature, …
	Reason string
	// Description is safe to show to the client: it never holds the token
	// or internal detail, and never names a trusted issuer, an audience, a
	// kid or an algorithm, so a refusal does not teach a caller what would
	// be accepted. Such detail goes in the error text, for the debug log.
	Description string
	// text is what Error returns, for logs.
	text string
}

func (e *Error) Error() string { return e.text }

// Sentinel errors returned (wrapped) by Verify. Callers match them with
// errors.Is; several may be joined in one error when more than one claim
// check fails.
var (
	// ErrMalformed: the token is not a well-formed JWT (segments, base64,
	// JSON, required claims, NumericDates out of range, a crit header) or
	// is longer than the configured maximum.
	ErrMalformed = &Error{"malformed", "malformed token", "verifier: malformed token"}
	// ErrAlgorithm: the token's alg is not allowed for its issuer or key.
	ErrAlgorithm = &Error{"bad_signature", "bad signature", "verifier: algorithm not allowed"}
	// ErrBadSignature: no candidate key verifies the signature.
	ErrBadSignature = &Error{"bad_signature", "bad signature", "verifier: bad signature"}
	// ErrUnknownKey: no key of the issuer matches the token's kid and alg.
	ErrUnknownKey = &Error{"unknown_key", "unknown signing key", "verifier: unknown signing key"}
	// ErrStaleKeys: the token's kid is in a remote key set that is no longer
	// served because its last successful fetch is older than MaxStale. The
	// token may well be good; the verifier cannot tell until a fetch
	// succeeds.
	ErrStaleKeys = &Error{"stale_keys", "signing keys unavailable", "verifier: signing keys stale"}
	// ErrExpired: exp is in the past, beyond the leeway.
	ErrExpired = &Error{"expired", "token expired", "verifier: token expired"}
	// ErrNotYetValid: nbf or iat is in the future, beyond the leeway.
	ErrNotYetValid = &Error{"not_yet_valid", "token not yet valid", "verifier: token not yet valid"}
	// ErrLifetime: exp is further from iat (or, without iat, from now) than
	// the issuer's MaxLifetime, beyond the leeway.
	ErrLifetime = &Error{"lifetime_too_long", "token lifetime too long", "verifier: token lifetime too long"}
	// ErrWrongIssuer: iss is not a trusted issuer.
	ErrWrongIssuer = &Error{"wrong_issuer", "untrusted issuer", "verifier: untrusted issuer"}
	// ErrWrongAudience: aud names none of the issuer's audiences.
	ErrWrongAudience = &Error{"wrong_audience", "wrong audience", "verifier: wrong audience"}
	// ErrRevoked: the token's session has ended (logout, revocation, reuse
	// of a refresh token). The verifier never returns it itself: the
	// session check after it does.
	ErrRevoked = &Error{"revoked", "token revoked", "verifier: session revoked"}
	// ErrRevocationUnknown: the revoked-session set has not been confirmed
	// for longer than the operator allows, so tollgate's own tokens are
	// refused until it is.
	ErrRevocationUnknown = &Error{"revocation_unknown", "revocation state unavailable", "verifier: revoked-session set too old"}
	// ErrWrongType: the token is not an access token (e.g. a refresh token
	// or an ID token).
	ErrWrongType = &Error{"wrong_type", "not an access token", "verifier: not an access token"}

	// ErrInvalidConfig: the Config given to New is not usable.
	ErrInvalidConfig = errors.New("verifier: invalid config")
	// ErrKeyFile: a key file could not be read or parsed.
	ErrKeyFile = errors.New("verifier: bad key file")
	// ErrFetch: a remote JWKS could not be fetched or parsed.
	ErrFetch = errors.New("verifier: fetch jwks")
)

// refusal returns the *Error in err's tree, or ErrMalformed when there is
// none (a token that could not be judged is refused as malformed). When
// checks failed together, the first one Verify made wins.
func refusal(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return ErrMalformed
}

// Reason returns the bounded label of a Verify error: its *Error's Reason
// (expired, not_yet_valid, lifetime_too_long, bad_signature, unknown_key,
// stale_keys, wrong_issuer, wrong_audience, wrong_type, malformed, …), or
// ok for nil.
func Reason(err error) string {
	if err == nil {
		return "ok"
	}
	return refusal(err).Reason
}

// Description returns what a client may be told of a Verify error.
func Description(err error) string {
	return refusal(err).Description
}
