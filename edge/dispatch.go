package edge

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Endpoint is an in-process handler for one http.ServeMux pattern, such
// as "POST /oauth/token" or "GET /auth/realms/{realm}/…".
type Endpoint struct {
	Pattern string
	Handler http.Handler
}

// Dispatch sends the requests of a fixed set of in-process endpoints (the
// token endpoints) to their handlers and every other request to a fallback
// (the proxy). Most requests are for the fallback, so they are told apart
// by the endpoints' literal path prefixes — a few string comparisons, no
// allocation — before any pattern matching.
type Dispatch struct {
	mux      *http.ServeMux
	prefixes []string // literal start of every endpoint's path
	fallback http.Handler
}

var _ http.Handler = (*Dispatch)(nil)

// NewDispatch routes endpoints in front of fallback. A request that
// matches an endpoint's path but not its method (GET /oauth/token) goes to
// the fallback, as does any path that is not canonical (the fallback
// refuses it rather than the mux redirecting it).
func NewDispatch(endpoints []Endpoint, fallback http.Handler) (d *Dispatch, err error) {
	d = &Dispatch{mux: http.NewServeMux(), fallback: fallback}
	defer func() {
		if v := recover(); v != nil { // ServeMux panics on a bad or duplicate pattern
			d, err = nil, fmt.Errorf("edge: dispatch: %v", v)
		}
	}()
	for _, e := range endpoints {
		d.mux.Handle(e.Pattern, e.Handler)
		path := e.Pattern
		if i := strings.IndexByte(path, ' '); i >= 0 {
			path = path[i+1:]
		}
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("edge: dispatch: pattern %q: want [METHOD ]/path", e.Pattern)
		}
		if i := strings.IndexByte(path, '{'); i >= 0 {
			path = path[:i]
		}
		d.prefixes = append(d.prefixes, path)
	}
	d.mux.Handle("/", fallback)
	return d, nil
}

// ServeHTTP implements http.Handler.
func (d *Dispatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d.candidate(r.URL.Path) && CanonicalPath(r.URL) {
		d.mux.ServeHTTP(w, r)
		return
	}
	d.fallback.ServeHTTP(w, r)
}

// candidate reports whether path may belong to an endpoint.
func (d *Dispatch) candidate(path string) bool {
	for _, p := range d.prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// CanonicalPath reports whether u's path is one every upstream reads the
// same way tollgate routes it. Refused (the caller answers 400):
//   - dot segments and empty segments (/public/../admin, //admin), which
//     an upstream normalising the path would send elsewhere;
//   - ';' (path parameters: Tomcat and Spring read /admin;x as /admin),
//     '\' (IIS and some frameworks read it as '/'), and their encodings;
//   - an encoded '/' or '.' (%2F, %2E), and '%' itself once decoded, i.e.
//     double encoding (%252e): upstreams that decode again see other
//     segments;
//   - NUL and control characters, raw or encoded, and segments with
//     leading or trailing spaces, which some stacks trim.
//
// It runs on every request: one pass over the decoded path, and one over
// the raw path only when the request used non-default escapes.
func CanonicalPath(u *url.URL) bool {
	path := u.Path
	if path == "" || path[0] != '/' {
		return false
	}
	segStart := 1
	for i := 1; i <= len(path); i++ {
		if i < len(path) {
			switch c := path[i]; {
			case c < 0x20, c == 0x7f, c == ';', c == '\\', c == '%':
				return false
			case c != '/':
				continue
			}
		}
		seg := path[segStart:i]
		switch {
		case seg == "." || seg == "..":
			return false
		case seg == "" && i < len(path): // "//"; a trailing slash is fine
			return false
		case seg != "" && (seg[0] == ' ' || seg[len(seg)-1] == ' '):
			return false
		}
		segStart = i + 1
	}
	if u.RawPath != "" {
		raw := u.RawPath
		for i := 0; i+2 < len(raw); i++ {
			if raw[i] == '%' && raw[i+1] == '2' && (raw[i+2]|0x20 == 'f' || raw[i+2]|0x20 == 'e') {
				return false
			}
		}
	}
	return true
}
