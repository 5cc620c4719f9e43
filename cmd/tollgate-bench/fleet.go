package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// warmTimeout bounds a fleet's warm-up pass.
const warmTimeout = 5 * time.Minute

// statsClient reads a gateway's /metrics and pprof: a gateway that does not
// answer fails the run instead of hanging it.
var statsClient = &http.Client{Timeout: 30 * time.Second}

// gatewayStats are the figures of a gateway's /metrics a scenario is
// judged by: its garbage collector's cycles and CPU, its token cache's
// counters and its heap.
type gatewayStats struct {
	gcCycles, gcCPU       float64 // go_gc_duration_seconds_count, go_cpu_classes_gc_total_cpu_seconds_total
	cpuTotal, cpuIdle     float64 // go_cpu_classes_total_cpu_seconds_total, go_cpu_classes_idle_cpu_seconds_total
	hits, misses, entries float64 // tollgate_token_cache_*
	heapAlloc             float64 // go_memstats_heap_alloc_bytes
	offHeap               float64 // tollgate_token_cache_offheap_bytes
}

// scrapeStats reads a process's statistics from its admin listener: a
// gateway's all of them, a baseline's (serveAnnounced) its collector's.
func scrapeStats(ctx context.Context, admin string) (gatewayStats, error) {
	var st gatewayStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/metrics", nil)
	if err != nil {
		return st, err
	}
	resp, err := statsClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s/metrics: %s", admin, resp.Status)
	}
	fields := map[string]*float64{
		"go_gc_duration_seconds_count":              &st.gcCycles,
		"go_cpu_classes_gc_total_cpu_seconds_total": &st.gcCPU,
		"go_cpu_classes_total_cpu_seconds_total":    &st.cpuTotal,
		"go_cpu_classes_idle_cpu_seconds_total":     &st.cpuIdle,
		"tollgate_token_cache_hits_total":           &st.hits,
		"tollgate_token_cache_misses_total":         &st.misses,
		"tollgate_token_cache_entries":              &st.entries,
		"go_memstats_heap_alloc_bytes":              &st.heapAlloc,
		"tollgate_token_cache_offheap_bytes":        &st.offHeap,
	}
	// The collector's four every process has; the rest only a gateway.
	const collector = 4
	found, gateway := 0, 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if p := fields[name]; ok && p != nil {
			if *p, err = strconv.ParseFloat(value, 64); err != nil {
				return st, fmt.Errorf("%s: %w", name, err)
			}
			found++
			if strings.HasPrefix(name, "tollgate_") || name == "go_memstats_heap_alloc_bytes" {
				gateway++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return st, err
	}
	if found-gateway != collector || gateway != 0 && found != len(fields) {
		return st, fmt.Errorf("%s/metrics: %d of the %d statistics the harness reads", admin, found, len(fields))
	}
	return st, nil
}

// gcFigures are what a scenario cost the gateway's garbage collector and
// how its token cache answered.
type gcFigures struct {
	measured bool
	hitRate  float64 // of the cache's lookups in the scenario; -1 when there were none
	cycles   float64
	// cpuShare is the collector's CPU over the CPU the process used, both
	// from the runtime's CPU classes (estimates of one kind: the runtime
	// says to compare them only with each other, not with /proc).
	cpuShare float64
}

// figures are a scenario's from the change d in the process's statistics
// over it.
func figures(d gatewayStats) gcFigures {
	f := gcFigures{measured: true, hitRate: -1, cycles: d.gcCycles}
	if lookups := d.hits + d.misses; lookups > 0 {
		f.hitRate = d.hits / lookups
	}
	if used := d.cpuTotal - d.cpuIdle; used > 0 {
		f.cpuShare = d.gcCPU / used
	}
	return f
}

// plus and minus add and subtract statistics field by field: changes over
// stretches of time add up (the levels — entries, heapAlloc, offHeap —
// mean nothing in a sum or a difference).
func (a gatewayStats) plus(b gatewayStats) gatewayStats  { return a.combine(b, 1) }
func (a gatewayStats) minus(b gatewayStats) gatewayStats { return a.combine(b, -1) }

