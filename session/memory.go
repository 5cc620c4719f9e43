package session

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// sweepEvery is how often (by the store's clock) Memory looks through all
// its records for expired ones; records met on the way go at once.
const sweepEvery = time.Minute

// Memory is a Store in this process's memory, for a single replica: its
// sessions are lost when the process stops. It behaves as Redis does,
// under one mutex, and stays bounded: expired sessions, ended ones past
// their until, forgotten handles and expired device requests are dropped
// as they are met and in a sweep every minute.
type Memory struct {
	opts    options
	revoked *Revoked

	mu        sync.Mutex
	sessions  map[string]*record             // guarded by mu; live and ended sessions by id
	handles   map[string]string              // guarded by mu; handle hash → session id
	users     map[string]map[string]struct{} // guarded by mu; user id → ids of its live sessions
	gone      map[string]int64               // guarded by mu; revoked id → until (Unix ms)
	devices   map[string]*deviceRecord       // guarded by mu; device code hash → request
	userCodes map[string]string              // guarded by mu; user code → device code hash
	sweepAt   int64                          // guarded by mu; when the next sweep is due (Unix ms)
}

var (
	_ Store       = (*Memory)(nil)
	_ DeviceCodes = (*Memory)(nil)
)

// deviceRecord is a device authorization request as Memory keeps it.
// Times are Unix milliseconds.
type deviceRecord struct {
	d      DeviceCode
	exp    int64 // d.Expires
	polled int64 // when the device last polled while pending; 0: never
}

// record is a session as Memory keeps it. Times are Unix milliseconds.
type record struct {
	s     Session
	exp   int64 // s.Expires
	ended bool
	cause Cause
	until int64 // of an ended session: when it is forgotten

	head string   // hash of the current handle
	prev string   // hash of the handle head replaced, "" before the first rotation
	old  []string // hashes of the handles replaced before prev, newest first, at most keptHandles
	succ []byte   // head sealed under prev's handle
	used int64    // when prev was replaced
}

// NewMemory returns an empty Memory store; now is its clock (nil means
// time.Now).
func NewMemory(now func() time.Time, opts ...Option) *Memory {
	o := newOptions(append([]Option{WithClock(now)}, opts...))
	return &Memory{
		opts:      o,
		revoked:   newRevoked(o.now, true),
		sessions:  map[string]*record{},
		handles:   map[string]string{},
		users:     map[string]map[string]struct{}{},
		gone:      map[string]int64{},
		devices:   map[string]*deviceRecord{},
		userCodes: map[string]string{},
	}
}

// Revoked returns the store's set of revoked sessions.
func (m *Memory) Revoked() *Revoked { return m.revoked }

// Create implements Store.
func (m *Memory) Create(ctx context.Context, s Session, handle string, limit Limit) (evicted []string, err error) {
	defer m.opts.observe(ctx, "create", time.Now(), &err)
	now := m.opts.now().UnixMilli()
	if s, err = checkCreate(s, handle, now); err != nil {
		return nil, err
	}
	hh := hashHandle(handle)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if rec := m.sessions[s.ID]; rec != nil {
		if !rec.ended && rec.head == hh {
			return nil, nil // this Create again
		}
		return nil, fmt.Errorf("%w: create: session id %q in use", ErrInvalidArgument, s.ID)
	}
	if m.gone[s.ID] > now || m.handles[hh] != "" {
		return nil, fmt.Errorf("%w: create: session id %q or handle in use", ErrInvalidArgument, s.ID)
	}
	alive := m.liveOf(s.UserID, now)
	if limit.Max > 0 && len(alive) >= limit.Max {
		if limit.Refuse {
			return nil, ErrLimitReached
		}
		ended := map[string]int64{}
		for _, rec := range alive[:len(alive)-limit.Max+1] {
			m.end(rec.s.ID, CauseLimit, m.opts.selfRevokeUntil(now, rec.exp), now, ended)
			evicted = append(evicted, rec.s.ID)
		}
		m.revoked.add(ended)
	}
	m.sessions[s.ID] = &record{s: s, exp: s.Expires.UnixMilli(), head: hh}
	m.handles[hh] = s.ID
	ids := m.users[s.UserID]
	if ids == nil {
		ids = map[string]struct{}{}
		m.users[s.UserID] = ids
	}
	ids[s.ID] = struct{}{}
	return evicted, nil
}

