package edge

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// ErrBodyTooSlow is returned by a request body read when the client sends
// it too slowly: nothing for the idle timeout, or less than the minimum
// rate on average once the idle timeout has passed.
var ErrBodyTooSlow = errors.New("edge: request body too slow")

// deadliner is the part of a net/http ResponseWriter (HTTP/1 and HTTP/2)
// that sets the connection's read deadline.
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// bodyGuard refuses request bodies that trickle in: each read must bring
// something within idle, and after the first idle period the body must
// have come at minRate bytes/s on average. A long upload at a decent rate
// is never cut; a slowloris body (a byte every few seconds) is, so that it
// cannot hold a connection and a goroutine for hours.
type bodyGuard struct {
	rc      io.ReadCloser
	conn    deadliner // nil: no deadline can be set (the rate check still applies)
	idle    time.Duration
	minRate float64 // bytes per second; 0: no rate check
	start   time.Time
	n       int64
}

func (b *bodyGuard) Read(p []byte) (int, error) {
	now := time.Now()
	if b.start.IsZero() {
		b.start = now
	}
	if b.conn != nil {
		b.conn.SetReadDeadline(now.Add(b.idle))
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, ErrBodyTooSlow
	}
	if err == nil && b.minRate > 0 {
		if el := time.Since(b.start); el > b.idle && float64(b.n) < b.minRate*el.Seconds() {
			return n, ErrBodyTooSlow
		}
	}
	return n, err
}

func (b *bodyGuard) Close() error { return b.rc.Close() }

// guardBody wraps r's body when the envelope limits slow bodies.
func (e *Edge) guardBody(w http.ResponseWriter, r *http.Request, g *bodyGuard) {
	if e.bodyIdle <= 0 || r.Body == nil || r.Body == http.NoBody {
		return
	}
	conn, _ := w.(deadliner)
	*g = bodyGuard{rc: r.Body, conn: conn, idle: e.bodyIdle, minRate: float64(e.bodyMinRate)}
	r.Body = g
}
