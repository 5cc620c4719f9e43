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
	// revoked (CauseReuse) and ErrReused returned, whichever client
	// presents it. The session must be clientID's: its current handle, or
	// one used within reuse, presented for another client is
	// ErrWrongClient and changes nothing. An unknown handle is
	// ErrNotFound, a handle of an ended session ErrRevoked.
	Rotate(ctx context.Context, presented, next, clientID string, expires time.Time, reuse time.Duration) (Rotation, error)
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

// DeviceStatus is where a device authorization request (RFC 8628)
// stands. A request has no expired status: past DeviceCode.Expires it is
// expired whatever its status.
type DeviceStatus string

// Statuses of a device authorization request.
const (
	DevicePending  DeviceStatus = "pending"  // waiting for the user to decide
	DeviceApproved DeviceStatus = "approved" // the user said yes: the next poll gets tokens
	DeviceDenied   DeviceStatus = "denied"   // the user said no
	DeviceUsed     DeviceStatus = "used"     // tokens were handed out: the device code is spent
)

// DeviceCode is a device authorization request (RFC 8628): a device
// without a browser polls with its device code (kept only as a hash)
// while the user signs in elsewhere and enters the user code.
type DeviceCode struct {
	// UserCode is what the user enters, as NewUserCode makes it
	// ("BDFH-KMNP"). It is kept as is: it is no bearer credential (it
	// only names a request for a signed-in user to decide) and a hash of
	// so few bits would hide nothing.
	UserCode string
	// ClientID and Scope are the client that asked and what for.
	ClientID, Scope string
	// Created is when the request was made (zero: now); Expires is when
	// its codes stop working (expires_in).
	Created, Expires time.Time
	// Interval is the least time between two polls (zero:
	// DefaultDeviceInterval); every slow_down raises it by 5s.
	Interval time.Duration
	// Status is where the request stands; CreateDevice makes it
	// DevicePending.
	Status DeviceStatus
	// UserID and Profile are who approved it and the profile they chose,
	// set by DecideDevice.
	UserID, Profile string
	// DeviceName is what the device said it is, if anything (shown to
	// the user; the issuer bounds its length).
	DeviceName string
}

// DeviceCodes keeps device authorization requests (RFC 8628 §3.2-3.5).
// Implementations are safe for concurrent use and every method is one
// atomic operation on the store. Limiting guesses of user codes is the
// caller's job, with a limit.Limiter shared by the replicas
// ((*Redis).Limiter).
type DeviceCodes interface {
	// CreateDevice records a pending request under deviceCode (only its
	// hash is kept) and d.UserCode (any form NormalizeUserCode takes).
	// A user code must be unique among unexpired requests: one in use
	// is ErrUserCodeInUse (also ErrInvalidArgument), and the caller
	// tries again with a new one. The same call again is no error.
	CreateDevice(ctx context.Context, deviceCode string, d DeviceCode) error
	// DeviceByUserCode returns the unexpired request of a user code, in
	// any status, for the page where the user decides (ErrNotFound when
	// there is none).
	DeviceByUserCode(ctx context.Context, userCode string) (DeviceCode, error)
	// DecideDevice approves a pending request for userID with profile,
	// or denies it. A request already decided (or used) is
	// ErrDeviceDecided; an unknown or expired one ErrNotFound.
	DecideDevice(ctx context.Context, userCode string, approve bool, userID, profile string) error
	// PollDevice answers the device's token request (RFC 8628 §3.5) with
	// the request's state, changing it in the same step:
	//   - an unknown device code, another client's, or one already used:
	//     ErrNotFound (invalid_grant);
	//   - expired: ErrDeviceExpired (expired_token);
	//   - denied: ErrAccessDenied (access_denied);
	//   - approved: no error, and the request is now DeviceUsed, so that
	//     tokens are handed out once;
	//   - pending, polled sooner than Interval after the previous poll:
	//     ErrSlowDown (slow_down), and Interval is raised by 5s for every
	//     later poll;
	//   - pending: ErrAuthorizationPending (authorization_pending).
	// A pending poll is remembered, a slow one too. The DeviceCode
	// returned is the request as the poll left it, but for ErrNotFound
	// (zero).
	PollDevice(ctx context.Context, deviceCode, clientID string) (DeviceCode, error)
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
	// ErrWrongClient: a refresh handle was presented for another client
	// than its session's; nothing changed.
	ErrWrongClient = errors.New("session: refresh token of another client")
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

	// ErrUserCodeInUse: CreateDevice was given the user code of an
	// unexpired request; it comes with ErrInvalidArgument.
	ErrUserCodeInUse = errors.New("session: user code in use")
	// ErrDeviceDecided: the device authorization request was already
	// approved or denied.
	ErrDeviceDecided = errors.New("session: device authorization already decided")
	// ErrAuthorizationPending: the user has not decided yet (RFC 8628
	// authorization_pending).
	ErrAuthorizationPending = errors.New("session: device authorization pending")
	// ErrSlowDown: the device polled sooner than its interval allows; the
	// interval is now 5s longer (RFC 8628 slow_down).
	ErrSlowDown = errors.New("session: device polling too fast")
	// ErrAccessDenied: the user denied the device (RFC 8628
	// access_denied).
	ErrAccessDenied = errors.New("session: device authorization denied")
	// ErrDeviceExpired: the device code has expired (RFC 8628
	// expired_token).
	ErrDeviceExpired = errors.New("session: device code expired")
)
