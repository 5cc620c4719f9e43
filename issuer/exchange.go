package issuer

import (
	"context"
	"errors"
	"net/http"

	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/verifier"
)

// identityError maps a backend's error to the token endpoint's errors. The
// backend's own text (its address, its status) goes to the log only.
func identityError(err error) error {
	var e *Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, identity.ErrBackend):
		e = refuse(ErrUnavailable, "the backend is unavailable")
	case errors.Is(err, identity.ErrUnknownService):
		e = refuse(ErrInvalidRequest, "unknown service")
	case errors.Is(err, identity.ErrInactiveToken):
		e = refuse(ErrInvalidGrant, "the external token is not active")
	case errors.Is(err, identity.ErrUnmappedUser):
		e = refuse(ErrInvalidGrant, "no local user for this external account")
	case errors.Is(err, identity.ErrSessionInvalid):
		e = refuse(ErrInvalidGrant, "the session is not valid")
	case errors.Is(err, identity.ErrSessionForbidden):
		e = refuse(ErrForbidden, "the legacy system refuses this session")
	case errors.Is(err, identity.ErrUnknownUser):
		e = refuse(ErrInvalidGrant, "unknown user")
	default:
		return err
	}
	return e.because(err)
}

// clientByID returns the registered client, or a public one when the
// registry is open.
func (i *Issuer) clientByID(id string) (*Client, error) {
	if id == "" {
		id = "anonymous"
	}
	if i.clients == nil {
		return &Client{ID: id, Grants: []string{"password", "refresh_token"}}, nil
	}
	if c := i.clients[id]; c != nil {
		return c, nil
	}
	return nil, refuse(ErrInvalidClient, "unknown client")
}

// tokenExchange serves login_with_token (docs/CLIENTS.md §1.3): form
// fields access_token and service. The client authenticates and must list
// the grant, as at the token endpoint.
func (i *Issuer) tokenExchange(ctx context.Context, g *grant, f map[string]string) (*Tokens, error) {
	if i.external == nil {
		return nil, refuse(ErrNotEnabled, "no external OAuth service is configured")
	}
	if f["access_token"] == "" || f["service"] == "" {
		return nil, refuse(ErrInvalidRequest, "access_token and service are required")
	}
	client, scope, err := i.exchangeClient(g)
	if err != nil {
		return nil, err
	}
	u, err := i.external.Exchange(ctx, f["service"], f["access_token"])
	if err != nil {
		return nil, identityError(err)
	}
	return i.newSession(ctx, client, u, scope)
}

// exchangeClient authenticates and authorises the client of an exchange
// exactly as the token endpoint does, and checks the requested scope.
func (i *Issuer) exchangeClient(g *grant) (*Client, string, error) {
	client, err := i.authenticateClient(g)
	if err != nil {
		return nil, "", err
	}
	scope, err := i.scope(client, g.Scope, "")
	return client, scope, err
}

// newSession starts a session for u on its default profile, if the
// client's partner binding lets u in.
func (i *Issuer) newSession(ctx context.Context, client *Client, u *identity.User, scope string) (*Tokens, error) {
	if !partnerMatches(u, client, "") {
		return nil, refuse(ErrInvalidGrant, "this account cannot sign in through this client").reason(reasonPartnerMismatch)
	}
	return i.startSession(ctx, client, u, scope, u.DefaultProfile())
}

// cookieExchange turns a legacy session cookie into tokens
// (docs/CLIENTS.md §1.5).
func (i *Issuer) cookieExchange(ctx context.Context, r *http.Request, g *grant) (*Tokens, error) {
	if i.legacy == nil {
		return nil, refuse(ErrNotEnabled, "cookie exchange is not configured")
	}
	client, scope, err := i.exchangeClient(g)
	if err != nil {
		return nil, err
	}
	id, err := i.legacy.UserID(ctx, r.Cookies())
	if err != nil {
		return nil, identityError(err)
	}
	u, err := i.users.Lookup(ctx, id)
	if err != nil {
		return nil, identityError(err)
	}
	return i.newSession(ctx, client, u, scope)
}

// profileToken mints a pair bound to one of the bearer's profiles,
// continuing the session, user, client and scope of the bearer's token
// (docs/CLIENTS.md §1.4).
func (i *Issuer) profileToken(ctx context.Context, r *http.Request, profile string) (*Tokens, error) {
	raw, status := edge.BearerToken(r.Header)
	switch status {
	case edge.TokenMissing:
		return nil, refuse(ErrInvalidGrant, "a Bearer access token is required")
	case edge.TokenInvalid:
		return nil, fromRefusal(i.bearer.InvalidRequest)
	}
	tok, err := i.access.VerifyUncached(ctx, raw) // its session claims
	if err == nil && !i.isSelf(tok.Issuer()) {
		err = verifier.ErrWrongIssuer
	}
	if err != nil {
		return nil, refuse(ErrInvalidGrant, "the access token is not valid").because(err)
	}
	s := sessionOf(tok)
	client, err := i.clientByID(s.clientID)
	if err != nil {
		return nil, refuse(ErrInvalidGrant, "the token's client is no longer registered")
	}
	if i.store != nil {
		return i.storedProfileToken(ctx, tok, client, profile)
	}
	s.issuer = tok.Issuer()
	u, err := i.users.Lookup(ctx, tok.Subject)
	if err != nil {
		return nil, identityError(err)
	}
	if profile == "" || !u.HasProfile(profile) {
		return nil, refuse(ErrForbidden, "the profile is not one of this user's")
	}
	return i.continueSession(ctx, client, u, s, s.scope, profile)
}
