package verifier

import "context"

// Observer receives key-set events, for metrics. Labels passed to it are
// bounded: they come from configuration (issuer names, JWKS URLs).
type Observer interface {
	// JWKSFetch reports one fetch of url; err is nil on success.
	JWKSFetch(ctx context.Context, url string, err error)
	// KeysLoaded reports how many keys a source now holds.
	KeysLoaded(ctx context.Context, source string, n int)
	// UnknownKIDSuppressed reports an unknown-kid refetch skipped because
	// of the cooldown.
	UnknownKIDSuppressed(ctx context.Context, url string)
	// KeysStale reports whether the keys of the remote JWK Set at url are
	// past MaxStale, and so no longer served: true once when they go
	// stale, false after every successful fetch.
	KeysStale(ctx context.Context, url string, stale bool)
}

// nopObserver is an Observer that does nothing.
type nopObserver struct{}

func (nopObserver) JWKSFetch(context.Context, string, error)     {}
func (nopObserver) KeysLoaded(context.Context, string, int)      {}
func (nopObserver) UnknownKIDSuppressed(context.Context, string) {}
func (nopObserver) KeysStale(context.Context, string, bool)      {}
