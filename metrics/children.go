package metrics

import (
	"maps"
	"sync"
	"sync/atomic"
)

// children remembers a vector's children by their label values, so that
// the per-request path is one lock-free map read. WithLabelValues instead
// hashes and validates every label and takes a read lock that all cores
// write to on every call. K must be bounded like the labels it stands for.
type children[K comparable, V any] struct {
	m      atomic.Pointer[map[K]V] // replaced whole on each new key
	mu     sync.Mutex              // serialises writers
	create func(K) V               // builds the child for a new key
}

func newChildren[K comparable, V any](create func(K) V) *children[K, V] {
	return &children[K, V]{create: create}
}

// get returns the child for k, creating it on first use.
func (c *children[K, V]) get(k K) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	return c.add(k)
}

func (c *children[K, V]) add(k K) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := map[K]V{}
	if old := c.m.Load(); old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
		next = maps.Clone(*old)
	}
	v := c.create(k)
	next[k] = v
	c.m.Store(&next)
	return v
}
