package issuer

import (
	"context"
	"errors"
	"net/http"

	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/session"
	"github.com/tollgate/tollgate/verifier"
)

// bearerSession verifies the request's Bearer access token (the proxy's
// parser and words) and returns its live stored session.
func (i *Issuer) bearerSession(r *http.Request) (*verifier.Token, session.Session, error) {
	raw, status := edge.BearerToken(r.Header)
	switch status {
	case edge.TokenMissing:
		return nil, session.Session{}, fromRefusal(i.bearer.Missing)
	case edge.TokenInvalid:
		return nil, session.Session{}, fromRefusal(i.bearer.InvalidRequest)
	}
	tok, err := i.access.Verify(r.Context(), raw)
	if err == nil && !i.isSelf(tok.Issuer()) {
		err = verifier.ErrWrongIssuer
	}
	if err != nil {
		return nil, session.Session{}, fromRefusal(i.bearer.InvalidToken(verifier.Reason(err), verifier.Description(err))).because(err)
	}
	s, err := i.liveSession(r.Context(), tok)
	if errors.Is(err, session.ErrUnavailable) {
		return nil, s, storeError(err)
	}
	if err != nil {
		return nil, s, fromRefusal(i.bearer.InvalidToken(verifier.ErrRevoked.Reason, verifier.ErrRevoked.Description)).because(err)
	}
	return tok, s, nil
}

