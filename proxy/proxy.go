package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/jsonpath"
	"github.com/tollgate/tollgate/verifier"
)

// Verifier checks a raw bearer token. *verifier.Verifier satisfies it.
type Verifier interface {
	Verify(ctx context.Context, raw string) (*verifier.Token, error)
}

// CacheReporter is a Verifier that can also say whether its cache
// answered (*verifier.Verifier is one); the proxy then records it on the
// spans of sampled requests, as tollgate.token_cache_hit.
type CacheReporter interface {
	VerifyCached(ctx context.Context, raw string) (tok *verifier.Token, hit bool, err error)
}

// Observer receives the proxy's decisions, for metrics. Its arguments are
// bounded: route and upstream names from the Config, fixed reasons.
type Observer interface {
	// AuthDecision reports one authentication outcome: "ok", "anonymous",
	// "missing", "invalid_request", "insufficient_scope" or a
	// verifier.Reason.
	AuthDecision(ctx context.Context, route, reason string)
	// Upstream reports one upstream round trip: its status code, or 0 and
	// kind "refused", "timeout", "reset" or "other" when it failed.
	Upstream(ctx context.Context, upstream string, code int, d time.Duration, kind string)
}

type nopObserver struct{}

func (nopObserver) AuthDecision(context.Context, string, string)                 {}
func (nopObserver) Upstream(context.Context, string, int, time.Duration, string) {}

// Option configures optional Proxy behaviour.
type Option func(*options)

type options struct {
	wrap     func(http.RoundTripper) http.RoundTripper
	observer Observer
	sessions SessionCheck
}

// SessionCheck says whether a verified token's session still stands. It
// runs on every authenticated request after the verified-token cache, so
// it must answer from memory.
type SessionCheck interface {
	// Check returns nil, or an error wrapping a verifier sentinel
	// (verifier.ErrRevoked, verifier.ErrRevocationUnknown) whose reason
	// the refusal carries. It must read tok's fields (SessionID), not its
	// Claims: a token served from the cache keeps no claims by default.
	Check(tok *verifier.Token) error
}

// WithSessionCheck refuses tokens whose session has ended.
func WithSessionCheck(c SessionCheck) Option { return func(o *options) { o.sessions = c } }

// WrapTransport wraps the upstream transport — http.DefaultTransport
// cloned with Config's timeouts and pool sizes — for instance to trace or
// count round trips. The wrapper receives the configured transport, so
// its pool sizes stay in force.
func WrapTransport(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) { o.wrap = wrap }
}

// WithObserver receives auth decisions and upstream outcomes.
func WithObserver(obs Observer) Option { return func(o *options) { o.observer = obs } }

// Proxy authenticates requests and forwards them to upstreams.
type Proxy struct {
	routes   []*route // longest prefix first
	stripped []string // canonical names of every mapped header and every StripHeaders entry
	headers  []mapping
	verifier Verifier
	cached   CacheReporter // verifier, when it is one; nil otherwise
	sessions SessionCheck  // nil: stateless
	logger   *zap.Logger
	observer Observer
	errs     *edge.Challenges
}

var _ http.Handler = (*Proxy)(nil)

type route struct {
	Route
	prefix    string // normalised: no trailing slash except "/"
	rp        *httputil.ReverseProxy
	forbidden *edge.Refusal
}

type mapping struct {
	header string // canonical
	path   jsonpath.Path
}