// Rotate implements Store.
func (m *Memory) Rotate(ctx context.Context, presented, next, clientID string, expires time.Time, reuse time.Duration) (rot Rotation, err error) {
	defer m.opts.observe(ctx, "rotate", time.Now(), &err)
	now := m.opts.now().UnixMilli()
	if err := checkRotate(presented, next, expires, now); err != nil {
		return Rotation{}, err
	}
	hp, hn := hashHandle(presented), hashHandle(next)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	rec, err := m.byHandle(hp, now)
	if err != nil {
		return Rotation{}, err
	}
	retry := rec.prev == hp && now-rec.used <= reuse.Milliseconds()
	if rec.head != hp && !retry {
		// Theft, whichever client presents it.
		ended := map[string]int64{}
		m.end(rec.s.ID, CauseReuse, m.opts.selfRevokeUntil(now, rec.exp), now, ended)
		m.revoked.add(ended)
		return Rotation{}, ErrReused
	}
	if rec.s.ClientID != clientID {
		return Rotation{}, ErrWrongClient
	}
	if retry {
		succ, err := openSuccessor(presented, rec.succ)
		if err != nil {
			return Rotation{}, fmt.Errorf("%w: rotate: open the successor: %w", ErrUnavailable, err)
		}
		return Rotation{Session: rec.s, Successor: succ}, nil
	}
	if m.handles[hn] != "" {
		return Rotation{}, fmt.Errorf("%w: rotate: the next handle is in use", ErrInvalidArgument)
	}
	if rec.prev != "" {
		rec.old = append([]string{rec.prev}, rec.old...)
		for len(rec.old) > keptHandles {
			delete(m.handles, rec.old[len(rec.old)-1])
			rec.old = rec.old[:len(rec.old)-1]
		}
	}
	rec.prev, rec.head = hp, hn
	rec.succ, rec.used = sealSuccessor(presented, next), now
	rec.exp = expires.UnixMilli()
	rec.s.Refreshed, rec.s.Expires = time.UnixMilli(now), time.UnixMilli(rec.exp)
	m.handles[hn] = rec.s.ID
	return Rotation{Session: rec.s}, nil
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, id string) (s Session, err error) {
	defer m.opts.observe(ctx, "get", time.Now(), &err)
	now := m.opts.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	rec, err := m.get(id, now)
	if err != nil {
		return Session{}, err
	}
	return rec.s, nil
}

// Lookup implements Store. Only the current handle of a live session
// finds it: a replaced one is ErrNotFound.
func (m *Memory) Lookup(ctx context.Context, handle string) (s Session, err error) {
	defer m.opts.observe(ctx, "lookup", time.Now(), &err)
	now := m.opts.now().UnixMilli()
	hh := hashHandle(handle)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	rec, err := m.byHandle(hh, now)
	if err != nil {
		return Session{}, err
	}
	if rec.head != hh {
		return Session{}, ErrNotFound
	}
	return rec.s, nil
}

// Update implements Store.
func (m *Memory) Update(ctx context.Context, id, profile string) (err error) {
	defer m.opts.observe(ctx, "update", time.Now(), &err)
	now := m.opts.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	rec, err := m.get(id, now)
	if err != nil {
		return err
	}
	rec.s.Profile = profile
	return nil
}

// Revoke implements Store.
func (m *Memory) Revoke(ctx context.Context, ids []string, cause Cause, until time.Time) (err error) {
	defer m.opts.observe(ctx, "revoke", time.Now(), &err)
	now := m.opts.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	ended := map[string]int64{}
	for _, id := range ids {
		if id != "" {
			m.end(id, cause, until.UnixMilli(), now, ended)
		}
	}
	m.revoked.add(ended)
	return nil
}

