// Package verifier checks JWT access tokens: it finds the key a token was
// signed with (static PEM/JWK files, remote JWKS endpoints, or keys supplied
// in-process), verifies the signature, and checks the claims.
//
// Security rules:
//   - The token's alg header MUST NOT choose the key type: every key carries its
//     own allow-list of algorithms, derived from the key material and the
//     issuer's configured algorithms; "none" is never accepted.
//   - A token whose header carries crit MUST be refused: it names extensions
//     the verifier does not understand (RFC 7515 §4.1.11).
//   - exp, iss, aud and sub MUST be checked on every token; nbf and iat when
//     present. A refresh token MUST NOT be accepted as an access token.
//   - A NumericDate before 1970 or after 9999 MUST be refused, never
//     converted: a huge value overflows int64 and lands in the past.
//   - A token MUST NOT live longer than its issuer's MaxLifetime (exp − iat,
//     or exp − now without iat), so a leaked token cannot be good for years.
//   - Cheap claim checks run before any signature work or key fetch, so a
//     flood of expired or foreign tokens costs no crypto and no network.
//   - A cached verification MUST end when the token expires, when a key set
//     it was verified with changes or goes stale, or when KeysChanged is
//     called; an issuer's Constrain hook runs before a token is cached.
//   - The cache MUST NOT let one token be taken for another. It keeps a tag
//     of each token, not the token: two NH sums under secret random keys
//     and the length (see tokenTag), which no one can make two tokens
//     share but by a 2⁻¹²⁸ chance — never a fast hash alone, keyed or not,
//     nor part of the token. The few hottest tokens are kept whole as
//     well, and compared whole.
//   - A consumer of Verify MUST NOT read a claim by name that
//     Config.CachedClaims does not keep — by default none: a Token served
//     from the cache has nil Claims, and a session check reading
//     Claims["sid"] would let a revoked session pass. It reads the typed
//     fields (SessionID, …), HasScope and HasRole, keeps what it derives
//     from the claims with Memo, or calls VerifyUncached.
//   - The package MUST NOT log or return a token in an error. What a client
//     is told (Description) MUST NOT name a trusted issuer, an audience, a
//     kid or an algorithm; such detail is only in the error text, for logs.
//   - Tokens MUST NOT be able to make the key server's load unbounded:
//     each new kid (after the claim checks) may trigger one fetch per
//     RefreshInterval, at most NewKIDFetches kids per interval; beyond
//     them one fetch per Cooldown. A lookup MUST NOT wait longer than
//     LookupWait for a fetch, and MUST NOT wait at all for a scheduled
//     refresh or a retry.
//
// What a cached verification keeps (see tokenCache): the token's tag, its
// expiry, the key generations it depends on, the Token's typed fields with
// its scope and role grants, and the Memo value of its consumer — the
// proxy's upstream header values, derived once from every claim as the
// token is cached — in under 0.5 KiB (TestCacheMemoryPerToken). For
// tollgate's own tokens, and those of a remote issuer verified with one
// key set's keys, that is a 320-byte record outside the Go heap and
// about 20 bytes of the index's table, which holds no pointer: the garbage
// collector traces nothing per cached token. The issuer, algorithm and
// audience are shared between tokens. Not the claims: they are most of
// what a cached token would cost, and no consumer on the hot path needs
// them.
//
// Remote key sets are fetched by Run, on the owner's context: at start,
// a RefreshInterval after each fetch, for new kids, and — while a remote
// has no keys to serve — again after a backoff (RetryBackoff, doubling to
// 30 seconds or the RefreshInterval, whichever is less).
//
// Readiness policy: Ready reports whether every remote has been fetched
// once, and stays true when a remote's keys later go stale (older than
// MaxStale while its endpoint fails). Such keys are no longer served —
// their tokens are refused with ErrStaleKeys (reason stale_keys), not
// unknown_key — but readiness does not fail: every replica's keys go
// stale together, and failing readiness on all of them at once would be
// an outage of its own. Staleness is made visible instead: Status gives
// each remote's state and a reason in words (for a readiness body),
// Observer.KeysStale reports each change (for a gauge), and a warning is
// logged when the keys go stale and a line when they are fresh again,
// once each.
package verifier