// New validates cfg, reporting every problem at once, and builds the
// proxy. v verifies tokens; it may be nil only if every route has auth
// none.
func New(cfg Config, v Verifier, logger *zap.Logger, opts ...Option) (*Proxy, error) {
	o := options{observer: nopObserver{}}
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg.setDefaults()
	targets, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if v == nil && slices.ContainsFunc(cfg.Routes, func(r Route) bool { return r.Auth != AuthNone }) {
		return nil, fmt.Errorf("%w: routes need authentication but no verifier is configured", ErrInvalidConfig)
	}
	var transport http.RoundTripper = newTransport(cfg)
	if o.wrap != nil {
		transport = o.wrap(transport)
	}
	p := &Proxy{
		verifier: v,
		sessions: o.sessions,
		logger:   logger.Named("proxy"),
		observer: o.observer,
		errs:     edge.NewChallenges(cfg.Realm),
	}
	p.cached, _ = v.(CacheReporter)
	for _, h := range cfg.StripHeaders {
		p.stripped = append(p.stripped, http.CanonicalHeaderKey(h))
	}
	for _, h := range cfg.Headers {
		name := http.CanonicalHeaderKey(h.Header)
		p.stripped = append(p.stripped, name)
		path, _ := jsonpath.Parse(h.Claim) // checked by validate
		p.headers = append(p.headers, mapping{header: name, path: path})
	}
	bufs := &bufferPool{}
	// ReverseProxy's own log lines carry no request context; what they say
	// (a body copy that failed) is logged by upstreamBody with it, so they
	// go to debug.
	errLog, err := zap.NewStdLogAt(p.logger.Named("httputil"), zap.DebugLevel)
	if err != nil {
		return nil, err
	}
	for _, r := range cfg.Routes {
		rt := &route{Route: r, prefix: normPrefix(r.Prefix), forbidden: p.errs.Forbidden(r.Scopes)}
		if rt.Name == "" {
			rt.Name = r.Prefix
		}
		if rt.Auth == "" {
			rt.Auth = AuthRequired
		}
		target := targets[r.Upstream]
		rt.rp = &httputil.ReverseProxy{
			Rewrite:        func(pr *httputil.ProxyRequest) { p.rewrite(rt, target, pr) },
			Transport:      transport,
			BufferPool:     bufs,
			ErrorLog:       errLog,
			ErrorHandler:   func(w http.ResponseWriter, r *http.Request, err error) { p.upstreamError(rt, w, r, err) },
			ModifyResponse: func(resp *http.Response) error { p.upstreamDone(rt, resp); return nil },
		}
		p.routes = append(p.routes, rt)
	}
	slices.SortStableFunc(p.routes, func(a, b *route) int { return len(b.prefix) - len(a.prefix) })
	return p, nil
}

// newTransport clones http.DefaultTransport with explicit timeouts and pool
// sizes. Proxy environment variables are ignored: upstreams are reached
// directly.
func newTransport(cfg Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = cfg.ResponseHeaderTimeout
	t.IdleConnTimeout = cfg.IdleConnTimeout
	t.MaxIdleConns = cfg.MaxIdleConns
	t.MaxIdleConnsPerHost = cfg.MaxIdleConnsPerHost
	return t
}

// match returns the route with the longest prefix matching path on a
// segment boundary.
func (p *Proxy) match(path string) *route {
	for _, rt := range p.routes {
		if rt.prefix == "/" || hasPrefix(path, rt.prefix, rt.CaseSensitive) &&
			(len(path) == len(rt.prefix) || path[len(rt.prefix)] == '/') {
			return rt
		}
	}
	return nil
}

// hasPrefix reports whether path starts with prefix, in any letter case
// unless exact: upstreams on case-insensitive stacks (IIS, some Java
// routers) serve /ADMIN as /admin, so a route must cover both.
func hasPrefix(path, prefix string, exact bool) bool {
	if len(path) < len(prefix) {
		return false
	}
	if exact {
		return path[:len(prefix)] == prefix
	}
	return strings.EqualFold(path[:len(prefix)], prefix)
}

// ServeHTTP routes, authenticates and forwards one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := edge.InfoFrom(r.Context())
	if info == nil {
		var ctx context.Context
		ctx, info = edge.WithInfo(r.Context())
		r = r.WithContext(ctx)
	}
	if !edge.CanonicalPath(r.URL) {
		errNonCanonicalPath.Write(w)
		return
	}
	rt := p.match(r.URL.Path)
	if rt == nil {
		errNoRoute.Write(w)
		return
	}
	info.Route, info.Upstream = rt.Name, rt.Upstream
	if rt.Auth != AuthNone && !p.authenticate(rt, w, r, info) {
		return
	}
	info.UpstreamStart = time.Now()
	rt.rp.ServeHTTP(w, r)
}

