package session

import (
	"sync"
	"sync/atomic"
	"time"
)

// Revoked is this replica's set of revoked session ids, for the proxy's
// hot path: Contains is one map lookup, without a lock or a store round
// trip. Each store has one (Memory.Revoked, Redis.Revoked); a Redis store
// keeps it up to date from the revocation channel and a full reload on
// every (re)connect and every RedisConfig.ResyncInterval.
//
// An id stays in the set until its until has passed (its tokens have all
// expired); it may linger until the next update after that, which is
// harmless: the session is revoked all the same.
type Revoked struct {
	now func() time.Time
	// always: the set is complete by construction (one replica, updated
	// in the same operation that revokes), so Confirmed is now.
	always bool

	// set maps an id to its until, in Unix milliseconds. It is never
	// changed once stored: writers store a new map.
	set atomic.Pointer[map[string]int64]
	// confirmed is when the set was last known complete, in Unix
	// nanoseconds; 0 means never.
	confirmed atomic.Int64

	mu sync.Mutex // serialises writers of set
}

func newRevoked(now func() time.Time, always bool) *Revoked {
	r := &Revoked{now: now, always: always}
	r.set.Store(&map[string]int64{})
	return r
}

// Contains reports whether session id is revoked.
func (r *Revoked) Contains(id string) bool {
	_, ok := (*r.set.Load())[id]
	return ok
}

// Len returns the number of revoked sessions in the set.
func (r *Revoked) Len() int { return len(*r.set.Load()) }

// Confirmed returns when the set was last known to be complete: for a
// Redis store, the start of the last full reload done while its
// subscription to revocations was up (zero before the first); for a
// Memory store, always now. A proxy can refuse to trust a set confirmed
// too long ago.
func (r *Revoked) Confirmed() time.Time {
	if r.always {
		return r.now()
	}
	ns := r.confirmed.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// confirm records that the set was complete at t.
func (r *Revoked) confirm(t time.Time) { r.confirmed.Store(t.UnixNano()) }

// add puts entries (id → until in Unix milliseconds) into the set,
// keeping the later until of an id already there, and drops the entries
// whose until has passed. It never removes a live entry: a reload merges
// with what messages brought meanwhile, so neither can lose the other's.
func (r *Revoked) add(entries map[string]int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now().UnixMilli()
	cur := *r.set.Load()
	changed := false
	for id, until := range entries {
		if old, ok := cur[id]; until > now && (!ok || old < until) {
			changed = true
			break
		}
	}
	if !changed {
		for _, until := range cur {
			if until <= now {
				changed = true
				break
			}
		}
	}
	if !changed {
		return
	}
	next := make(map[string]int64, len(cur)+len(entries))
	for id, until := range cur {
		if until > now {
			next[id] = until
		}
	}
	for id, until := range entries {
		if until > now && next[id] < until {
			next[id] = until
		}
	}
	r.set.Store(&next)
}
