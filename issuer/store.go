package issuer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/session"
	"github.com/tollgate/tollgate/verifier"
)

// Sessions is the session store as the issuer uses it; *session.Memory
// and *session.Redis satisfy it.
type Sessions interface {
	Create(ctx context.Context, s session.Session, handle string, limit session.Limit) ([]string, error)
	Rotate(ctx context.Context, presented, next, clientID string, expires time.Time, reuse time.Duration) (session.Rotation, error)
	Get(ctx context.Context, id string) (session.Session, error)
	Lookup(ctx context.Context, handle string) (session.Session, error)
	Update(ctx context.Context, id, profile string) error
	Revoke(ctx context.Context, ids []string, cause session.Cause, until time.Time) error
	List(ctx context.Context, userID string) ([]session.Session, error)
}

// StoreConfig configures sessions kept in a store.
type StoreConfig struct {
	// ReuseInterval is how long a used refresh token may come back (a
	// retry after a timeout, two threads refreshing at once) and get the
	// same successor; after it, its return revokes the session. Zero means
	// 5s.
	ReuseInterval time.Duration
	// MaxPerUser is the most live sessions of a user (a user's own
	// max_sessions overrides it); 0 means unlimited.
	MaxPerUser int
	// RefuseBeyond refuses a login beyond the limit instead of ending the
	// user's oldest session.
	RefuseBeyond bool
}

// SessionObserver receives session events, for metrics.
type SessionObserver interface {
	// SessionEvent counts one event: "created", "rotated", "retried" (a
	// used refresh token within the reuse interval), "reuse_detected".
	SessionEvent(ctx context.Context, event string)
	// SessionsRevoked counts n sessions ended for cause.
	SessionsRevoked(ctx context.Context, cause string, n int)
	// DeviceEvent counts a device-flow event: issued, approved, denied,
	// expired, slow_down, wrong_code.
	DeviceEvent(ctx context.Context, event string)
}

type nopSessionObserver struct{}

func (nopSessionObserver) SessionEvent(context.Context, string)         {}
func (nopSessionObserver) SessionsRevoked(context.Context, string, int) {}
func (nopSessionObserver) DeviceEvent(context.Context, string)          {}

// WithSessionStore keeps sessions in store: refresh tokens become opaque
// one-time handles, and logout, revocation and session listing work. obs
// may be nil.
func WithSessionStore(store Sessions, cfg StoreConfig, obs SessionObserver) Option {
	if cfg.ReuseInterval <= 0 {
		cfg.ReuseInterval = 5 * time.Second
	}
	if obs == nil {
		obs = nopSessionObserver{}
	}
	return func(i *Issuer) { i.store, i.storeCfg, i.sessObs = store, cfg, obs }
}

// storeError maps a store failure to the token endpoints' errors: the
// store down fails closed (503), never a token the store did not record.
func storeError(err error) error {
	switch {
	case errors.Is(err, session.ErrUnavailable):
		return refuse(ErrBusy, "the session store is unavailable").because(err)
	case errors.Is(err, session.ErrLimitReached):
		return refuse(ErrInvalidGrant, "the session limit is reached: sign out on another device first").because(err)
	case errors.Is(err, session.ErrReused):
		return refuse(ErrInvalidGrant, "the refresh token was already used; the session is ended").because(err)
	case errors.Is(err, session.ErrWrongClient):
		return refuse(ErrInvalidGrant, "the refresh token was issued to another client").because(err)
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrRevoked):
		return refuse(ErrInvalidGrant, "the refresh token is not valid").because(err)
	}
	return err
}

// revocationHorizon is how long a revocation must be remembered: the
// longest an access token minted now can live.
func (i *Issuer) revocationHorizon() time.Time {
	d := i.cfg.AccessTTL
	for _, c := range i.clients {
		d = max(d, c.AccessTTL)
	}
	return i.now().Add(d + time.Minute) // + the verifier's leeway
}

// revoke ends sessions and counts them.
func (i *Issuer) revoke(ctx context.Context, ids []string, cause session.Cause) error {
	if len(ids) == 0 {
		return nil
	}
	if err := i.store.Revoke(ctx, ids, cause, i.revocationHorizon()); err != nil {
		return storeError(err)
	}
	i.sessObs.SessionsRevoked(ctx, string(cause), len(ids))
	return nil
}