// authenticate verifies the request's token as rt requires, writing the
// refusal itself; it reports whether the request may go on.
func (p *Proxy) authenticate(rt *route, w http.ResponseWriter, r *http.Request, info *edge.Info) bool {
	ctx := r.Context()
	raw, status := edge.BearerCredential(r.Header)
	switch status {
	case edge.TokenMissing:
		if rt.Auth == AuthOptional {
			p.decide(ctx, rt, info, "anonymous")
			return true
		}
		p.decide(ctx, rt, info, "missing")
		p.errs.Missing.Write(w)
		return false
	case edge.TokenInvalid:
		p.decide(ctx, rt, info, "invalid_request")
		p.errs.InvalidRequest.Write(w)
		return false
	}
	tok, err := p.verify(ctx, info, raw)
	if err == nil && p.sessions != nil {
		err = p.sessions.Check(tok)
	}
	if err != nil {
		if ctx.Err() != nil {
			info.Status = edge.StatusClientClosed
			return false
		}
		if !edge.IsB64Token(raw) {
			p.decide(ctx, rt, info, "invalid_request")
			p.errs.InvalidRequest.Write(w)
			return false
		}
		reason := verifier.Reason(err)
		p.decide(ctx, rt, info, reason)
		if ce := p.logger.Check(zap.DebugLevel, "token refused"); ce != nil {
			ce.Write(zap.String("request_id", info.RequestID()), zap.String("route", rt.Name), zap.String("reason", reason), zap.Error(err))
		}
		p.errs.InvalidToken(reason, verifier.Description(err)).Write(w)
		return false
	}
	if len(rt.Issuers) > 0 && !slices.Contains(rt.Issuers, tok.Issuer()) {
		p.decide(ctx, rt, info, verifier.ErrWrongIssuer.Reason)
		p.errs.InvalidToken(verifier.ErrWrongIssuer.Reason, verifier.ErrWrongIssuer.Description).Write(w)
		return false
	}
	info.Token, info.User = tok, tok.Subject
	if info.Span.Recorded() { // attributes escape: none built otherwise
		info.Span.SetAttributes(attribute.String("tollgate.issuer", tok.Issuer()))
	}
	// From the token's grants, not its claims: a cached token keeps none.
	if !hasScopes(tok, rt.Scopes) || !hasAnyRole(tok, rt.Roles) {
		p.decide(ctx, rt, info, "insufficient_scope")
		rt.forbidden.Write(w)
		return false
	}
	// The identity headers come from the token's Memo value. A token the
	// verifier cached for another consumer's Memo has no claims to derive
	// them from: never forward such a request without its identity.
	if len(p.headers) > 0 {
		if tok.Memo(p, headerValues) == nil {
			info.Status = http.StatusInternalServerError
			p.logger.Error("identity headers cannot be derived: the verifier caches tokens for another proxy's header mapping (one verifier per proxy, or Config.CachedClaims for the mapped claims)",
				zap.String("request_id", info.RequestID()), zap.String("route", rt.Name))
			errNoIdentity.Write(w)
			return false
		}
	}
	p.decide(ctx, rt, info, "ok")
	return true
}

// verify verifies raw; on a request whose span is recorded it also notes
// whether the token cache answered a token that verified.
func (p *Proxy) verify(ctx context.Context, info *edge.Info, raw string) (*verifier.Token, error) {
	if p.cached == nil || !info.Span.Recorded() {
		return p.verifier.Verify(ctx, raw)
	}
	tok, hit, err := p.cached.VerifyCached(ctx, raw)
	if err == nil {
		info.Span.SetAttributes(attribute.Bool("tollgate.token_cache_hit", hit))
	}
	return tok, err
}

func (p *Proxy) decide(ctx context.Context, rt *route, info *edge.Info, reason string) {
	info.Auth = reason
	p.observer.AuthDecision(ctx, rt.Name, reason)
}