// serveJSONAPILogout ends the bearer's session: DELETE
// /api/auth/v1/access_tokens.
func (i *Issuer) serveJSONAPILogout(w http.ResponseWriter, r *http.Request, _ string) {
	noStore(w)
	_, s, err := i.bearerSession(r)
	if err == nil {
		err = i.revoke(r.Context(), []string{s.ID}, session.CauseLogout)
	}
	if err != nil {
		i.writeJSONAPIError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// serveLogout ends the session of a refresh token, as Keycloak clients ask
// (form client_id, refresh_token; a confidential client authenticates).
// An unknown or already ended refresh token is invalid_grant, as in
// Keycloak.
func (i *Issuer) serveLogout(w http.ResponseWriter, r *http.Request, _ string) {
	noStore(w)
	err := i.logout(w, r)
	if err != nil {
		i.writeOAuthError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (i *Issuer) logout(w http.ResponseWriter, r *http.Request) error {
	g, f, err := i.exchangeGrant(w, r, "refresh_token")
	if err != nil {
		return err
	}
	if f["refresh_token"] == "" {
		return refuse(ErrInvalidRequest, "refresh_token is required")
	}
	client, err := i.authenticateClient(g)
	if err != nil {
		return err
	}
	s, err := i.store.Lookup(r.Context(), f["refresh_token"])
	if err != nil {
		return storeError(err)
	}
	if s.ClientID != client.ID {
		return refuse(ErrInvalidGrant, "the refresh token was issued to another client")
	}
	return i.revoke(r.Context(), []string{s.ID}, session.CauseLogout)
}

// serveRevoke is RFC 7009: the session of an access or refresh token ends.
// The client authenticates (a public one names itself); a token that is
// unknown, invalid or another client's is answered 200 and changes
// nothing (§2.2).
func (i *Issuer) serveRevoke(w http.ResponseWriter, r *http.Request, _ string) {
	noStore(w)
	g, f, err := i.exchangeGrant(w, r, "refresh_token")
	var client *Client
	if err == nil {
		g.Type = "" // any registered client may revoke its own tokens
		client, err = i.revokingClient(g)
	}
	if err == nil && f["token"] == "" {
		err = refuse(ErrInvalidRequest, "token is required")
	}
	if err == nil {
		err = i.revokeToken(r.Context(), client, f["token"], f["token_type_hint"])
	}
	if err != nil {
		i.writeOAuthError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// revokingClient authenticates the client of a revocation without asking
// for a grant.
func (i *Issuer) revokingClient(g *grant) (*Client, error) {
	if g.ClientID == "" {
		g.ClientID = "anonymous"
	}
	if i.clients == nil {
		return &Client{ID: g.ClientID}, nil
	}
	c := i.clients[g.ClientID]
	if c == nil || c.Secret != "" && !secretsEqual(g.ClientSecret, c.Secret) {
		secretsEqual(g.ClientSecret, "unknown-client")
		e := refuse(ErrInvalidClient, "bad client credentials")
		if g.BasicAuth {
			e.challenge("Basic realm=" + edge.Quote(i.cfg.Realm))
		}
		return nil, e
	}
	return c, nil
}

// revokeToken ends the session of token if it is client's. Only a store
// failure is an error.
func (i *Issuer) revokeToken(ctx context.Context, client *Client, token, hint string) error {
	var s session.Session
	var err error
	if tok, verr := i.access.Verify(ctx, token); verr == nil && i.isSelf(tok.Issuer()) && hint != "refresh_token" {
		s, err = i.liveSession(ctx, tok)
	} else {
		s, err = i.store.Lookup(ctx, token)
		if errors.Is(err, session.ErrNotFound) {
			// An access token that no longer verifies (expired) still names
			// its session: revoking it is harmless and what the client wants.
			if tok, verr := i.access.Verify(ctx, token); verr == nil && i.isSelf(tok.Issuer()) {
				s, err = i.liveSession(ctx, tok)
			}
		}
	}
	switch {
	case errors.Is(err, session.ErrUnavailable):
		return storeError(err)
	case err != nil, s.ClientID != client.ID:
		return nil // unknown, ended, or another client's: 200, nothing done
	}
	return i.revoke(ctx, []string{s.ID}, session.CauseRevoke)
}

// introspectStored answers RFC 7662 with the store: a refresh handle is
// active while its session lives; an access token while it verifies and
// its session lives.
func (i *Issuer) introspectStored(w http.ResponseWriter, r *http.Request, token string) {
	ctx := r.Context()
	inactive := map[string]any{"active": false}
	if tok, err := i.access.VerifyUncached(ctx, token); err == nil && i.isSelf(tok.Issuer()) { // its claims
		if _, err := i.liveSession(ctx, tok); err != nil {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		resp := map[string]any{"active": true, "token_type": "Bearer", "sub": tok.Subject, "iss": tok.Issuer(),
			"exp": tok.ExpiresAt().Unix(), "iat": tok.IssuedAt().Unix(), "aud": tok.Audience(), "jti": tok.ID}
		for _, k := range []string{"client_id", "scope", "sid", "profile"} {
			if v, ok := tok.Claims[k]; ok {
				resp[k] = v
			}
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	s, err := i.store.Lookup(ctx, token)
	if err != nil {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"active": true, "sub": s.UserID,
		"iss": i.cfg.Issuer, "exp": s.Expires.Unix(), "iat": s.Refreshed.Unix(), "client_id": s.ClientID,
		"scope": s.Scope, "sid": s.ID, "profile": s.Profile})
}

// serveSessions lists the bearer's sessions (JSON:API).
func (i *Issuer) serveSessions(w http.ResponseWriter, r *http.Request, _ string) {
	noStore(w)
	_, current, err := i.bearerSession(r)
	var list []session.Session
	if err == nil {
		if list, err = i.store.List(r.Context(), current.UserID); err != nil {
			err = storeError(err)
		}
	}
	if err != nil {
		i.writeJSONAPIError(w, r, err)
		return
	}
	data := make([]map[string]any, 0, len(list))
	for _, s := range list {
		data = append(data, map[string]any{"type": "Session", "id": s.ID, "attributes": map[string]any{
			"client_id": s.ClientID, "user_profile_id": s.Profile, "created_timestamp": s.Created.Unix(),
			"refreshed_timestamp": s.Refreshed.Unix(), "expires_at_timestamp": s.Expires.Unix(), "current": s.ID == current.ID,
		}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

// serveEndSession ends one of the bearer's own sessions; another user's
// is not found (404), so ids cannot be probed.
func (i *Issuer) serveEndSession(w http.ResponseWriter, r *http.Request, _ string) {
	noStore(w)
	_, current, err := i.bearerSession(r)
	if err == nil {
		var s session.Session
		s, err = i.store.Get(r.Context(), r.PathValue("id"))
		switch {
		case errors.Is(err, session.ErrUnavailable):
			err = storeError(err)
		case err != nil || s.UserID != current.UserID:
			err = refuse(ErrNotEnabled, "no such session")
		default:
			err = i.revoke(r.Context(), []string{s.ID}, session.CauseOperator)
		}
	}
	if err != nil {
		i.writeJSONAPIError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// storedProfileToken switches the bearer's stored session to another of
// the user's profiles and mints an access token for it. No refresh token
// comes with it: the session has one, and from now on its refreshes mint
// the new profile (a second handle would fork the session).
func (i *Issuer) storedProfileToken(ctx context.Context, tok *verifier.Token, client *Client, profile string) (*Tokens, error) {
	s, err := i.liveSession(ctx, tok)
	if err != nil {
		if errors.Is(err, session.ErrUnavailable) {
			return nil, storeError(err)
		}
		return nil, refuse(ErrInvalidGrant, "the access token is not valid").because(err)
	}
	u, err := i.users.Lookup(ctx, s.UserID)
	if err != nil {
		return nil, identityError(err)
	}
	if profile == "" || !u.HasProfile(profile) {
		return nil, refuse(ErrForbidden, "the profile is not one of this user's")
	}
	if err := i.store.Update(ctx, s.ID, profile); err != nil {
		return nil, storeError(err)
	}
	return i.mint(client, u, i.narrowForUser(u, s.Scope), profile, tokenSession{id: s.ID, expires: s.Expires,
		issuer: tok.Issuer(), authTime: s.Created}, accessOnly)
}
