package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/verifier"
)

const requestIDHeader = "X-Request-Id"

// statusClientClosed is logged when the client went away before an answer
// (nginx's 499); nothing is sent.
const statusClientClosed = 499

// requestInfo travels in the request context from Edge through the Proxy
// and back, so the access log can name the route, upstream and user.
type requestInfo struct {
	requestID     [1]string // [0] is the ID; the array is the header value
	route         string
	upstream      string
	user          string
	auth          string
	status        int // set when the handler wrote nothing on purpose
	token         *verifier.Token
	upstreamStart time.Time
}

type infoKey struct{}

// infoCtx carries a requestInfo in the same allocation as the context
// node that holds it.
type infoCtx struct {
	context.Context
	info requestInfo
}

func (c *infoCtx) Value(key any) any {
	if key == (infoKey{}) {
		return &c.info
	}
	return c.Context.Value(key)
}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(infoKey{}).(*requestInfo)
	return info
}

// RequestID returns the request ID Edge assigned to the request carrying
// ctx, or "".
func RequestID(ctx context.Context) string {
	if info := infoFrom(ctx); info != nil {
		return info.requestID[0]
	}
	return ""
}

// RequestObserver receives every request Edge answers, for metrics.
type RequestObserver interface {
	RequestStarted()
	// RequestDone reports the route name ("" when no route matched), the
	// method, the status and the time taken.
	RequestDone(route, method string, code int, d time.Duration)
}

type nopRequestObserver struct{}

func (nopRequestObserver) RequestStarted()                                {}
func (nopRequestObserver) RequestDone(string, string, int, time.Duration) {}

// SetRoute names the route of the request carrying ctx, for handlers other
// than the Proxy (such as the token endpoints) that Edge wraps.
func SetRoute(ctx context.Context, route string) {
	if info := infoFrom(ctx); info != nil {
		info.route = route
	}
}

// edge is the middleware returned by Edge.
type edge struct {
	next   http.Handler
	logger *zap.Logger
	obs    RequestObserver
	prefix string        // random per process, so IDs are unique across replicas
	seq    atomic.Uint64 // request counter
}

// Edge wraps next with request IDs, panic recovery and one structured
// access-log line per request. An inbound X-Request-Id is kept if it is
// sane (1–128 of [A-Za-z0-9._:-]); otherwise one is generated. The ID is
// returned to the client and forwarded upstream. obs may be nil.
func Edge(next http.Handler, logger *zap.Logger, obs RequestObserver) http.Handler {
	if logger == nil {
		logger = zap.NewNop()
	}
	if obs == nil {
		obs = nopRequestObserver{}
	}
	b := make([]byte, 6)
	rand.Read(b)
	return &edge{next: next, logger: logger.Named("access"), obs: obs, prefix: hex.EncodeToString(b) + "-"}
}

// exchange is everything Edge keeps per request, in one allocation: the
// context node carrying the requestInfo and the status-recording writer.
type exchange struct {
	ctx infoCtx
	sw  statusWriter
}

func (e *edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	x := &exchange{ctx: infoCtx{Context: r.Context()}, sw: statusWriter{ResponseWriter: w}}
	info, sw := &x.ctx.info, &x.sw
	if ids := r.Header[requestIDHeader]; len(ids) > 0 && saneRequestID(ids[0]) {
		info.requestID[0] = ids[0]
	} else {
		info.requestID[0] = e.newID()
	}
	// The response and the outbound request share this one-element value;
	// its capacity of one makes any append copy.
	w.Header()[requestIDHeader] = info.requestID[:]
	r = r.WithContext(&x.ctx)
	e.obs.RequestStarted()
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { // the connection is already dead; let net/http close it quietly
				e.log(r, sw, info, start)
				panic(v)
			}
			e.logger.Error("panic serving request", zap.String("request_id", info.requestID[0]), zap.Any("panic", v), zap.StackSkip("stack", 1))
			if sw.status == 0 {
				writeInternal(sw)
			}
		}
		e.log(r, sw, info, start)
	}()
	e.next.ServeHTTP(sw, r)
}

// newID returns a request ID unique across replicas: the process's random
// prefix and a counter.
func (e *edge) newID() string {
	var buf [32]byte
	b := append(buf[:0], e.prefix...)
	return string(strconv.AppendUint(b, e.seq.Add(1), 36))
}

func writeInternal(w http.ResponseWriter) {
	(&responses{}).write(w, errInternal)
}

func (e *edge) log(r *http.Request, sw *statusWriter, info *requestInfo, start time.Time) {
	status := sw.status
	if status == 0 {
		status = info.status
	}
	if status == 0 {
		status = http.StatusOK // nothing written: net/http sends 200
	}
	e.obs.RequestDone(info.route, r.Method, status, time.Since(start))
	ce := e.logger.Check(zap.InfoLevel, "request")
	if ce == nil {
		return
	}
	ce.Write(
		zap.String("request_id", info.requestID[0]),
		zap.String("method", r.Method),
		zap.String("path", r.URL.Path), // never the query string: it may carry secrets
		zap.Int("status", status),
		zap.Int64("bytes", sw.bytes),
		zap.Duration("duration", time.Since(start)),
		zap.String("remote", r.RemoteAddr),
		zap.String("route", info.route),
		zap.String("upstream", info.upstream),
		zap.String("user", info.user),
		zap.String("auth", info.auth),
	)
}

func saneRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// statusWriter records the status and size of a response. It unwraps for
// http.ResponseController (flushing) and hijacks for WebSocket upgrades.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes through, for streaming responses.
func (w *statusWriter) Flush() {
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack takes over the connection for a protocol upgrade; the response
// is then logged as 101.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, errors.Join(err, errors.New("proxy: hijack"))
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, rw, nil
}
