package session

import (
	"context"
	"errors"
	"time"
)

// Session is one login's state.
type Session struct {
	// ID is the session id (the tokens' sid claim).
	ID string
	// UserID and ClientID are whose session it is and through which client.
	UserID, ClientID string
	// Profile and Scope are what the session was granted (a profile switch
	// changes Profile).
	Profile, Scope string
	// Role is the user's role when the session started (HS256 tokens may
	// confer no other).
	Role string
	// PasswordStamp fingerprints the user's password hash at login; a
	// refresh after the password changed ends the session. "" means none
	// (a backend without hashes).
	PasswordStamp string
	// Created and Refreshed are when it started and was last refreshed.
	Created, Refreshed time.Time
	// Expires is when the session ends unless refreshed: the expiry of its
	// current refresh handle.
	Expires time.Time
}

// Cause says why a session ended.
type Cause string

// Causes of revocation, a bounded label for logs and metrics.
const (
	CauseLogout         Cause = "logout"
	CauseRevoke         Cause = "revoke" // RFC 7009
	CauseReuse          Cause = "reuse"  // a used refresh handle came back after the reuse interval
	CauseLimit          Cause = "limit"  // evicted by the per-user session limit
	CausePasswordChange Cause = "password_change"
	CauseOperator       Cause = "operator" // tollgate sessions revoke, or the user's own DELETE
)

// Rotation is the outcome of Store.Rotate.
type Rotation struct {
	// Session is the session as it is after the rotation.
	Session Session
	// Successor is, for a retry inside the reuse interval, the handle that
	// already replaced the presented one (decrypted with it): the caller
	// hands it out again instead of a new one. "" for a fresh rotation.
	Successor string
}

// Limit is the per-user session limit applied when a session is created.
type Limit struct {
	// Max is the most live sessions a user may have; 0 means unlimited.
	Max int
	// Refuse makes a login beyond Max fail with ErrLimitReached; otherwise
	// the oldest sessions are evicted (revoked with CauseLimit).
	Refuse bool
}

// Store keeps sessions. Implementations are safe for concurrent use and
// every method is one atomic operation on the store.
type Store interface {
	// Create records a new session whose first refresh handle is handle
	// (only its hash is kept), applying the user's limit. It returns the
	// ids of the sessions it evicted.
	Create(ctx context.Context, s Session, handle string, limit Limit) (evicted []string, err error)
	// Rotate replaces the presented refresh handle with next, extending
	// the session to expires. Presented again within reuse after it was
	// used, the same successor comes back (Rotation.Successor) and nothing
	// changes; presented after that, or any older handle, the session is
	// revoked (CauseReuse) and ErrReused returned. An unknown handle is
	// ErrNotFound, a handle of an ended session ErrRevoked.
	Rotate(ctx context.Context, presented, next string, expires time.Time, reuse time.Duration) (Rotation, error)
	// Get returns a live session by id (ErrNotFound when there is none,
	// ErrRevoked when it ended).
	Get(ctx context.Context, id string) (Session, error)
	// Lookup returns the live session of a refresh handle without
	// rotating it (logout, revocation, introspection by refresh token).
	Lookup(ctx context.Context, handle string) (Session, error)
	// Update changes a live session's profile (a profile switch).
	Update(ctx context.Context, id, profile string) error
	// Revoke ends sessions; the revocation reaches every replica's
	// Revoked set. Unknown or already ended ids are no error. until is how
	// long the revocation must be remembered: the longest an access token
	// of the session can still live.
	Revoke(ctx context.Context, ids []string, cause Cause, until time.Time) error
	// List returns the user's live sessions, oldest first.
	List(ctx context.Context, userID string) ([]Session, error)
	// Count returns the number of live sessions, for metrics; it must be
	// cheap (read at scrape time).
	Count(ctx context.Context) (int, error)
}

// Errors of the package, matched with errors.Is.
var (
	// ErrNotFound: no such session or refresh handle.
	ErrNotFound = errors.New("session: not found")
	// ErrRevoked: the session has ended.
	ErrRevoked = errors.New("session: revoked")
	// ErrReused: a used refresh handle came back after the reuse interval;
	// the session is now revoked.
	ErrReused = errors.New("session: refresh token reused")
	// ErrLimitReached: the user has Limit.Max live sessions and the policy
	// refuses new ones.
	ErrLimitReached = errors.New("session: session limit reached")
	// ErrUnavailable: the store cannot be reached or answered nonsense.
	ErrUnavailable = errors.New("session: store unavailable")
	// ErrInvalidConfig: a Config is not usable.
	ErrInvalidConfig = errors.New("session: invalid config")
	// ErrInvalidArgument: a call the store must refuse whatever its state
	// (an empty id or handle, an expiry already past, a session id or
	// handle already in use): a bug in the caller.
	ErrInvalidArgument = errors.New("session: invalid argument")
)