// rewrite builds the outbound request. It runs after ReverseProxy removed
// hop-by-hop headers (including any named in Connection), so the identity
// headers set here cannot be dropped by the client.
func (p *Proxy) rewrite(rt *route, target *url.URL, pr *httputil.ProxyRequest) {
	if rt.StripPrefix && rt.prefix != "/" {
		stripPrefix(pr.Out.URL, len(rt.prefix))
	}
	pr.SetURL(target)
	info := edge.InfoFrom(pr.In.Context())
	var identity []string
	if tok, ok := info.Token.(*verifier.Token); ok { // ServeHTTP made sure of an Info
		// The header values are derived once per token: a cached token
		// maps no claims. They are shared read-only between requests;
		// authenticate made sure there are some.
		identity = tok.Memo(p, headerValues)
	}
	// A client never chooses its identity, whatever the route. The
	// outbound header moves once into a map with room for everything added
	// below, leaving out identity headers: a map growing past its size
	// rehashes every entry, and this one would grow at every request.
	in := pr.Out.Header
	n := len(in) + len(forwardedHeaders) + 1 + len(identity) // + X-Request-Id
	if _, ok := in["User-Agent"]; !ok {
		n++ // ReverseProxy sets an empty one
	}
	out := make(http.Header, n)
	for k, v := range in {
		if !p.isStripped(k) {
			out[k] = v
		}
	}
	pr.Out.Header = out
	pr.SetXForwarded()
	if rt.DropAuthorization || rt.Auth == AuthNone && !rt.ForwardAuthorization {
		delete(out, "Authorization") // never forward a credential tollgate did not check
	}
	if info.RequestID() != "" {
		out[requestIDHeader] = info.RequestIDHeader()
	}
	// The upstream continues the request's trace, whatever the client
	// sent: its parent is the upstream call's span when spans are
	// recorded, the request's own span otherwise (no allocation).
	if info.Span.Recorded() {
		info.UpstreamSpan = info.Span.StartChild(pr.In.Context(), "upstream "+rt.Upstream, trace.SpanKindClient,
			attribute.String("tollgate.upstream", rt.Upstream), attribute.String("server.address", target.Host))
		info.UpstreamSpan.Inject(out)
	} else {
		info.Span.Inject(out)
	}
	for i, v := range identity {
		if v != "" {
			out[p.headers[i].header] = identity[i : i+1 : i+1] // cap 1: an append copies
		}
	}
}

// forwardedHeaders are the headers ProxyRequest.SetXForwarded sets.
var forwardedHeaders = [...]string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// headerValues maps a token's claims to the identity headers of the
// *Proxy p: the value of each of p.headers, "" for a claim that gives
// none. It is kept with a cached token, which holds the values' bytes in
// its own string allocation (verifier.Token.Memo). A token without claims
// (one the verifier cached for another Memo key) gives nil: no values can
// be derived from it, which is not the same as none applying.
func headerValues(p any, tok *verifier.Token) []string {
	if tok.Claims == nil {
		return nil
	}
	return p.(*Proxy).headerValues(tok)
}

func (p *Proxy) headerValues(tok *verifier.Token) []string {
	values := make([]string, len(p.headers))
	for i, m := range p.headers {
		values[i], _ = claimValue(tok.Claims, m.path)
	}
	return values
}

// isStripped reports whether a header name names an identity header or
// one of StripHeaders, also in a non-canonical spelling or with "_" for
// "-": some upstream stacks (CGI, PHP, nginx with underscores_in_headers)
// read X_User_Id as X-User-Id.
func (p *Proxy) isStripped(name string) bool {
	for _, id := range p.stripped {
		if sameHeaderName(name, id) {
			return true
		}
	}
	return false
}

// sameHeaderName compares header names case-insensitively, with '_' and
// '-' equal.
func sameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// stripPrefix removes the route's prefix, n bytes of the decoded path
// matched by hasPrefix, from u's path, keeping it absolute. The raw path is
// dropped and the rest re-encoded: CanonicalPath has refused every escape
// that could change a segment (%2F, %2E, %5C, %25, %3B), so what remains
// means the same either way.
func stripPrefix(u *url.URL, n int) {
	rest := u.Path[n:]
	if rest == "" || rest[0] != '/' {
		rest = "/" + rest
	}
	u.Path, u.RawPath = rest, ""
}

