package main

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
)

// connTracker is a listener that keeps every connection it accepted until
// the connection is closed. http.Server.Shutdown waits for the requests in
// flight but forgets hijacked connections — the WebSockets and other
// upgrades the proxy hands over to the upstream — and http.Server has no
// hook that tells when one closes; the tracker gives shutdown both: the
// hijacked connections still open, and a signal when one closes.
type connTracker struct {
	net.Listener
	mu    sync.Mutex
	conns map[*trackedConn]struct{} // guarded by mu
	// closed receives, without blocking, when a connection closes: a
	// waiter that missed the send finds it buffered.
	closed chan struct{}
}

// newConnTracker tracks the connections accepted on ln.
func newConnTracker(ln net.Listener) *connTracker {
	return &connTracker{Listener: ln, conns: map[*trackedConn]struct{}{}, closed: make(chan struct{}, 1)}
}

// Accept implements net.Listener.
func (l *connTracker) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

// open returns the number of connections not closed yet. A nil tracker
// (never listened) has none.
func (l *connTracker) open() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// drain waits until every connection is closed or ctx is done, then closes
// those still open and returns how many it closed. Once the server has
// shut down only hijacked connections remain: the server closes every
// other one before it forgets it.
func (l *connTracker) drain(ctx context.Context) int {
	for l.open() > 0 {
		select {
		case <-l.closed:
		case <-ctx.Done():
			l.mu.Lock()
			rest := make([]*trackedConn, 0, len(l.conns))
			for c := range l.conns {
				rest = append(rest, c)
			}
			l.mu.Unlock()
			for _, c := range rest {
				c.Close()
			}
			return len(rest)
		}
	}
	return 0
}

// forget removes c once it is closed.
func (l *connTracker) forget(c *trackedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	select {
	case l.closed <- struct{}{}:
	default:
	}
}

// trackedConn is a connection of a connTracker. CloseWrite and ReadFrom
// pass through to the TCP connection: the server half-closes before it
// closes, and copies bodies with ReadFrom, when the connection can.
type trackedConn struct {
	net.Conn
	l    *connTracker
	once sync.Once
}

// Close implements net.Conn.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.forget(c) })
	return err
}

// CloseWrite shuts down the writing side of the connection.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// ReadFrom implements io.ReaderFrom.
func (c *trackedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}
