//go:build soak

package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testkit"
)

// The soak test is not in the default run: go test -tags soak -run TestSoak
// ./cmd/tollgate -soak.duration 2m
var soakDuration = flag.Duration("soak.duration", time.Minute, "how long the soak test drives traffic")

// sample is what the process holds at one moment.
type sample struct {
	goroutines, fds int
	heapMiB         float64
}

func take() sample {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fds, _ := os.ReadDir("/proc/self/fd")
	return sample{goroutines: runtime.NumGoroutine(), fds: len(fds), heapMiB: float64(ms.HeapInuse) / (1 << 20)}
}

// TestSoak drives minutes of mixed traffic with faults injected — good and
// faulty upstream calls, hung upstreams, refused connections, logins right
// and wrong, refreshes, userinfo, tokens with made-up kids, clients that
// leave mid-stream — sampling goroutines, open files and heap, and checks
// that after the load everything returns to its baseline.
func TestSoak(t *testing.T) {
	faulty, chunks := testkit.Faulty(t)
	go func() { // the stream endpoint gets a chunk whenever it asks
		for range time.Tick(time.Millisecond) {
			select {
			case chunks <- struct{}{}:
			default:
			}
		}
	}()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := ln.Addr().String()
	ln.Close()
	g := startTokenGatewayEnv(t, sourceDocClients+fmt.Sprintf(`
upstreams:
  - {name: faulty, url: %q}
  - {name: down, url: "http://%s"}
routes:
  - {name: faulty, prefix: /f, upstream: faulty, strip_prefix: true}
  - {name: down, prefix: /down, upstream: down}
`, faulty.URL, down), true, []string{"TOLLGATE_UPSTREAM_TIMEOUT=200ms", "TOLLGATE_LOGIN_ATTEMPTS_PER_USER=0", "TOLLGATE_LOGIN_ATTEMPTS_PER_IP=0"})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Second}
	base := take()
	_, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=qwerty123")
	out := jsonObject(t, b)
	access, refresh := out["access_token"].(string), out["refresh_token"].(string)
	forged := testkit.NewKey(t, "ES256", "made-up").Access(t, testkit.Claims(g.url, "tollgate", time.Now(), nil))
	type call struct {
		method, path, body, auth string
	}
	calls := []call{
		{"GET", "/f/ok", "", access}, {"GET", "/f/ok", "", access}, {"GET", "/f/ok", "", access},
		{"GET", "/f/reset-body", "", access}, {"GET", "/f/reset-headers", "", access}, {"GET", "/f/hang", "", access},
		{"GET", "/down/x", "", access}, {"GET", "/f/status/500", "", access}, {"GET", "/f/ok", "", forged},
		{"GET", "/f/ok", "", "garbage"}, {"GET", "/oauth/userinfo", "", access},
		{"POST", "/oauth/token", "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=wrong", ""},
		{"POST", "/oauth/token", "grant_type=refresh_token&client_id=anonymous&refresh_token=" + refresh, ""},
		{"GET", "/f/stream", "", access}, // read a little, then leave
	}
	var sent, failed atomic.Int64
	var peak sample
	var peakMu sync.Mutex
	stop := time.Now().Add(*soakDuration)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; time.Now().Before(stop); i++ {
				c := calls[i%len(calls)]
				req, _ := http.NewRequest(c.method, g.url+c.path, strings.NewReader(c.body))
				if c.auth != "" {
					req.Header.Set("Authorization", "Bearer "+c.auth)
				}
				if c.body != "" {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				if c.path == "/f/stream" {
					io.CopyN(io.Discard, resp.Body, 4096)
				} else {
					io.Copy(io.Discard, resp.Body)
				}
				resp.Body.Close()
			}
		})
	}
	for time.Now().Before(stop) {
		time.Sleep(2 * time.Second) // sampling cadence, not synchronisation
		g.logs.TakeAll()            // the test's log recorder, not the gateway, would hold them
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fds, _ := os.ReadDir("/proc/self/fd")
		peakMu.Lock()
		peak.goroutines = max(peak.goroutines, runtime.NumGoroutine())
		peak.fds = max(peak.fds, len(fds))
		peak.heapMiB = max(peak.heapMiB, float64(ms.HeapInuse)/(1<<20))
		peakMu.Unlock()
	}
	wg.Wait()
	client.CloseIdleConnections()
	g.logs.TakeAll()
	// Idle keep-alive connections close within the gateway's idle timeout;
	// give the process a bounded while to let go of what the load held.
	var after sample
	for i := range 60 {
		g.logs.TakeAll()
		after = take()
		if after.goroutines <= base.goroutines+10 && after.fds <= base.fds+10 {
			break
		}
		if i == 59 {
			break
		}
		time.Sleep(time.Second)
	}
	t.Logf("%d requests (%d transport errors, expected from resets) in %v with 16 clients", sent.Load(), failed.Load(), *soakDuration)
	t.Logf("goroutines: baseline %d, peak %d, after %d", base.goroutines, peak.goroutines, after.goroutines)
	t.Logf("open files: baseline %d, peak %d, after %d", base.fds, peak.fds, after.fds)
	t.Logf("heap in use: baseline %.1f MiB, peak %.1f MiB, after %.1f MiB", base.heapMiB, peak.heapMiB, after.heapMiB)
	if after.goroutines > base.goroutines+10 {
		t.Errorf("goroutines did not return: %d, baseline %d", after.goroutines, base.goroutines)
	}
	if after.fds > base.fds+10 {
		t.Errorf("open files did not return: %d, baseline %d", after.fds, base.fds)
	}
	if after.heapMiB > base.heapMiB*1.5+16 {
		t.Errorf("heap did not return: %.1f MiB, baseline %.1f MiB", after.heapMiB, base.heapMiB)
	}
	if resp, b := send(t, http.MethodGet, g.url+"/f/ok", "", "Authorization", "Bearer "+access); resp.StatusCode != 200 {
		t.Errorf("after the soak: %d %s", resp.StatusCode, b)
	}
}