// upstreamDone sees the upstream's response headers. The round trip is
// reported once its body has been copied, so that a body cut off midway
// counts as what it is: an upstream reset, not a 200. A protocol upgrade's
// body is the connection itself and is reported at once.
func (p *Proxy) upstreamDone(rt *route, resp *http.Response) {
	ctx := resp.Request.Context()
	info := edge.InfoFrom(ctx)
	var d time.Duration
	if info != nil {
		d = time.Since(info.UpstreamStart)
		info.UpstreamSpan.End(resp.StatusCode, "")
	}
	if resp.StatusCode == http.StatusSwitchingProtocols || info == nil {
		p.observer.Upstream(ctx, rt.Upstream, resp.StatusCode, d, "")
		return
	}
	resp.Body = &upstreamBody{ReadCloser: resp.Body, p: p, rt: rt, info: info, ctx: ctx, code: resp.StatusCode, d: d}
}

// upstreamBody reports the round trip when the body ends: at EOF, at a
// read error (an upstream reset mid-body: counted as kind "reset", logged
// with the request ID, and the response marked aborted), or at Close.
type upstreamBody struct {
	io.ReadCloser
	p        *Proxy
	rt       *route
	info     *edge.Info
	ctx      context.Context
	code     int
	d        time.Duration
	reported bool
}

func (b *upstreamBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if err != nil && !b.reported {
		if err == io.EOF || errors.Is(err, context.Canceled) {
			b.report("")
		} else {
			b.info.Aborted = "upstream_reset"
			b.report("reset")
			b.p.logger.Warn("upstream response cut off", append(edge.LogFields(b.ctx),
				zap.String("route", b.rt.Name), zap.String("upstream", b.rt.Upstream), zap.Int("status", b.code), zap.Error(err))...)
		}
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	if !b.reported {
		b.report("")
	}
	return b.ReadCloser.Close()
}

func (b *upstreamBody) report(kind string) {
	b.reported = true
	code := b.code
	if kind != "" {
		code = 0
	}
	b.p.observer.Upstream(b.ctx, b.rt.Upstream, code, b.d, kind)
}

// upstreamError answers a failed round trip: 504 for a timeout, 502
// otherwise. A client that went away gets nothing.
func (p *Proxy) upstreamError(rt *route, w http.ResponseWriter, r *http.Request, err error) {
	info := edge.InfoFrom(r.Context())
	if errors.Is(r.Context().Err(), context.Canceled) {
		if info != nil {
			info.Status = edge.StatusClientClosed
			info.UpstreamSpan.End(0, "canceled")
		}
		if ce := p.logger.Check(zap.DebugLevel, "client went away"); ce != nil {
			ce.Write(zap.String("route", rt.Name), zap.String("upstream", rt.Upstream))
		}
		return
	}
	kind := errorKind(err)
	var d time.Duration
	if info != nil {
		d = time.Since(info.UpstreamStart)
		info.UpstreamSpan.End(0, kind)
	}
	p.observer.Upstream(r.Context(), rt.Upstream, 0, d, kind)
	p.logger.Warn("upstream request failed", append(edge.LogFields(r.Context()),
		zap.String("route", rt.Name), zap.String("upstream", rt.Upstream),
		zap.String("kind", kind), zap.Error(err))...)
	switch {
	case errors.Is(err, edge.ErrBodyTooSlow):
		errBodyTooSlow.Write(w)
	case kind == "timeout":
		errTimeout.Write(w)
	default:
		errBadGateway.Write(w)
	}
}

func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	default:
		return "other"
	}
}

// bufferPool shares the 32 KiB copy buffers between requests. It pools
// array pointers, so that Put does not allocate a slice header.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[copyBufferSize]byte); ok {
		return v[:]
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) >= copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
	}
}
