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