// List implements Store.
func (m *Memory) List(ctx context.Context, userID string) (list []Session, err error) {
	defer m.opts.observe(ctx, "list", time.Now(), &err)
	now := m.opts.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	for _, rec := range m.liveOf(userID, now) {
		list = append(list, rec.s)
	}
	return list, nil
}

// Count implements Store. It looks at every session.
func (m *Memory) Count(ctx context.Context) (n int, err error) {
	defer m.opts.observe(ctx, "count", time.Now(), &err)
	now := m.opts.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	for _, rec := range m.sessions {
		if !rec.ended && rec.exp > now {
			n++
		}
	}
	return n, nil
}

// get returns the live session id. m.mu must be held.
func (m *Memory) get(id string, now int64) (*record, error) {
	rec := m.sessions[id]
	switch {
	case rec == nil:
	case rec.ended:
		if rec.until <= now {
			m.drop(rec)
		}
	case rec.exp <= now:
		m.drop(rec)
	default:
		return rec, nil
	}
	if m.gone[id] > now {
		return nil, ErrRevoked
	}
	return nil, ErrNotFound
}

// byHandle returns the live session that handle hash hh belongs to
// (whichever of its handles it is). m.mu must be held.
func (m *Memory) byHandle(hh string, now int64) (*record, error) {
	id, ok := m.handles[hh]
	if !ok {
		return nil, ErrNotFound
	}
	return m.get(id, now)
}

// liveOf returns the user's live sessions, oldest first. m.mu must be
// held.
func (m *Memory) liveOf(userID string, now int64) []*record {
	var alive []*record
	for id := range m.users[userID] {
		if rec, err := m.get(id, now); err == nil {
			alive = append(alive, rec)
		}
	}
	slices.SortFunc(alive, func(a, b *record) int {
		return cmp.Or(a.s.Created.Compare(b.s.Created), cmp.Compare(a.s.ID, b.s.ID))
	})
	return alive
}

// end ends session id (known or not) for cause, to be remembered until
// until, and records it in ended. m.mu must be held.
func (m *Memory) end(id string, cause Cause, until, now int64, ended map[string]int64) {
	if rec := m.sessions[id]; rec != nil {
		if !rec.ended {
			rec.ended, rec.cause, rec.succ, rec.until = true, cause, nil, until
			m.forgetUser(rec)
		}
		rec.until = max(rec.until, until)
		until = rec.until
		if until <= now {
			m.drop(rec)
		}
	}
	if until > now {
		m.gone[id] = max(m.gone[id], until)
	}
	ended[id] = until
}

// drop forgets a session and its handles. m.mu must be held.
func (m *Memory) drop(rec *record) {
	delete(m.sessions, rec.s.ID)
	delete(m.handles, rec.head)
	delete(m.handles, rec.prev)
	for _, h := range rec.old {
		delete(m.handles, h)
	}
	m.forgetUser(rec)
}

// forgetUser removes a session from its user's. m.mu must be held.
func (m *Memory) forgetUser(rec *record) {
	if ids := m.users[rec.s.UserID]; ids != nil {
		delete(ids, rec.s.ID)
		if len(ids) == 0 {
			delete(m.users, rec.s.UserID)
		}
	}
}

// sweep drops every expired record when one is due. m.mu must be held.
func (m *Memory) sweep(now int64) {
	if now < m.sweepAt {
		return
	}
	m.sweepAt = now + sweepEvery.Milliseconds()
	for _, rec := range m.sessions {
		if (rec.ended && rec.until <= now) || (!rec.ended && rec.exp <= now) {
			m.drop(rec)
		}
	}
	for id, until := range m.gone {
		if until <= now {
			delete(m.gone, id)
		}
	}
	for dh, rec := range m.devices {
		if rec.exp+deviceLinger.Milliseconds() <= now {
			delete(m.devices, dh)
		}
	}
	for uc := range m.userCodes {
		m.byUserCode(uc, now) // forgets the code of an expired request
	}
}

