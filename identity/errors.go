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
	// errMalformedHash: an encoded password hash is not a bcrypt hash or an
	// argon2id PHC string within bounds. Its messages never quote the hash.
	errMalformedHash = errors.New("malformed password hash")
)
