package identity

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/httpurl"
	"github.com/tollgate/tollgate/jsonpath"
	"go.uber.org/zap"
)

// Service is an external OAuth server whose access tokens can be exchanged
// for tollgate tokens (login_with_token, docs/CLIENTS.md §1.3).
type Service struct {
	// Name is the value of the service form field. Required.
	Name string
	// IntrospectionURL validates tokens by RFC 7662, authenticating with
	// ClientID/ClientSecret (HTTP Basic). Either it or UserinfoURL.
	IntrospectionURL string
	ClientID         string
	ClientSecret     string
	// UserinfoURL validates tokens by calling the OIDC userinfo endpoint
	// with them.
	UserinfoURL string
	// AllowedClients and AllowedAudiences say which apps' tokens are
	// accepted: a token is, if the reply's client_id is one of
	// AllowedClients or its aud (a string or an array) names one of
	// AllowedAudiences. Without them a token any app of the external
	// server obtained would log its user in here. An introspection service
	// needs at least one of them. For a userinfo service, whose replies
	// rarely carry client_id or aud, they are optional and checked when
	// the reply has the field.
	AllowedClients   []string
	AllowedAudiences []string
	// Claim is the external claim that names the user. Empty means "sub".
	Claim string
	// UserField is the local field Claim is looked up against: "id"
	// (default), "username" or "email".
	UserField string
	// CacheTTL, if positive, caches a positive result for at most this
	// long, and never beyond the external token's own exp.
	CacheTTL time.Duration
	// Timeout bounds one call. Zero means 5s.
	Timeout time.Duration
}

// Finder looks users up by a field; *Users and *Legacy satisfy it.
type Finder interface {
	Find(ctx context.Context, field, value string) (*User, error)
}

// External exchanges external OAuth access tokens for local users.
type External struct {
	services map[string]*externalService
	users    Finder
	logger   *zap.Logger
}

type externalService struct {
	Service
	opts backendOptions

	mu    sync.Mutex
	cache map[[32]byte]cached // guarded by mu
}

type cached struct {
	userID string
	until  time.Time
}

// maxCacheEntries bounds each service's positive-result cache.
const maxCacheEntries = 10000

// NewExternal validates the services, reporting every problem at once.
func NewExternal(services []Service, users Finder, logger *zap.Logger, opts ...BackendOption) (*External, error) {
	e := &External{services: map[string]*externalService{}, users: users, logger: orNop(logger).Named("external")}
	var errs []error
	for i, s := range services {
		where := fmt.Sprintf("service %d (%q)", i, s.Name)
		switch {
		case s.Name == "":
			errs = append(errs, fmt.Errorf("%s: name is empty", where))
			continue
		case e.services[s.Name] != nil:
			errs = append(errs, fmt.Errorf("%s: defined twice", where))
			continue
		case (s.IntrospectionURL == "") == (s.UserinfoURL == ""):
			errs = append(errs, fmt.Errorf("%s: set exactly one of introspection_url and userinfo_url", where))
		case s.IntrospectionURL != "" && s.ClientID == "":
			errs = append(errs, fmt.Errorf("%s: introspection needs client_id (and client_secret)", where))
		}
		if s.IntrospectionURL != "" && len(s.AllowedClients) == 0 && len(s.AllowedAudiences) == 0 {
			errs = append(errs, fmt.Errorf("introspection service %q accepts tokens issued to any app: set allowed_clients or allowed_audiences", s.Name))
		}
		for _, l := range []struct {
			field string
			list  []string
		}{{"allowed_clients", s.AllowedClients}, {"allowed_audiences", s.AllowedAudiences}} {
			if slices.Contains(l.list, "") {
				errs = append(errs, fmt.Errorf("%s: %s holds an empty name", where, l.field))
			}
		}
		for _, u := range []string{s.IntrospectionURL, s.UserinfoURL} {
			if _, err := httpurl.Parse(u); u != "" && err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
		switch s.UserField {
		case "":
			s.UserField = "id"
		case "id", "username", "email":
		default:
			errs = append(errs, fmt.Errorf("%s: user_field %q is not id, username or email", where, s.UserField))
		}
		if s.Claim == "" {
			s.Claim = "sub"
		}
		if _, err := jsonpath.Parse(s.Claim); err != nil {
			errs = append(errs, fmt.Errorf("%s: claim %q: %w", where, s.Claim, err))
		}
		if s.Timeout <= 0 {
			s.Timeout = 5 * time.Second
		}
		s.AllowedClients, s.AllowedAudiences = slices.Clone(s.AllowedClients), slices.Clone(s.AllowedAudiences)
		e.services[s.Name] = &externalService{Service: s, opts: newBackendOptions(s.Timeout, opts), cache: map[[32]byte]cached{}}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return e, nil
}

// Exchange validates token with the named service and returns the local
// user it maps to. The token is never logged.
func (e *External) Exchange(ctx context.Context, service, token string) (*User, error) {
	s := e.services[service]
	if s == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownService, service)
	}
	if token == "" {
		return nil, fmt.Errorf("%w: empty token", ErrInactiveToken)
	}
	key := sha256.Sum256([]byte(token))
	if id, ok := s.cached(key); ok {
		if u, err := e.users.Find(ctx, "id", id); err == nil {
			return u, nil
		}
	}
	claims, exp, err := s.validate(ctx, token)
	if err != nil {
		return nil, err
	}
	value, ok := jsonpath.GetText(claims, s.Claim)
	if !ok {
		return nil, fmt.Errorf("%w: the reply has no %s", ErrUnmappedUser, s.Claim)
	}
	u, err := e.users.Find(ctx, s.UserField, value)
	if errors.Is(err, ErrUnknownUser) {
		return nil, fmt.Errorf("%w: %s", ErrUnmappedUser, s.UserField)
	}
	if err != nil {
		return nil, err
	}
	s.store(key, u.ID, exp)
	return u, nil
}

