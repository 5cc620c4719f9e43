// Package httpurl is the one check of the URLs tollgate is configured
// with — upstreams, its own public URL, JWKS endpoints, identity backends
// — so that every setting accepts and refuses the same shapes.
package httpurl

import (
	"errors"
	"fmt"
	"net/url"
)

// ErrInvalid is wrapped by every error of Parse.
var ErrInvalid = errors.New("not an http(s) URL")

// Parse accepts an absolute http or https URL with a host and no fragment
// and no user:password (which would end up in logs and errors). Callers
// that cannot use a query refuse u.RawQuery themselves. The error quotes
// s without any user information.
func Parse(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot be parsed", ErrInvalid)
	}
	shown := s
	if u.User != nil {
		shown = u.Redacted()
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: %q has no http or https scheme", ErrInvalid, shown)
	case u.Host == "":
		return nil, fmt.Errorf("%w: %q has no host", ErrInvalid, shown)
	case u.User != nil:
		return nil, fmt.Errorf("%w: %q holds credentials; configure them separately", ErrInvalid, shown)
	case u.Fragment != "":
		return nil, fmt.Errorf("%w: %q has a fragment", ErrInvalid, shown)
	}
	return u, nil
}
