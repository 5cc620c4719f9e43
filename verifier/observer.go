package verifier

// Observer receives key-set events, for metrics. Labels passed to it are
// bounded: they come from configuration (issuer names, JWKS URLs).
type Observer interface {
	// JWKSFetch reports one fetch of url; err is nil on success.
	JWKSFetch(url string, err error)
	// KeysLoaded reports how many keys a source now holds.
	KeysLoaded(source string, n int)
	// UnknownKIDSuppressed reports an unknown-kid refetch skipped because
	// of the cooldown.
	UnknownKIDSuppressed(url string)
}

// NopObserver is an Observer that does nothing.
type NopObserver struct{}

func (NopObserver) JWKSFetch(string, error)     {}
func (NopObserver) KeysLoaded(string, int)      {}
func (NopObserver) UnknownKIDSuppressed(string) {}