func (a gatewayStats) combine(b gatewayStats, sign float64) gatewayStats {
	return gatewayStats{
		gcCycles: a.gcCycles + sign*b.gcCycles, gcCPU: a.gcCPU + sign*b.gcCPU,
		cpuTotal: a.cpuTotal + sign*b.cpuTotal, cpuIdle: a.cpuIdle + sign*b.cpuIdle,
		hits: a.hits + sign*b.hits, misses: a.misses + sign*b.misses, entries: a.entries + sign*b.entries,
		heapAlloc: a.heapAlloc + sign*b.heapAlloc, offHeap: a.offHeap + sign*b.offHeap,
	}
}

// warm sends every token once through the gateway at base, on conns
// connections, before a fleet scenario's clock starts: what a fleet of
// set-top boxes does as it comes online. Every request must succeed.
func warm(ctx context.Context, client *http.Client, base string, auths []string, conns int) error {
	ctx, cancel := context.WithTimeout(ctx, warmTimeout)
	defer cancel()
	var next, failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		failed.Add(1)
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(auths) {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/channels/1", nil)
				if err != nil {
					fail(err)
					return
				}
				req.Header.Set("Authorization", auths[i])
				resp, err := client.Do(req)
				if err != nil {
					fail(err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 400 {
					fail(fmt.Errorf("status %d", resp.StatusCode))
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("warm-up of %d tokens: %w", len(auths), err)
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("warm-up: %d of %d requests failed, the first: %v", n, len(auths), firstErr)
	}
	return nil
}

// heapStats is scrapeStats after two garbage collections, so that the
// heap holds only what is live (a sync.Pool keeps its objects through
// one): the gateway's pprof endpoint collects before it answers
// /debug/pprof/heap?gc=1.
func heapStats(ctx context.Context, admin string) (gatewayStats, error) {
	for range 2 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/debug/pprof/heap?gc=1", nil)
		if err != nil {
			return gatewayStats{}, err
		}
		resp, err := statsClient.Do(req)
		if err != nil {
			return gatewayStats{}, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return gatewayStats{}, fmt.Errorf("%s/debug/pprof/heap: %s", admin, resp.Status)
		}
	}
	return scrapeStats(ctx, admin)
}

// parseSizes parses -fleet: ascending positive counts, comma-separated.
func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 || (len(out) > 0 && n <= out[len(out)-1]) {
			return nil, fmt.Errorf("%q: want ascending positive counts", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// printFleetRatios prints the fleet scenarios against their targets
// (docs/PERFORMANCE.md), as ratios to the bare proxy with a buffer pool
// (bp) of the same run, each to the (bp) just before it; with -repeat,
// the median of the repeats.
func printFleetRatios(w io.Writer, results map[string]result, sizes []int, repeat int) {
	base := baseline(results)
	ratio, p99, cpu := against(base)
	gc := func(_ string, r result) float64 { return 100 * r.gc.cpuShare }
	var fleet, ids []string
	for _, n := range sizes {
		id := fmt.Sprintf("g%d", n)
		ids = append(ids, id)
		hits := results[id].gc.hitRate // the least of the repeats
		for r := 2; r <= repeat; r++ {
			hits = min(hits, results[repeatID(id, r)].gc.hitRate)
		}
		fleet = append(fleet, fmt.Sprintf("%d tokens %s (hits %.1f%%, GC %s of CPU)", n,
			across(results, id, repeat, "%.2f", ratio), 100*hits, across(results, id, repeat, "%.1f%%", gc)))
	}
	fmt.Fprintf(w, "fleet: requests/s ×(bp) after warm-up (target ≥ 0.9, GC ≤ 3%%): %s\n", strings.Join(fleet, ", "))
	if _, ok := results["c-full"]; ok {
		fmt.Fprintf(w, "fleet: one hot token with the cache full: requests/s ×(bp) %s (target ≥ 0.95), p99 ×(bp) %s (≤ 1.2), CPU µs/req over (bp) %s (≤ 5), GC %s of CPU\n",
			across(results, "c-full", repeat, "%.2f", ratio), across(results, "c-full", repeat, "%.2f", p99),
			across(results, "c-full", repeat, "%+.1f", cpu), across(results, "c-full", repeat, "%.1f%%", gc))
	}
	if d, ok := results["d"]; ok {
		fmt.Fprintf(w, "cold: every token new: %.2f×(bp) requests/s (target ≥ 0.5), %.2f×(b)\n", d.rps/base("d").rps, d.rps/results["b"].rps)
	}
	first := results["bp"]
	var again []string
	for _, id := range append(ids, "c-full", "d") {
		if r, ok := results["bp@"+id]; ok {
			again = append(again, fmt.Sprintf("%.2f", r.rps/first.rps))
		}
	}
	fmt.Fprintf(w, "baseline: (bp) again before each fleet, (c-full) and (d): %s× the first (bp)\n", strings.Join(again, ", "))
}

// against gives a scenario's figures against the baseline base gives for
// it: requests/s as a ratio, p99 as a ratio, and CPU per request as µs
// over.
func against(base func(id string) result) (rps, p99, cpu func(id string, r result) float64) {
	rps = func(id string, r result) float64 { return r.rps / base(id).rps }
	p99 = func(id string, r result) float64 { return float64(r.p99) / float64(base(id).p99) }
	cpu = func(id string, r result) float64 { return (r.cpuPer10k - base(id).cpuPer10k) * 100 }
	return rps, p99, cpu
}

// repeatID names repeat r of the scenario id: id itself for the first,
// id#r after it.
func repeatID(id string, r int) string {
	if r == 1 {
		return id
	}
	return fmt.Sprintf("%s#%d", id, r)
}

// across is f of the scenario id and of its repeats (id#2 … id#repeat)
// as one figure in format: the value alone, or with repeats their median
// and range.
func across(results map[string]result, id string, repeat int, format string, f func(id string, r result) float64) string {
	var v []float64
	for i := 1; i <= repeat; i++ {
		rid := repeatID(id, i)
		if r, ok := results[rid]; ok {
			v = append(v, f(rid, r))
		}
	}
	switch len(v) {
	case 0:
		return "–"
	case 1:
		return fmt.Sprintf(format, v[0])
	}
	slices.Sort(v)
	median := v[len(v)/2]
	if len(v)%2 == 0 {
		median = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return fmt.Sprintf(format+" (median of %d: "+format+" to "+format+")", median, len(v), v[0], v[len(v)-1])
}

// printSameHeaders prints tollgate's scenarios against (bh), the bare
// proxy with a buffer pool adding the upstream headers tollgate adds
// (named in added; removed names those tollgate removes, which (bh)
// keeps), each to the (bh) measured just before it (with -repeat, the
// median of the repeats): the part of the gap to (bp) that is not the
// cost of carrying those headers.
func printSameHeaders(w io.Writer, results map[string]result, sizes []int, repeat int, added, removed []string) {
	toBH, p99, cpu := against(func(id string) result { return nearest(results, "bh", id) })
	toBP, _, _ := against(baseline(results))
	var costs, ratios []string
	ids := []string{"c"}
	for _, n := range sizes {
		ids = append(ids, fmt.Sprintf("g%d", n))
	}
	ids = append(ids, "c-full", "d")
	if _, ok := results["bh"]; ok {
		costs = append(costs, "first "+across(results, "bh", 1, "%.2f", toBP))
	}
	for _, id := range ids {
		if _, ok := results[id]; !ok {
			continue
		}
		label := "(" + id + ")"
		if strings.HasPrefix(id, "g") {
			label = id[1:] + " tokens"
		}
		if _, ok := results["bh@"+id]; ok {
			costs = append(costs, "before "+label+" "+across(results, "bh@"+id, repeat, "%.2f", toBP))
		}
		ratios = append(ratios, label+" "+across(results, id, repeat, "%.2f", toBH))
	}
	gone := "none"
	if len(removed) > 0 {
		gone = strings.Join(removed, ", ") + " (which (bh) keeps)"
	}
	fmt.Fprintf(w, "same upstream headers: (bh) adds %s; tollgate removes %s\n", strings.Join(added, ", "), gone)
	fmt.Fprintf(w, "same upstream headers: (bh) requests/s ×(bp): %s\n", strings.Join(costs, ", "))
	fmt.Fprintf(w, "same upstream headers: tollgate requests/s ×(bh): %s", strings.Join(ratios, ", "))
	if _, ok := results["c-full"]; ok {
		fmt.Fprintf(w, "; (c-full) p99 ×(bh) %s, CPU µs/req over (bh) %s", across(results, "c-full", repeat, "%.2f", p99), across(results, "c-full", repeat, "%+.1f", cpu))
	}
	fmt.Fprintln(w)
}
