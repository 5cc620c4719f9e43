package identity

import "errors"

// Sentinel errors, returned wrapped with context; match them with errors.Is.
var (
	// ErrInvalidCredentials: the login is unknown or the password is wrong.
	// Authenticate returns exactly this value for both, so callers cannot
	// tell them apart.
	ErrInvalidCredentials = errors.New("identity: invalid credentials")
	// ErrUnknownUser: Lookup found no user with that id.
	ErrUnknownUser = errors.New("identity: unknown user")
	// ErrInvalidFile: the users file cannot be read, parsed or validated.
	// The wrapped message lists every problem found.
	ErrInvalidFile = errors.New("identity: invalid users file")
	// ErrInvalidConfig: the Config given to New is not usable.
	ErrInvalidConfig = errors.New("identity: invalid config")
	// ErrUnknownService: no external OAuth service of that name is configured.
	ErrUnknownService = errors.New("identity: unknown service")
	// ErrInactiveToken: the external server says the token is not (or no
	// longer) active.
	ErrInactiveToken = errors.New("identity: external token not active")
	// ErrUnmappedUser: the external identity maps to no local user.
	ErrUnmappedUser = errors.New("identity: no local user for the external identity")
	// ErrSessionInvalid: the legacy system does not accept the session
	// cookie (or none of the configured cookies was sent).
	ErrSessionInvalid = errors.New("identity: legacy session not valid")
	// ErrSessionForbidden: the legacy system knows the session but refuses
	// it (403).
	ErrSessionForbidden = errors.New("identity: legacy session forbidden")
	// ErrBackend: a backend (external OAuth server, legacy system) could not
	// be reached or answered with an error or a malformed reply.
	ErrBackend = errors.New("identity: backend unavailable")
	// errMalformedHash: an encoded password hash is not a bcrypt hash or an
	// argon2id PHC string within bounds. Its messages never quote the hash.
	errMalformedHash = errors.New("malformed password hash")
)
