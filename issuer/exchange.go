package issuer

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/identity"
)

// identityError maps a backend's error to the token endpoint's errors.
func identityError(err error) error {
	switch {
	case errors.Is(err, identity.ErrBackend):
		return fmt.Errorf("%w: the backend is unavailable: %w", ErrUnavailable, err)
	case errors.Is(err, identity.ErrUnknownService):
		return fmt.Errorf("%w: unknown service", ErrInvalidRequest)
	case errors.Is(err, identity.ErrInactiveToken):
		return fmt.Errorf("%w: the external token is not active", ErrInvalidGrant)
	case errors.Is(err, identity.ErrUnmappedUser):
		return fmt.Errorf("%w: no local user for this external account", ErrInvalidGrant)
	case errors.Is(err, identity.ErrSessionInvalid):
		return fmt.Errorf("%w: the session is not valid", ErrInvalidGrant)
	case errors.Is(err, identity.ErrSessionForbidden):
		return fmt.Errorf("%w: the legacy system refuses this session", ErrForbidden)
	case errors.Is(err, identity.ErrUnknownUser):
		return fmt.Errorf("%w: unknown user", ErrInvalidGrant)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return err
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
	return nil, fmt.Errorf("%w: unknown client", ErrInvalidClient)
}

// tokenExchange serves source-doc 000's login_with_token: form fields
// access_token and service (and optionally client_id).
func (i *Issuer) tokenExchange(ctx context.Context, f map[string]string) (*Tokens, error) {
	if i.external == nil {
		return nil, fmt.Errorf("%w: no external OAuth service is configured", ErrNotEnabled)
	}
	if f["access_token"] == "" || f["service"] == "" {
		return nil, fmt.Errorf("%w: access_token and service are required", ErrInvalidRequest)
	}
	client, err := i.clientByID(f["client_id"])
	if err != nil {
		return nil, err
	}
	u, err := i.external.Exchange(ctx, f["service"], f["access_token"])
	if err != nil {
		return nil, identityError(err)
	}
	return i.newSession(client, u, f["scope"])
}

// newSession mints the first pair of a new session for u, on its default
// profile.
func (i *Issuer) newSession(client *Client, u *identity.User, requestedScope string) (*Tokens, error) {
	scope, err := i.scope(client, requestedScope, "")
	if err != nil {
		return nil, err
	}
	return i.mint(client, u, scope, u.DefaultProfile(), newID())
}

// cookieExchange turns a legacy session cookie into tokens.
func (i *Issuer) cookieExchange(ctx context.Context, r *http.Request, f map[string]string) (*Tokens, error) {
	if i.sessions == nil {
		return nil, fmt.Errorf("%w: cookie exchange is not configured", ErrNotEnabled)
	}
	client, err := i.clientByID(f["client_id"])
	if err != nil {
		return nil, err
	}
	id, err := i.sessions.UserID(ctx, r.Cookies())
	if err != nil {
		return nil, identityError(err)
	}
	u, err := i.users.Lookup(ctx, id)
	if err != nil {
		return nil, identityError(err)
	}
	return i.newSession(client, u, f["scope"])
}

// profileToken mints a pair bound to one of the bearer's profiles, keeping
// the session, user, client and scope of the bearer's token.
func (i *Issuer) profileToken(ctx context.Context, r *http.Request, profile string) (*Tokens, error) {
	raw, ok := bearer(r)
	if !ok {
		return nil, fmt.Errorf("%w: a Bearer access token is required", ErrInvalidGrant)
	}
	tok, err := i.access.Verify(ctx, raw)
	if err != nil || tok.Issuer != i.cfg.Issuer {
		return nil, fmt.Errorf("%w: the access token is not valid", ErrInvalidGrant)
	}
	claim := func(name string) string { s, _ := tok.Claims[name].(string); return s }
	client, err := i.clientByID(claim("client_id"))
	if err != nil {
		return nil, fmt.Errorf("%w: the token's client is no longer registered", ErrInvalidGrant)
	}
	u, err := i.users.Lookup(ctx, tok.Subject)
	if err != nil {
		return nil, identityError(err)
	}
	if profile == "" || !u.HasProfile(profile) {
		return nil, fmt.Errorf("%w: the profile is not one of this user's", ErrForbidden)
	}
	return i.mint(client, u, claim("scope"), profile, claim("sid"))
}
