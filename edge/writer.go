package edge

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

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
		return nil, nil, errors.Join(err, errors.New("edge: hijack"))
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, rw, nil
}
