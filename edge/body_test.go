package edge_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/edge"
)

// TestSlowBodies: a body that stalls, or trickles in below the minimum
// rate, is cut off with ErrBodyTooSlow; a body at a decent rate of any
// length is read whole.
func TestSlowBodies(t *testing.T) {
	results := make(chan error, 1)
	srv := httptest.NewServer(edge.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err == nil && n != r.ContentLength {
			err = fmt.Errorf("read %d of %d bytes", n, r.ContentLength)
		}
		results <- err
	}), zap.NewNop(), nil, edge.WithBodyTimeouts(300*time.Millisecond, 4096)))
	t.Cleanup(srv.Close)

	send := func(t *testing.T, length int, chunks [][]byte, every time.Duration) error {
		t.Helper()
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", length)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for _, chunk := range chunks {
			select {
			case err := <-results: // cut off before the client finished
				return err
			case <-tick.C:
			}
			if _, err := c.Write(chunk); err != nil {
				break
			}
		}
		return <-results
	}
	t.Run("stalls", func(t *testing.T) {
		if err := send(t, 10, nil, time.Hour); !errors.Is(err, edge.ErrBodyTooSlow) {
			t.Errorf("a stalled body: %v", err)
		}
	})
	t.Run("trickles", func(t *testing.T) {
		var chunks [][]byte
		for range 200 { // a byte every 20 ms: never idle, far below 4 KiB/s
			chunks = append(chunks, []byte("x"))
		}
		if err := send(t, 200, chunks, 20*time.Millisecond); !errors.Is(err, edge.ErrBodyTooSlow) {
			t.Errorf("a trickling body: %v", err)
		}
	})
	t.Run("steady upload", func(t *testing.T) {
		var chunks [][]byte
		for range 20 { // 32 KiB every 20 ms: ~1.6 MB/s for 400 ms, longer than the idle timeout
			chunks = append(chunks, bytes.Repeat([]byte("y"), 32<<10))
		}
		if err := send(t, 20*32<<10, chunks, 20*time.Millisecond); err != nil {
			t.Errorf("a steady upload was cut: %v", err)
		}
	})
}