// CreateDevice implements DeviceCodes.
func (m *Memory) CreateDevice(ctx context.Context, deviceCode string, d DeviceCode) (err error) {
	defer m.opts.observe(ctx, "device_create", time.Now(), &err)
	now := m.opts.now().UnixMilli()
	if d, err = checkCreateDevice(deviceCode, d, now); err != nil {
		return err
	}
	dh := hashHandle(deviceCode)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if rec := m.devices[dh]; rec != nil {
		if rec.d.UserCode == d.UserCode && rec.d.Status == DevicePending && rec.exp > now {
			return nil // this CreateDevice again
		}
		return fmt.Errorf("%w: create device: the device code is in use", ErrInvalidArgument)
	}
	if _, err := m.byUserCode(d.UserCode, now); err == nil {
		return fmt.Errorf("%w: create device: %w", ErrInvalidArgument, ErrUserCodeInUse)
	}
	m.devices[dh] = &deviceRecord{d: d, exp: d.Expires.UnixMilli()}
	m.userCodes[d.UserCode] = dh
	return nil
}

// DeviceByUserCode implements DeviceCodes.
func (m *Memory) DeviceByUserCode(ctx context.Context, userCode string) (d DeviceCode, err error) {
	defer m.opts.observe(ctx, "device_get", time.Now(), &err)
	now := m.opts.now().UnixMilli()
	uc, ok := NormalizeUserCode(userCode)
	if !ok {
		return DeviceCode{}, ErrNotFound
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	rec, err := m.byUserCode(uc, now)
	if err != nil {
		return DeviceCode{}, err
	}
	return rec.d, nil
}

// DecideDevice implements DeviceCodes.
func (m *Memory) DecideDevice(ctx context.Context, userCode string, approve bool, userID, profile string) (err error) {
	defer m.opts.observe(ctx, "device_decide", time.Now(), &err)
	now := m.opts.now().UnixMilli()
	if err := checkDecide(approve, userID); err != nil {
		return err
	}
	uc, ok := NormalizeUserCode(userCode)
	if !ok {
		return ErrNotFound
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	rec, err := m.byUserCode(uc, now)
	if err != nil {
		return err
	}
	if rec.d.Status != DevicePending {
		return ErrDeviceDecided
	}
	if approve {
		rec.d.Status, rec.d.UserID, rec.d.Profile = DeviceApproved, userID, profile
	} else {
		rec.d.Status = DeviceDenied
	}
	return nil
}

// PollDevice implements DeviceCodes.
func (m *Memory) PollDevice(ctx context.Context, deviceCode, clientID string) (d DeviceCode, err error) {
	defer m.opts.observe(ctx, "device_poll", time.Now(), &err)
	now := m.opts.now().UnixMilli()
	dh := hashHandle(deviceCode)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	rec := m.devices[dh]
	switch {
	case rec == nil:
		return DeviceCode{}, ErrNotFound
	case rec.exp+deviceLinger.Milliseconds() <= now:
		delete(m.devices, dh)
		return DeviceCode{}, ErrNotFound
	case rec.d.ClientID != clientID || rec.d.Status == DeviceUsed:
		return DeviceCode{}, ErrNotFound
	case rec.exp <= now:
		return rec.d, ErrDeviceExpired
	case rec.d.Status == DeviceDenied:
		return rec.d, ErrAccessDenied
	case rec.d.Status == DeviceApproved:
		rec.d.Status = DeviceUsed
		return rec.d, nil
	}
	last := rec.polled
	rec.polled = now
	if last != 0 && now-last < rec.d.Interval.Milliseconds() {
		rec.d.Interval += slowDownStep
		return rec.d, ErrSlowDown
	}
	return rec.d, ErrAuthorizationPending
}

// byUserCode returns the unexpired request of user code uc (normalised),
// forgetting the code once its request has expired. m.mu must be held.
func (m *Memory) byUserCode(uc string, now int64) (*deviceRecord, error) {
	dh, ok := m.userCodes[uc]
	if !ok {
		return nil, ErrNotFound
	}
	rec := m.devices[dh]
	if rec == nil || rec.exp <= now {
		delete(m.userCodes, uc)
		return nil, ErrNotFound
	}
	return rec, nil
}
