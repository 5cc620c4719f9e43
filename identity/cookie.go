package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/tollgate/tollgate/httpurl"
	"github.com/tollgate/tollgate/jsonpath"
	"go.uber.org/zap"
)

// CookieConfig describes the legacy session endpoint that tells who a
// session cookie belongs to (the cookie exchange of docs/CLIENTS.md §1.5).
type CookieConfig struct {
	// URL is called with GET and the session cookies. Required.
	URL string
	// Cookies names the cookies forwarded; no other cookie ever is.
	// Required.
	Cookies []string
	// UserIDPath is the dotted path of the user id in the JSON reply.
	// Required.
	UserIDPath string
	// Timeout bounds the call. Zero means 5s.
	Timeout time.Duration
}

// CookieSessions checks legacy session cookies.
type CookieSessions struct {
	cfg    CookieConfig
	opts   backendOptions
	logger *zap.Logger
}

// NewCookieSessions validates cfg.
func NewCookieSessions(cfg CookieConfig, logger *zap.Logger, opts ...BackendOption) (*CookieSessions, error) {
	var errs []error
	if _, err := httpurl.Parse(cfg.URL); err != nil {
		errs = append(errs, fmt.Errorf("cookie exchange: url: %w", err))
	}
	if len(cfg.Cookies) == 0 {
		errs = append(errs, errors.New("cookie exchange: no cookie names"))
	}
	if _, err := jsonpath.Parse(cfg.UserIDPath); cfg.UserIDPath == "" || err != nil {
		errs = append(errs, errors.New("cookie exchange: user_id_path is empty or malformed"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	return &CookieSessions{cfg: cfg, opts: newBackendOptions(cfg.Timeout, opts), logger: orNop(logger).Named("cookies")}, nil
}

// UserID asks the legacy system whose session the request's cookies are.
// Only the configured cookies are forwarded.
func (c *CookieSessions) UserID(ctx context.Context, cookies []*http.Cookie) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, c.cfg.URL, nil)
	n := 0
	for _, ck := range cookies {
		if slices.Contains(c.cfg.Cookies, ck.Name) {
			req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
			n++
		}
	}
	if n == 0 {
		return "", fmt.Errorf("%w: no session cookie", ErrSessionInvalid)
	}
	status, reply, err := call(ctx, c.opts, "cookie", req)
	switch {
	case err != nil:
		return "", err
	case status == http.StatusUnauthorized:
		return "", fmt.Errorf("%w: legacy answered 401", ErrSessionInvalid)
	case status == http.StatusForbidden:
		return "", fmt.Errorf("%w: legacy answered 403", ErrSessionForbidden)
	case status != http.StatusOK:
		return "", fmt.Errorf("%w: legacy session endpoint answered %d", ErrBackend, status)
	}
	id, ok := jsonpath.GetText(reply, c.cfg.UserIDPath)
	if !ok {
		return "", fmt.Errorf("%w: legacy reply has no %s", ErrBackend, c.cfg.UserIDPath)
	}
	return id, nil
}