// validate asks the external server about token; exp is zero if the
// server gave none.
func (s *externalService) validate(ctx context.Context, token string) (any, time.Time, error) {
	name := "external:" + s.Name
	var req *http.Request
	if s.IntrospectionURL != "" {
		form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
		req, _ = http.NewRequest(http.MethodPost, s.IntrospectionURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(s.ClientID), url.QueryEscape(s.ClientSecret))
	} else {
		req, _ = http.NewRequest(http.MethodGet, s.UserinfoURL, nil)
		req.Header.Set("Authorization", "Bearer "+token)
	}
	status, reply, err := call(ctx, s.opts, name, req)
	if err != nil {
		return nil, time.Time{}, err
	}
	switch {
	case s.UserinfoURL != "" && (status == http.StatusUnauthorized || status == http.StatusForbidden):
		return nil, time.Time{}, fmt.Errorf("%w: userinfo refused it", ErrInactiveToken)
	case status != http.StatusOK || reply == nil:
		return nil, time.Time{}, fmt.Errorf("%w: %s answered %d", ErrBackend, name, status)
	}
	var exp time.Time
	if n, ok := jsonpath.Get(reply, "exp"); ok {
		if num, ok := n.(json.Number); ok {
			if sec, err := num.Int64(); err == nil {
				exp = time.Unix(sec, 0)
			}
		}
	}
	if s.IntrospectionURL != "" {
		if active, _ := jsonpath.Get(reply, "active"); active != true {
			return nil, time.Time{}, fmt.Errorf("%w: introspection says inactive", ErrInactiveToken)
		}
	}
	if err := s.checkAudience(reply); err != nil {
		return nil, time.Time{}, err
	}
	if !exp.IsZero() && !s.opts.now().Before(exp) {
		return nil, time.Time{}, fmt.Errorf("%w: expired", ErrInactiveToken)
	}
	return reply, exp, nil
}

// checkAudience checks that the token the reply is about was issued to an
// allowed app (see Service.AllowedClients). An introspection reply must
// show it; a userinfo reply is checked on the fields it has that a list is
// set for. Errors name no value of the reply.
func (s *externalService) checkAudience(reply any) error {
	obj, _ := reply.(map[string]any)
	clientID, hasClient := obj["client_id"].(string)
	hasClient = hasClient && clientID != "" && len(s.AllowedClients) > 0
	auds, hasAud := audiences(obj["aud"])
	hasAud = hasAud && len(s.AllowedAudiences) > 0
	switch {
	case hasClient && slices.Contains(s.AllowedClients, clientID):
		return nil
	case hasAud && slices.ContainsFunc(auds, func(a string) bool { return slices.Contains(s.AllowedAudiences, a) }):
		return nil
	case s.UserinfoURL != "" && !hasClient && !hasAud:
		return nil // nothing a list applies to
	case !hasClient && !hasAud:
		return fmt.Errorf("%w: the reply shows no client_id or aud that allowed_clients or allowed_audiences could accept", ErrInactiveToken)
	default:
		return fmt.Errorf("%w: issued to an app not in allowed_clients or allowed_audiences", ErrInactiveToken)
	}
}

// audiences reads an aud claim: a non-empty string or an array of them.
// An array element that is not a non-empty string is ignored.
func audiences(v any) ([]string, bool) {
	switch v := v.(type) {
	case string:
		return []string{v}, v != ""
	case []any:
		var out []string
		for _, e := range v {
			if a, ok := e.(string); ok && a != "" {
				out = append(out, a)
			}
		}
		return out, len(out) > 0
	}
	return nil, false
}

func (s *externalService) cached(key [32]byte) (string, bool) {
	if s.CacheTTL <= 0 {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cache[key]
	if !ok || !s.opts.now().Before(c.until) {
		delete(s.cache, key)
		return "", false
	}
	return c.userID, true
}

// store caches a positive result until the earlier of CacheTTL and exp.
func (s *externalService) store(key [32]byte, userID string, exp time.Time) {
	if s.CacheTTL <= 0 {
		return
	}
	now := s.opts.now()
	until := now.Add(s.CacheTTL)
	if !exp.IsZero() && exp.Before(until) {
		until = exp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= maxCacheEntries {
		for k, c := range s.cache {
			if !now.Before(c.until) {
				delete(s.cache, k)
			}
		}
		if len(s.cache) >= maxCacheEntries {
			return // full of live entries: do not grow
		}
	}
	s.cache[key] = cached{userID: userID, until: until}
}