// startStoredSession records a new session and mints its first pair; the
// refresh token is the session's first one-time handle.
func (i *Issuer) startStoredSession(ctx context.Context, c *Client, u *identity.User, scope, profile string) (*Tokens, error) {
	now := i.now().Truncate(time.Second)
	handle := session.NewHandle()
	s := session.Session{ID: newID(), UserID: u.ID, ClientID: c.ID, Profile: profile, Scope: scope, Role: u.Role,
		PasswordStamp: u.PasswordStamp, Created: now, Refreshed: now, Expires: now.Add(i.refreshTTL(c))}
	limit := session.Limit{Max: i.storeCfg.MaxPerUser, Refuse: i.storeCfg.RefuseBeyond}
	if u.MaxSessions > 0 {
		limit.Max = u.MaxSessions
	}
	evicted, err := i.store.Create(ctx, s, handle, limit)
	if err != nil {
		return nil, storeError(err)
	}
	i.sessObs.SessionEvent(ctx, "created")
	if len(evicted) > 0 {
		i.sessObs.SessionsRevoked(ctx, string(session.CauseLimit), len(evicted))
	}
	return i.mint(c, u, scope, profile, tokenSession{id: s.ID, issuer: i.issuerFrom(ctx), authTime: now}, handle)
}

// refreshStored rotates a one-time refresh handle and mints the next
// pair, in one store operation that also checks the session's client: a
// handle presented through another client changes nothing. A retry
// within the reuse interval gets a fresh access token and the same
// successor handle; a handle used after it ends the session, whichever
// client presents it.
func (i *Issuer) refreshStored(ctx context.Context, client *Client, g *grant) (*Tokens, error) {
	next := session.NewHandle()
	rot, err := i.store.Rotate(ctx, g.RefreshToken, next, client.ID, i.now().Add(i.refreshTTL(client)), i.storeCfg.ReuseInterval)
	switch {
	case errors.Is(err, session.ErrReused):
		i.sessObs.SessionEvent(ctx, "reuse_detected")
		i.sessObs.SessionsRevoked(ctx, string(session.CauseReuse), 1)
		i.logger.Warn("a used refresh token came back after the reuse interval: the session is revoked",
			append(edge.LogFields(ctx), zap.String("client", client.ID))...)
		return nil, storeError(err)
	case err != nil:
		return nil, storeError(err)
	}
	s := rot.Session
	handle := next
	if rot.Successor != "" {
		handle = rot.Successor
		i.sessObs.SessionEvent(ctx, "retried")
	} else {
		i.sessObs.SessionEvent(ctx, "rotated")
	}
	user, err := i.users.Lookup(ctx, s.UserID)
	if errors.Is(err, identity.ErrBackend) {
		return nil, refuse(ErrUnavailable, "the user backend is unavailable").because(err)
	}
	if err != nil {
		i.revoke(ctx, []string{s.ID}, session.CauseOperator)
		return nil, refuse(ErrInvalidGrant, "the user no longer exists").because(err)
	}
	if s.PasswordStamp != "" && s.PasswordStamp != user.PasswordStamp {
		if err := i.revoke(ctx, []string{s.ID}, session.CausePasswordChange); err != nil {
			return nil, err
		}
		return nil, refuse(ErrInvalidGrant, "the password changed: sign in again")
	}
	scope, err := i.scope(client, g.Scope, s.Scope)
	if err != nil {
		return nil, err
	}
	profile := user.KeptProfile(s.Profile)
	renewal := tokenSession{id: s.ID, renewal: true, askedOIDC: slices.Contains(strings.Fields(g.Scope), "openid"),
		issuer: i.issuerFrom(ctx), authTime: s.Created}
	return i.mint(client, user, i.narrowForUser(user, scope), profile, renewal, handle)
}

// liveSession returns the stored session of a verified access token.
func (i *Issuer) liveSession(ctx context.Context, tok *verifier.Token) (session.Session, error) {
	s, err := i.store.Get(ctx, tok.SessionID)
	if err != nil {
		return s, err
	}
	if s.UserID != tok.Subject {
		return s, fmt.Errorf("%w: the token's user is not the session's", session.ErrNotFound)
	}
	return s, nil
}
