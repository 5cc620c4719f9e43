package verifier

import "errors"

// Sentinel errors returned (wrapped) by Verify. Callers match them with
// errors.Is; several may be joined in one error when more than one claim
// check fails.
var (
	// ErrMalformed: the token is not a well-formed JWT (segments, base64,
	// JSON, required claims) or is longer than the configured maximum.
	ErrMalformed = errors.New("verifier: malformed token")
	// ErrAlgorithm: the token's alg is not allowed for its issuer or key.
	ErrAlgorithm = errors.New("verifier: algorithm not allowed")
	// ErrBadSignature: no candidate key verifies the signature.
	ErrBadSignature = errors.New("verifier: bad signature")
	// ErrUnknownKey: no key of the issuer matches the token's kid and alg.
	ErrUnknownKey = errors.New("verifier: unknown signing key")
	// ErrExpired: exp is in the past, beyond the leeway.
	ErrExpired = errors.New("verifier: token expired")
	// ErrNotYetValid: nbf or iat is in the future, beyond the leeway.
	ErrNotYetValid = errors.New("verifier: token not yet valid")
	// ErrWrongIssuer: iss is not a trusted issuer.
	ErrWrongIssuer = errors.New("verifier: untrusted issuer")
	// ErrWrongAudience: aud names none of the issuer's audiences.
	ErrWrongAudience = errors.New("verifier: wrong audience")
	// ErrWrongType: the token is not an access token (e.g. a refresh token
	// or an ID token).
	ErrWrongType = errors.New("verifier: not an access token")
	// ErrInvalidConfig: the Config given to New is not usable.
	ErrInvalidConfig = errors.New("verifier: invalid config")
	// ErrKeyFile: a key file could not be read or parsed.
	ErrKeyFile = errors.New("verifier: bad key file")
	// ErrFetch: a remote JWKS could not be fetched or parsed.
	ErrFetch = errors.New("verifier: fetch jwks")
)

// Reason returns a short, bounded label for err, suitable for metrics and
// logs: one of expired, not_yet_valid, bad_signature, unknown_key,
// wrong_issuer, wrong_audience, wrong_type, malformed, or ok for nil.
func Reason(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrWrongIssuer):
		return "wrong_issuer"
	case errors.Is(err, ErrAlgorithm), errors.Is(err, ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, ErrExpired):
		return "expired"
	case errors.Is(err, ErrNotYetValid):
		return "not_yet_valid"
	case errors.Is(err, ErrWrongAudience):
		return "wrong_audience"
	case errors.Is(err, ErrWrongType):
		return "wrong_type"
	default:
		return "malformed"
	}
}
