package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// request builds the i-th request of a scenario (i counts the requests of
// all its connections).
type request func(i int) (*http.Request, error)

// sender is what one load connection sends: next builds its requests, and
// answer, when not nil, reads the body of each successful answer, which
// the connection's next request may depend on (a refresh chain presents
// the refresh token the previous answer returned). An error from answer
// counts the request as failed.
type sender struct {
	next   request
	answer func(body []byte) error
}

// load gives connection c (0 ≤ c < conns) of a scenario its sender, once,
// before the clock starts. A sender is used by its connection only, so it
// may keep state without locks.
type load func(c int) sender

// shared is the load of a scenario whose requests depend on nothing but
// their number: every connection sends from next.
func shared(next request) load { return func(int) sender { return sender{next: next} } }

// errExhausted ends a connection's requests: the scenario has sent all it
// had to send.
var errExhausted = errors.New("scenario exhausted")

// once makes next send its first n requests only (numbers 1 to n): a
// scenario of distinct tokens each sent once ends when they run out,
// rather than cycling back to tokens already cached.
func once(next request, n int) request {
	return func(i int) (*http.Request, error) {
		if i > n {
			return nil, errExhausted
		}
		return next(i)
	}
}

type result struct {
	id, name          string
	requests, errors  int
	rps               float64
	p50, p99, p999    time.Duration
	cpuPer10k, rssMiB float64
	gc                gcFigures
	// sidecarCPUPer10k is the CPU of a process the one under test relies
	// on (redis-server), per 10k requests; 0 when there is none.
	sidecarCPUPer10k float64
}

// sample is what one stretch of load on a process measured. A scenario
// measured in slices (-interleave) adds its slices' samples up.
type sample struct {
	lat          []time.Duration // of the successful requests
	failed       int
	elapsed      time.Duration
	cpu, sideCPU float64       // seconds of the process's CPU, and of its sidecar's
	stats        *gatewayStats // the change in the process's statistics; nil: not read
}

// add adds o's figures to s's.
func (s *sample) add(o sample) {
	s.lat = append(s.lat, o.lat...)
	s.failed += o.failed
	s.elapsed += o.elapsed
	s.cpu += o.cpu
	s.sideCPU += o.sideCPU
	if o.stats != nil {
		if s.stats == nil {
			s.stats = new(gatewayStats)
		}
		*s.stats = s.stats.plus(*o.stats)
	}
}

// result gives the figures of a scenario from its samples, added up, and
// the process's RSS after them.
func (s sample) result(rssMiB float64) (result, error) {
	r := result{requests: len(s.lat), errors: s.failed, rssMiB: rssMiB}
	if r.requests == 0 {
		return r, fmt.Errorf("no successful request (%d failed)", r.errors)
	}
	all := slices.Sorted(slices.Values(s.lat))
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(float64(len(all))*p))] }
	r.rps = float64(r.requests) / s.elapsed.Seconds()
	r.p50, r.p99, r.p999 = pct(0.50), pct(0.99), pct(0.999)
	r.cpuPer10k = s.cpu / float64(r.requests) * 10000
	r.sidecarCPUPer10k = s.sideCPU / float64(r.requests) * 10000
	if s.stats != nil {
		r.gc = figures(*s.stats)
	}
	return r, nil
}

