package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/httpurl"
	"github.com/tollgate/tollgate/jsonpath"
	"go.uber.org/zap"
)

// LegacyConfig points the password grant at the legacy system's login
// endpoint instead of a users file.
type LegacyConfig struct {
	// LoginURL receives the credentials with POST. Required.
	LoginURL string
	// Format is how credentials are sent: "json" (default) or "form".
	Format string
	// UsernameField and PasswordField name the credential fields.
	// Defaults: "username", "password".
	UsernameField, PasswordField string
	// LookupURL fetches a user by id, for refresh, profile and cookie
	// exchanges. Required. "{id}" in its path or query is replaced by the
	// id, escaped for where it stands: it never adds a path segment or a
	// query parameter. Its reply is read with the same paths as the login
	// reply.
	LookupURL string
	// Paths into the JSON replies. UserIDPath is required.
	UserIDPath, UsernamePath, EmailPath, RolePath, PartnerPath, ProfilesPath string
	// ClaimPaths maps extra token claims to paths in the reply.
	ClaimPaths map[string]string
	// Timeout bounds one call. Zero means 5s.
	Timeout time.Duration
}

// Legacy authenticates against the legacy login endpoint. It satisfies the
// issuer's user store and Finder (by id).
type Legacy struct {
	cfg    LegacyConfig
	opts   backendOptions
	logger *zap.Logger
}

