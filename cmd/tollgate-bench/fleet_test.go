package main

import (
	"strings"
	"testing"
	"time"
)

// TestSummaryRatios: the summary lines take each fleet target and each
// repeat to the (bp) and (bh) measured just before it, and give medians
// of the repeats. Each baseline has a rate of its own, so a ratio taken
// to another one prints another number.
func TestSummaryRatios(t *testing.T) {
	r := func(rps float64, p99 time.Duration, cpuUS float64) result {
		return result{rps: rps, p99: p99, cpuPer10k: cpuUS / 100}
	}
	results := map[string]result{
		"b": r(500, 0, 0), "bp": r(1000, 10*time.Millisecond, 80), "bh": r(900, 0, 85),
		"c": r(810, 0, 90),
		// The fleet of 10: 0.50 and 0.30 of its two (bp), 2.50 and 1.00
		// of its two (bh).
		"bp@g10": r(2000, 0, 0), "bh@g10": r(400, 0, 0), "g10": r(1000, 0, 0),
		"bp@g10#2": r(3000, 0, 0), "bh@g10#2": r(900, 0, 0), "g10#2": r(900, 0, 0),
		// (c-full): 0.80 and 0.60 of (bp), p99 1.50 and 2.50, CPU +10
		// and +30 µs; of (bh), 0.89 and 0.75, +5 and +20 µs.
		"bp@c-full": r(1000, 10*time.Millisecond, 80), "bh@c-full": r(900, 20*time.Millisecond, 85), "c-full": r(800, 15*time.Millisecond, 90),
		"bp@c-full#2": r(1000, 10*time.Millisecond, 70), "bh@c-full#2": r(800, 10*time.Millisecond, 80), "c-full#2": r(600, 25*time.Millisecond, 100),
		"bp@d": r(1000, 0, 0), "bh@d": r(1000, 0, 0), "d": r(450, 0, 0),
	}
	var fleet, same strings.Builder
	printFleetRatios(&fleet, results, []int{10}, 2)
	printSameHeaders(&same, results, []int{10}, 2, []string{"X-User-Id"}, nil)
	containsAll(t, fleet.String(),
		"10 tokens 0.40 (median of 2: 0.30 to 0.50)",
		"requests/s ×(bp) 0.70 (median of 2: 0.60 to 0.80)",
		"p99 ×(bp) 2.00 (median of 2: 1.50 to 2.50)",
		"CPU µs/req over (bp) +20.0 (median of 2: +10.0 to +30.0)",
		"cold: every token new: 0.45×(bp) requests/s (target ≥ 0.5), 0.90×(b)",
		"baseline: (bp) again before each fleet, (c-full) and (d): 2.00, 1.00, 1.00× the first (bp)",
	)
	containsAll(t, same.String(),
		"(bh) adds X-User-Id; tollgate removes none",
		"(bh) requests/s ×(bp): first 0.90, before 10 tokens 0.25 (median of 2: 0.20 to 0.30), before (c-full) 0.85 (median of 2: 0.80 to 0.90), before (d) 1.00",
		"tollgate requests/s ×(bh): (c) 0.90, 10 tokens 1.75 (median of 2: 1.00 to 2.50), (c-full) 0.82 (median of 2: 0.75 to 0.89), (d) 0.45",
		"(c-full) p99 ×(bh) 1.62 (median of 2: 0.75 to 2.50), CPU µs/req over (bh) +12.5 (median of 2: +5.0 to +20.0)",
	)
}

// containsAll fails the test for each of wants that text does not hold.
func containsAll(t *testing.T, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
}

// TestSlicesAddUp: a scenario measured in slices (-interleave) is judged
// by its slices added up: requests over the time they took together,
// percentiles of all their latencies, CPU per request of all of them, and
// the collector's share and the cache's hit rate from their changes
// summed, not averaged.
func TestSlicesAddUp(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var d []time.Duration
		for _, v := range n {
			d = append(d, time.Duration(v)*time.Millisecond)
		}
		return d
	}
	var first, second gatewayStats
	first.gcCycles, first.gcCPU, first.cpuTotal, first.cpuIdle, first.hits, first.misses = 10, 1, 12, 2, 90, 10
	second.gcCycles, second.gcCPU, second.cpuTotal, second.cpuIdle, second.hits, second.misses = 20, 2, 32, 2, 300, 0
	// A process's statistics read around each slice: the second slice's
	// change is after minus before.
	before := gatewayStats{gcCycles: 100, gcCPU: 7, cpuTotal: 50, cpuIdle: 5, hits: 1000, misses: 100}
	parts := []sample{
		{lat: ms(1, 2, 3), failed: 1, elapsed: time.Second, cpu: 0.3, sideCPU: 0.03, stats: &first},
		{lat: ms(9, 4, 5, 6, 7, 8, 10), elapsed: 4 * time.Second, cpu: 0.7, stats: ptr(before.plus(second).minus(before))},
	}
	var all sample
	for _, s := range parts {
		all.add(s)
	}
	r, err := all.result(42)
	if err != nil {
		t.Fatal(err)
	}
	if r.requests != 10 || r.errors != 1 || r.rps != 2 || r.rssMiB != 42 {
		t.Errorf("requests %d, errors %d, %v/s, RSS %v: want 10, 1, 2/s (10 in 5s), 42", r.requests, r.errors, r.rps, r.rssMiB)
	}
	if r.p50 != 6*time.Millisecond || r.p99 != 10*time.Millisecond {
		t.Errorf("p50 %v, p99 %v: want 6ms and 10ms, of the ten latencies together", r.p50, r.p99)
	}
	if r.cpuPer10k != 1000 || r.sidecarCPUPer10k != 30 {
		t.Errorf("CPU per 10k %v, sidecar %v: want 1000 (1s for 10) and 30", r.cpuPer10k, r.sidecarCPUPer10k)
	}
	// GC: 3 of 40 seconds used (not the mean of 10% and 6.7%); hits 390
	// of 400; 30 cycles.
	if g := r.gc; !g.measured || g.cycles != 30 || g.cpuShare != 3.0/40 || g.hitRate != 390.0/400 {
		t.Errorf("GC %+v: want 30 cycles, share 0.075, hit rate 0.975", g)
	}
	if _, err := (sample{failed: 3, elapsed: time.Second}).result(0); err == nil {
		t.Error("a scenario with no successful request in any slice was judged")
	}
}

func ptr[T any](v T) *T { return &v }

// TestOrderRotates: in each round a group's scenarios are each measured
// once, and over three rounds (or six) each is measured first, second and
// last equally often.
func TestOrderRotates(t *testing.T) {
	for _, rounds := range []int{3, 6} {
		var places [3][3]int // places[scenario][place]
		for r := range rounds {
			o := order(r, 3)
			seen := map[int]bool{}
			for place, j := range o {
				seen[j] = true
				places[j][place]++
			}
			if len(seen) != 3 {
				t.Fatalf("round %d: order %v does not measure each scenario once", r, o)
			}
		}
		for j, p := range places {
			for place, count := range p {
				if count != rounds/3 {
					t.Errorf("%d rounds: scenario %d measured in place %d %d times, want %d", rounds, j, place, count, rounds/3)
				}
			}
		}
	}
}