// drive sends the requests of l on conns connections for d, numbering
// them on from seq, and measures the process under test, and the CPU of
// sidecar if not nil.
func drive(ctx context.Context, client *http.Client, proc, sidecar *child, l load, seq *atomic.Int64, conns int, d time.Duration) (sample, error) {
	var sm sample
	senders := make([]sender, conns)
	for c := range senders {
		senders[c] = l(c)
	}
	cpu0, err := proc.cpu()
	if err != nil {
		return sm, err
	}
	var side0 float64
	if sidecar != nil {
		if side0, err = sidecar.cpu(); err != nil {
			return sm, err
		}
	}
	deadline := time.Now().Add(d)
	var failed atomic.Int64
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for c, s := range senders {
		wg.Go(func() {
			buf := make([]time.Duration, 0, 1<<16)
			var body bytes.Buffer
			for time.Now().Before(deadline) && ctx.Err() == nil && len(buf) < 1<<20 {
				req, err := s.next(int(seq.Add(1)))
				if errors.Is(err, errExhausted) {
					break
				}
				if err != nil {
					failed.Add(1)
					break
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				if s.answer == nil || resp.StatusCode >= 400 {
					io.Copy(io.Discard, resp.Body)
				} else {
					body.Reset()
					_, err = body.ReadFrom(resp.Body)
				}
				resp.Body.Close()
				if err != nil || resp.StatusCode >= 400 {
					failed.Add(1)
					continue
				}
				if s.answer != nil {
					if err := s.answer(body.Bytes()); err != nil {
						failed.Add(1)
						continue
					}
				}
				buf = append(buf, time.Since(t0))
			}
			lat[c] = buf
		})
	}
	wg.Wait()
	sm.elapsed = time.Since(start)
	cpu1, err := proc.cpu()
	if err != nil {
		return sm, err
	}
	sm.cpu = cpu1 - cpu0
	if sidecar != nil {
		side1, err := sidecar.cpu()
		if err != nil {
			return sm, err
		}
		sm.sideCPU = side1 - side0
	}
	sm.lat = slices.Concat(lat...)
	sm.failed = int(failed.Load())
	return sm, nil
}

// baseline returns the (bp) a scenario's ratios are to: the one measured
// just before it if there is one (bp@id), the first otherwise. A (bh)
// measured again before id (bh@id) is compared with bp@id too.
func baseline(results map[string]result) func(id string) result {
	return func(id string) result { return nearest(results, "bp", strings.TrimPrefix(id, "bh@")) }
}

// nearest returns the baseline scenario base as measured again just before
// the scenario id (base@id) if it was, the first base otherwise.
func nearest(results map[string]result, base, id string) result {
	if r, ok := results[base+"@"+id]; ok {
		return r
	}
	return results[base]
}

// printTable prints the scenarios' figures with ratios against the bare
// proxy (b) and the bare proxy with a buffer pool (bp), and, for
// tollgate's scenarios, the token cache's hit rate and the garbage
// collector's cycles and share of the gateway's CPU.
func printTable(w io.Writer, results []result, b result, base func(id string) result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trequests/s\t×(b)\t×(bp)\tp50\tp99\t×(bp)\tp99.9\tCPU µs/req\t−(bp)\tRSS MiB\tcache hits\tGC cycles\tGC CPU\terrors\t")
	for _, r := range results {
		hits, cycles, share := "", "", ""
		if r.gc.measured {
			hits, cycles, share = "–", fmt.Sprintf("%.0f", r.gc.cycles), fmt.Sprintf("%.1f%%", 100*r.gc.cpuShare)
			if r.gc.hitRate >= 0 {
				hits = fmt.Sprintf("%.1f%%", 100*r.gc.hitRate)
			}
		}
		bp := base(r.id)
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.2f\t%s\t%s\t%.2f\t%s\t%.1f\t%+.1f\t%.1f\t%s\t%s\t%s\t%d\t\n", r.name, r.rps, r.rps/b.rps, r.rps/bp.rps,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), float64(r.p99)/float64(bp.p99), r.p999.Round(time.Microsecond),
			r.cpuPer10k*100, (r.cpuPer10k-bp.cpuPer10k)*100, r.rssMiB, hits, cycles, share, r.errors)
	}
	tw.Flush()
	fmt.Fprintln(w, "×(bp) and −(bp) of a fleet, (c-full) or (d) row, and of a \"(bh) again\" row, are to the \"(bp) again\" row before it; of the other rows, to the first (bp).")
}

func newLoadClient(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	// No limit across hosts: the processes a group's slices take turns on
	// keep their connections open between turns, so that no slice starts
	// by dialling.
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = conns * 2
	t.MaxConnsPerHost = conns
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// idleMemory opens n keep-alive connections to the gateway, sends one
// request on each and leaves them idle, and returns the RSS growth per
// connection.
func idleMemory(ctx context.Context, gw *child, n int) (float64, int, error) {
	u, _ := url.Parse(gw.url)
	before := gw.rss()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			if i == 0 {
				return 0, 0, err
			}
			n = i
			break
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /api/x HTTP/1.1\r\nHost: bench\r\n\r\n")
	}
	for _, c := range conns { // read each 401 so the server's side is idle
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	if ctx.Err() != nil {
		return 0, 0, ctx.Err()
	}
	return (gw.rss() - before) / float64(n), n, nil
}