// NewLegacy validates cfg.
func NewLegacy(cfg LegacyConfig, logger *zap.Logger, opts ...BackendOption) (*Legacy, error) {
	var errs []error
	if _, err := httpurl.Parse(cfg.LoginURL); err != nil {
		errs = append(errs, fmt.Errorf("legacy login: login_url: %w", err))
	}
	if u, err := httpurl.Parse(strings.ReplaceAll(cfg.LookupURL, "{id}", idMarker)); err != nil || !strings.Contains(cfg.LookupURL, "{id}") {
		errs = append(errs, fmt.Errorf("legacy login: lookup_url must be an http(s) URL containing {id}"))
	} else if strings.Contains(u.Host, idMarker) {
		errs = append(errs, fmt.Errorf("legacy login: lookup_url may hold {id} in its path or query, not its host"))
	}
	switch cfg.Format {
	case "":
		cfg.Format = "json"
	case "json", "form":
	default:
		errs = append(errs, fmt.Errorf("legacy login: format %q is not json or form", cfg.Format))
	}
	if cfg.UserIDPath == "" {
		errs = append(errs, errors.New("legacy login: user_id_path is empty"))
	}
	for _, p := range append([]string{cfg.UserIDPath, cfg.UsernamePath, cfg.EmailPath, cfg.RolePath, cfg.PartnerPath, cfg.ProfilesPath}, slices.Collect(maps.Values(cfg.ClaimPaths))...) {
		if _, err := jsonpath.Parse(p); err != nil {
			errs = append(errs, fmt.Errorf("legacy login: path %q: %w", p, err))
		}
	}
	for claim := range cfg.ClaimPaths {
		if isReservedClaim(claim) {
			errs = append(errs, fmt.Errorf("legacy login: claim %q is reserved", claim))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if cfg.UsernameField == "" {
		cfg.UsernameField = "username"
	}
	if cfg.PasswordField == "" {
		cfg.PasswordField = "password"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	return &Legacy{cfg: cfg, opts: newBackendOptions(cfg.Timeout, opts), logger: orNop(logger).Named("legacy")}, nil
}

// Authenticate sends the credentials to the legacy login endpoint. Every
// refusal (400, 401, 403, 404) is ErrInvalidCredentials, whatever the
// reason the legacy system gives; 5xx and transport errors are ErrBackend.
func (l *Legacy) Authenticate(ctx context.Context, login string, password []byte) (*User, error) {
	if login == "" || len(password) == 0 {
		return nil, ErrInvalidCredentials
	}
	var req *http.Request
	if l.cfg.Format == "form" {
		form := url.Values{l.cfg.UsernameField: {login}, l.cfg.PasswordField: {string(password)}}
		req, _ = http.NewRequest(http.MethodPost, l.cfg.LoginURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		body, _ := json.Marshal(map[string]string{l.cfg.UsernameField: login, l.cfg.PasswordField: string(password)})
		req, _ = http.NewRequest(http.MethodPost, l.cfg.LoginURL, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
	}
	status, reply, err := call(ctx, l.opts, "legacy_login", req)
	switch {
	case err != nil:
		return nil, err
	case status == http.StatusBadRequest, status == http.StatusUnauthorized, status == http.StatusForbidden, status == http.StatusNotFound:
		return nil, ErrInvalidCredentials
	case status != http.StatusOK:
		return nil, fmt.Errorf("%w: legacy login answered %d", ErrBackend, status)
	}
	return l.user(reply)
}

// idMarker stands for {id} when LookupURL is checked.
const idMarker = "tollgate-id-marker"

// Lookup fetches the user with id from LookupURL. An id that escaping
// cannot keep one path segment ("", ".", "..") is ErrUnknownUser without a
// request: it may come from an external token's claim.
func (l *Legacy) Lookup(ctx context.Context, id string) (*User, error) {
	if id == "" || id == "." || id == ".." {
		return nil, fmt.Errorf("%w: id %q cannot be looked up", ErrUnknownUser, id)
	}
	req, err := http.NewRequest(http.MethodGet, l.lookupURL(id), nil)
	if err != nil { // not expected: NewLegacy checked the URL, and id is escaped
		return nil, fmt.Errorf("%w: legacy lookup URL: %v", ErrBackend, err)
	}
	status, reply, err := call(ctx, l.opts, "legacy_lookup", req)
	switch {
	case err != nil:
		return nil, err
	case status == http.StatusNotFound:
		return nil, fmt.Errorf("%w: id %q", ErrUnknownUser, id)
	case status != http.StatusOK:
		return nil, fmt.Errorf("%w: legacy lookup answered %d", ErrBackend, status)
	}
	return l.user(reply)
}

// lookupURL returns LookupURL with {id} replaced by id, path-escaped in
// the path ("/" is %2F, "?" %3F, "#" %23, "%" %25) and query-escaped in
// the query ("&" and "=" too).
func (l *Legacy) lookupURL(id string) string {
	path, query, hasQuery := strings.Cut(l.cfg.LookupURL, "?")
	u := strings.ReplaceAll(path, "{id}", url.PathEscape(id))
	if hasQuery {
		u += "?" + strings.ReplaceAll(query, "{id}", url.QueryEscape(id))
	}
	return u
}

// Find implements Finder; the legacy system is searched by id only.
func (l *Legacy) Find(ctx context.Context, field, value string) (*User, error) {
	if field != "" && field != "id" {
		return nil, fmt.Errorf("%w: the legacy backend finds users by id only", ErrUnknownUser)
	}
	return l.Lookup(ctx, value)
}

// user reads a User out of a legacy reply.
func (l *Legacy) user(reply any) (*User, error) {
	id, ok := jsonpath.GetText(reply, l.cfg.UserIDPath)
	if !ok {
		return nil, fmt.Errorf("%w: legacy reply has no %s", ErrBackend, l.cfg.UserIDPath)
	}
	u := &User{ID: id, Claims: map[string]any{}}
	for dst, path := range map[*string]string{&u.Username: l.cfg.UsernamePath, &u.Email: l.cfg.EmailPath,
		&u.Role: l.cfg.RolePath, &u.PartnerID: l.cfg.PartnerPath} {
		if path != "" {
			*dst, _ = jsonpath.GetText(reply, path)
		}
	}
	if l.cfg.ProfilesPath != "" {
		u.Profiles = jsonpath.GetTexts(reply, l.cfg.ProfilesPath)
	}
	for claim, path := range l.cfg.ClaimPaths {
		if v, ok := jsonpath.Get(reply, path); ok {
			if _, isObj := v.(map[string]any); !isObj {
				u.Claims[claim] = v
			}
		}
	}
	return u, nil
}
