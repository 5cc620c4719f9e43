package edge

import (
	"fmt"
	"net/http"
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
	if d.candidate(r.URL.Path) && CanonicalPath(r.URL.Path) {
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

// CanonicalPath reports whether path is absolute and free of dot segments
// and empty segments. Such paths could match one route here and reach
// another path after normalisation (/public/../admin), so they are never
// routed.
func CanonicalPath(path string) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	for seg := range strings.SplitSeq(path[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return !strings.Contains(path, "//")
}
