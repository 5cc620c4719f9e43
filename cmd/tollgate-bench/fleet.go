package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
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

func figures(before, after gatewayStats) gcFigures {
	f := gcFigures{measured: true, hitRate: -1, cycles: after.gcCycles - before.gcCycles}
	if lookups := (after.hits - before.hits) + (after.misses - before.misses); lookups > 0 {
		f.hitRate = (after.hits - before.hits) / lookups
	}
	if used := (after.cpuTotal - before.cpuTotal) - (after.cpuIdle - before.cpuIdle); used > 0 {
		f.cpuShare = (after.gcCPU - before.gcCPU) / used
	}
	return f
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
// (bp) of the same run.
func printFleetRatios(w io.Writer, results map[string]result, sizes []int) {
	base := baseline(results)
	var fleet, ids []string
	for _, n := range sizes {
		id := fmt.Sprintf("g%d", n)
		ids = append(ids, id)
		r := results[id]
		fleet = append(fleet, fmt.Sprintf("%d tokens %.2f (hits %.1f%%, GC %.1f%% of CPU)", n, r.rps/base(id).rps, 100*r.gc.hitRate, 100*r.gc.cpuShare))
	}
	fmt.Fprintf(w, "fleet: requests/s ×(bp) after warm-up (target ≥ 0.9, GC ≤ 3%%): %s\n", strings.Join(fleet, ", "))
	if c, ok := results["c-full"]; ok {
		bp := base("c-full")
		fmt.Fprintf(w, "fleet: one hot token with the cache full: %.2f×(bp) requests/s (target ≥ 0.95), p99 %.2f×(bp) (≤ 1.2), CPU %+.1f µs/req over (bp) (≤ 5), GC %.1f%% of CPU\n",
			c.rps/bp.rps, float64(c.p99)/float64(bp.p99), (c.cpuPer10k-bp.cpuPer10k)*100, 100*c.gc.cpuShare)
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

// printSameHeaders prints tollgate's scenarios against (bh), the bare
// proxy with a buffer pool adding the upstream headers tollgate adds
// (named in added), each to the (bh) measured just before it: the part of
// the gap to (bp) that is not the cost of carrying those headers.
func printSameHeaders(w io.Writer, results map[string]result, sizes []int, added []string) {
	bh := func(id string) result { return nearest(results, "bh", id) }
	base := baseline(results)
	var costs, ratios []string
	ids := []string{"c"}
	for _, n := range sizes {
		ids = append(ids, fmt.Sprintf("g%d", n))
	}
	ids = append(ids, "c-full", "d")
	if r, ok := results["bh"]; ok {
		costs = append(costs, fmt.Sprintf("%.2f", r.rps/results["bp"].rps))
	}
	for _, id := range ids {
		r, ok := results[id]
		if !ok {
			continue
		}
		if again, ok := results["bh@"+id]; ok {
			costs = append(costs, fmt.Sprintf("%.2f", again.rps/base(id).rps))
		}
		label := "(" + id + ")"
		if strings.HasPrefix(id, "g") {
			label = id[1:] + " tokens"
		}
		ratios = append(ratios, fmt.Sprintf("%s %.2f", label, r.rps/bh(id).rps))
	}
	fmt.Fprintf(w, "same upstream headers: (bh) adds %s; (bh) ×(bp) requests/s %s\n", strings.Join(added, ", "), strings.Join(costs, ", "))
	fmt.Fprintf(w, "same upstream headers: tollgate requests/s ×(bh): %s", strings.Join(ratios, ", "))
	if c, ok := results["c-full"]; ok {
		h := bh("c-full")
		fmt.Fprintf(w, "; (c-full) p99 %.2f×(bh), CPU %+.1f µs/req over (bh)", float64(c.p99)/float64(h.p99), (c.cpuPer10k-h.cpuPer10k)*100)
	}
	fmt.Fprintln(w)
}
