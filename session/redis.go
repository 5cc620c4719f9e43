package session

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"
)

// RedisConfig says where Redis is and how the store uses it. Exactly one
// of URL (a single server), SentinelAddrs or ClusterAddrs says where.
type RedisConfig struct {
	// URL is a single Redis server: redis://[user:password@]host:port/db,
	// rediss://… for TLS, or unix:///path/redis.sock?db=N; the query may
	// set go-redis's pool options (pool_size, …), not its timeouts (see
	// Timeout) nor skip_verify. With SentinelAddrs or ClusterAddrs it
	// names no host (redis://[user:password@]/db, rediss://…): its scheme,
	// credentials and database apply to the servers they find.
	URL string
	// Password, when not "", replaces the URL's password (cmd reads it
	// from a file, so that it is in no URL or environment).
	Password string
	// SentinelMaster is the name of the master that the Sentinels at
	// SentinelAddrs (host:port) watch: the store follows failovers.
	SentinelMaster string
	SentinelAddrs  []string
	// ClusterAddrs are seed nodes (host:port) of a Redis Cluster. Every
	// key of the store carries one hash tag, so the store lives in one
	// slot: a Cluster gives it availability, not more throughput.
	ClusterAddrs []string
	// KeyPrefix begins every key and the revocation channel; it must not
	// contain { or } (the store sets the hash tag). Zero means
	// "tollgate:".
	KeyPrefix string
	// Timeout bounds each operation: dialling, writing, reading, waiting
	// for a pooled connection. Zero means 1s.
	Timeout time.Duration
	// ResyncInterval is how often the revoked set is reloaded in full, to
	// repair a revocation message this replica missed (it also is on
	// every reconnect). Zero means 30s.
	ResyncInterval time.Duration
}

// Defaults of RedisConfig, and of the background work.
const (
	defaultKeyPrefix      = "tollgate:"
	defaultTimeout        = time.Second
	defaultResyncInterval = 30 * time.Second
	maxPingEvery          = 5 * time.Second
	minBackoff            = 50 * time.Millisecond
	maxBackoff            = 5 * time.Second
)

// Redis is a Store in Redis, shared by every replica. Each method is one
// Lua script, which Redis runs alone; a Redis error or timeout is
// ErrUnavailable. Run keeps the Revoked set current and watches Redis's
// health.
type Redis struct {
	cfg     RedisConfig
	opts    options
	logger  *zap.Logger
	client  redis.UniversalClient
	base    string // prefix of every key, with the hash tag
	channel string // where revocations are published
	revoked *Revoked

	up         atomic.Bool // the last operation or PING succeeded
	subscribed atomic.Bool // the revocation subscription is up and the set reloaded since
	running    atomic.Bool // Run is running
}

var (
	_ Store       = (*Redis)(nil)
	_ DeviceCodes = (*Redis)(nil)
)

// NewRedis returns a store in the Redis cfg describes, reporting every
// problem of cfg (ErrInvalidConfig). It does not connect: the first
// operation or Run does.
func NewRedis(cfg RedisConfig, logger *zap.Logger, opts ...Option) (*Redis, error) {
	uo, err := cfg.universal()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	o := newOptions(opts)
	return &Redis{
		cfg:     cfg,
		opts:    o,
		logger:  logger.Named("session"),
		client:  redis.NewUniversalClient(uo),
		base:    cfg.KeyPrefix + "{sessions}:",
		channel: cfg.KeyPrefix + "revoked",
		revoked: newRevoked(o.now, false),
	}, nil
}

// universal validates cfg, fills in its defaults and returns go-redis's
// options for it.
func (cfg *RedisConfig) universal() (*redis.UniversalOptions, error) {
	var errs []error
	problem := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = defaultKeyPrefix
	} else if strings.ContainsAny(cfg.KeyPrefix, "{}") {
		problem("KeyPrefix %q contains { or }: the store sets the hash tag itself", cfg.KeyPrefix)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	} else if cfg.Timeout < 0 {
		problem("Timeout %v is negative", cfg.Timeout)
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = defaultResyncInterval
	} else if cfg.ResyncInterval < 0 {
		problem("ResyncInterval %v is negative", cfg.ResyncInterval)
	}
	sentinel := cfg.SentinelMaster != "" || len(cfg.SentinelAddrs) > 0
	cluster := len(cfg.ClusterAddrs) > 0
	switch {
	case sentinel && cluster:
		problem("both Sentinel (SentinelAddrs) and Cluster (ClusterAddrs) are set")
	case sentinel && cfg.SentinelMaster == "":
		problem("SentinelAddrs needs SentinelMaster, the name of the master")
	case sentinel && len(cfg.SentinelAddrs) == 0:
		problem("SentinelMaster needs SentinelAddrs, where the Sentinels are")
	case !sentinel && !cluster && cfg.URL == "":
		problem("URL is required (or SentinelAddrs, or ClusterAddrs)")
	}
	for _, list := range []struct {
		name  string
		addrs []string
	}{{"SentinelAddrs", cfg.SentinelAddrs}, {"ClusterAddrs", cfg.ClusterAddrs}} {
		for _, a := range list.addrs {
			host, port, err := net.SplitHostPort(a)
			if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p <= 0 || p > 65535 {
				problem("%s: %q is not host:port", list.name, a)
			}
		}
	}

	uo := &redis.UniversalOptions{}
	if cfg.URL != "" {
		errs = append(errs, cfg.fromURL(uo, sentinel || cluster)...)
	}
	if cluster && uo.DB != 0 {
		problem("URL: a Cluster has only database 0")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	if cfg.Password != "" {
		uo.Password = cfg.Password
	}
	switch {
	case sentinel:
		uo.MasterName, uo.Addrs = cfg.SentinelMaster, cfg.SentinelAddrs
	case cluster:
		uo.Addrs, uo.IsClusterMode = cfg.ClusterAddrs, true
	}
	uo.DialTimeout, uo.ReadTimeout, uo.WriteTimeout, uo.PoolTimeout = cfg.Timeout, cfg.Timeout, cfg.Timeout, cfg.Timeout
	uo.ContextTimeoutEnabled = true
	// CLIENT SETINFO and maintenance notifications are unknown before
	// Redis 7.2 and only add round trips to every new connection.
	uo.DisableIdentity = true
	uo.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return uo, nil
}

// fromURL fills uo from cfg.URL; hostless says the servers are found
// otherwise (Sentinel, Cluster). Its errors never quote the URL, which
// may hold a password.
func (cfg *RedisConfig) fromURL(uo *redis.UniversalOptions, hostless bool) []error {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return []error{fmt.Errorf("URL does not parse: %w", err)}
	}
	var errs []error
	switch {
	case hostless && u.Scheme == "unix":
		errs = append(errs, errors.New("URL: a unix socket cannot go with SentinelAddrs or ClusterAddrs"))
	case hostless && u.Host != "":
		errs = append(errs, fmt.Errorf("URL names host %q, but SentinelAddrs or ClusterAddrs say where Redis is: leave the host out (redis://[user:password@]/db)", u.Host))
	}
	o, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return append(errs, fmt.Errorf("URL: %w", err))
	}
	if o.DialTimeout != 0 || o.ReadTimeout != 0 || o.WriteTimeout != 0 || o.PoolTimeout != 0 {
		errs = append(errs, errors.New("URL: set timeouts with Timeout, not in the query"))
	}
	if o.TLSConfig != nil && o.TLSConfig.InsecureSkipVerify {
		errs = append(errs, errors.New("URL: skip_verify is not allowed: Redis holds the sessions"))
	}
	if hostless && o.TLSConfig != nil {
		// ParseURL named the default host; each server's own name is
		// checked instead.
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if !hostless {
		uo.Addrs = []string{o.Addr}
	}
	uo.Username, uo.Password, uo.DB, uo.TLSConfig, uo.Protocol, uo.ClientName = o.Username, o.Password, o.DB, o.TLSConfig, o.Protocol, o.ClientName
	uo.PoolSize, uo.MinIdleConns, uo.MaxIdleConns, uo.MaxActiveConns = o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns
	uo.ConnMaxIdleTime, uo.ConnMaxLifetime = o.ConnMaxIdleTime, o.ConnMaxLifetime
	uo.MaxRetries, uo.MinRetryBackoff, uo.MaxRetryBackoff = o.MaxRetries, o.MinRetryBackoff, o.MaxRetryBackoff
	return errs
}

// Revoked returns this replica's set of revoked sessions, kept current
// by Run.
func (r *Redis) Revoked() *Revoked { return r.revoked }

// Up reports whether Redis answered the last operation or health check.
// It is false until Redis has answered once.
func (r *Redis) Up() bool { return r.up.Load() }

// Close closes the connections to Redis. Run should have returned.
func (r *Redis) Close() error { return r.client.Close() }

// Create implements Store.
func (r *Redis) Create(ctx context.Context, s Session, handle string, limit Limit) (evicted []string, err error) {
	defer r.opts.observe(ctx, "create", time.Now(), &err)
	now := r.opts.now().UnixMilli()
	if s, err = checkCreate(s, handle, now); err != nil {
		return nil, err
	}
	refuse := "0"
	if limit.Refuse {
		refuse = "1"
	}
	ans, err := r.eval(ctx, "create", createScript, now, s.ID, s.UserID, s.ClientID, s.Profile, s.Scope, s.Role,
		s.PasswordStamp, s.Created.UnixMilli(), s.Refreshed.UnixMilli(), s.Expires.UnixMilli(), hashHandle(handle),
		max(limit.Max, 0), refuse)
	if err != nil {
		return nil, err
	}
	for _, e := range ans.ended {
		evicted = append(evicted, e.ID)
	}
	return evicted, nil
}

// Rotate implements Store.
func (r *Redis) Rotate(ctx context.Context, presented, next, clientID string, expires time.Time, reuse time.Duration) (rot Rotation, err error) {
	defer r.opts.observe(ctx, "rotate", time.Now(), &err)
	now := r.opts.now().UnixMilli()
	if err := checkRotate(presented, next, expires, now); err != nil {
		return Rotation{}, err
	}
	ans, err := r.eval(ctx, "rotate", rotateScript, now, hashHandle(presented), hashHandle(next), clientID,
		expires.UnixMilli(), max(reuse.Milliseconds(), 0), sealSuccessor(presented, next))
	if err != nil {
		return Rotation{}, err
	}
	if rot.Session, err = ans.session(0); err != nil {
		return Rotation{}, err
	}
	if ans.status == "retry" {
		sealed, _ := ans.rest[1].(string)
		if rot.Successor, err = openSuccessor(presented, []byte(sealed)); err != nil {
			return Rotation{}, fmt.Errorf("%w: rotate: open the successor: %w", ErrUnavailable, err)
		}
	}
	return rot, nil
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, id string) (s Session, err error) {
	defer r.opts.observe(ctx, "get", time.Now(), &err)
	ans, err := r.eval(ctx, "get", getScript, r.opts.now().UnixMilli(), id)
	if err != nil {
		return Session{}, err
	}
	return ans.session(0)
}

// Lookup implements Store. Only the current handle of a live session
// finds it: a replaced one is ErrNotFound.
func (r *Redis) Lookup(ctx context.Context, handle string) (s Session, err error) {
	defer r.opts.observe(ctx, "lookup", time.Now(), &err)
	ans, err := r.eval(ctx, "lookup", lookupScript, r.opts.now().UnixMilli(), hashHandle(handle))
	if err != nil {
		return Session{}, err
	}
	return ans.session(0)
}

// Update implements Store.
func (r *Redis) Update(ctx context.Context, id, profile string) (err error) {
	defer r.opts.observe(ctx, "update", time.Now(), &err)
	_, err = r.eval(ctx, "update", updateScript, r.opts.now().UnixMilli(), id, profile)
	return err
}

// Revoke implements Store. The ids reach this replica's Revoked set at
// once, the others' through the revocation channel (or their next
// reload).
func (r *Redis) Revoke(ctx context.Context, ids []string, cause Cause, until time.Time) (err error) {
	defer r.opts.observe(ctx, "revoke", time.Now(), &err)
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, 2+len(ids))
	args = append(args, string(cause), until.UnixMilli())
	for _, id := range ids {
		args = append(args, id)
	}
	_, err = r.eval(ctx, "revoke", revokeScript, r.opts.now().UnixMilli(), args...)
	return err
}

// List implements Store.
func (r *Redis) List(ctx context.Context, userID string) (list []Session, err error) {
	defer r.opts.observe(ctx, "list", time.Now(), &err)
	ans, err := r.eval(ctx, "list", listScript, r.opts.now().UnixMilli(), userID)
	if err != nil {
		return nil, err
	}
	for i := range ans.rest {
		s, err := ans.session(i)
		if err != nil {
			return nil, err
		}
		list = append(list, s)
	}
	return list, nil
}

// Count implements Store: a count of a sorted set, after dropping the
// expired sessions from it.
func (r *Redis) Count(ctx context.Context) (n int, err error) {
	defer r.opts.observe(ctx, "count", time.Now(), &err)
	ans, err := r.eval(ctx, "count", countScript, r.opts.now().UnixMilli())
	if err != nil {
		return 0, err
	}
	c, ok := ans.rest[0].(int64)
	if !ok {
		return 0, fmt.Errorf("%w: count: answered %T", ErrUnavailable, ans.rest[0])
	}
	return int(c), nil
}

// CreateDevice implements DeviceCodes.
func (r *Redis) CreateDevice(ctx context.Context, deviceCode string, d DeviceCode) (err error) {
	defer r.opts.observe(ctx, "device_create", time.Now(), &err)
	now := r.opts.now().UnixMilli()
	if d, err = checkCreateDevice(deviceCode, d, now); err != nil {
		return err
	}
	_, err = r.eval(ctx, "device_create", createDeviceScript, now, hashHandle(deviceCode), d.UserCode,
		d.ClientID, d.Scope, d.Created.UnixMilli(), d.Expires.UnixMilli(), d.Interval.Milliseconds(), d.DeviceName)
	return err
}

// DeviceByUserCode implements DeviceCodes.
func (r *Redis) DeviceByUserCode(ctx context.Context, userCode string) (d DeviceCode, err error) {
	defer r.opts.observe(ctx, "device_get", time.Now(), &err)
	uc, ok := NormalizeUserCode(userCode)
	if !ok {
		return DeviceCode{}, ErrNotFound
	}
	ans, err := r.eval(ctx, "device_get", deviceByUserCodeScript, r.opts.now().UnixMilli(), uc)
	if err != nil {
		return DeviceCode{}, err
	}
	return ans.device(0)
}

// DecideDevice implements DeviceCodes.
func (r *Redis) DecideDevice(ctx context.Context, userCode string, approve bool, userID, profile string) (err error) {
	defer r.opts.observe(ctx, "device_decide", time.Now(), &err)
	if err := checkDecide(approve, userID); err != nil {
		return err
	}
	uc, ok := NormalizeUserCode(userCode)
	if !ok {
		return ErrNotFound
	}
	status := DeviceDenied
	if approve {
		status = DeviceApproved
	}
	_, err = r.eval(ctx, "device_decide", decideDeviceScript, r.opts.now().UnixMilli(), uc, string(status), userID, profile)
	return err
}

// PollDevice implements DeviceCodes.
func (r *Redis) PollDevice(ctx context.Context, deviceCode, clientID string) (d DeviceCode, err error) {
	defer r.opts.observe(ctx, "device_poll", time.Now(), &err)
	ans, err := r.eval(ctx, "device_poll", pollDeviceScript, r.opts.now().UnixMilli(), hashHandle(deviceCode), clientID)
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		return DeviceCode{}, err
	}
	d, derr := ans.device(0)
	if derr != nil {
		return DeviceCode{}, derr
	}
	return d, err
}

// answer is what a script answered.
type answer struct {
	status string
	ended  []revocation
	rest   []any
}

// revocation is one session a script ended, as published.
type revocation struct {
	ID    string  `json:"id"`
	Until float64 `json:"u"` // Unix ms; Lua's JSON has numbers only
}

// eval runs script s with the common arguments (now, in Unix ms, then
// args), bounded by Timeout. Sessions it ended go into the Revoked set at
// once. A status other than ok, rotated or retry is the matching error.
func (r *Redis) eval(ctx context.Context, op string, s *redis.Script, now int64, args ...any) (answer, error) {
	all := append([]any{r.base, now, r.channel, r.opts.revokeFor.Milliseconds()}, args...)
	tctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	res, err := s.Run(tctx, r.client, []string{r.base + "live"}, all...).Slice()
	if err != nil {
		if ctx.Err() == nil {
			r.setUp(false, err)
		}
		return answer{}, fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	r.setUp(true, nil)
	var ans answer
	var ended string
	if len(res) >= 2 {
		ans.status, _ = res[0].(string)
		ended, _ = res[1].(string)
		ans.rest = res[2:]
	}
	if ended != "" {
		if err := json.Unmarshal([]byte(ended), &ans.ended); err != nil {
			return answer{}, fmt.Errorf("%w: %s: ended sessions: %w", ErrUnavailable, op, err)
		}
		r.revoked.add(entries(ans.ended))
	}
	switch ans.status {
	case "ok", "rotated", "retry":
		return ans, nil
	case "notfound":
		return ans, ErrNotFound
	case "revoked":
		return ans, ErrRevoked
	case "reused":
		return ans, ErrReused
	case "wrongclient":
		return ans, ErrWrongClient
	case "limit":
		return ans, ErrLimitReached
	case "exists":
		return ans, fmt.Errorf("%w: %s: session id or handle in use", ErrInvalidArgument, op)
	case "devexists":
		return ans, fmt.Errorf("%w: %s: the device code is in use", ErrInvalidArgument, op)
	case "codeinuse":
		return ans, fmt.Errorf("%w: %s: %w", ErrInvalidArgument, op, ErrUserCodeInUse)
	case "decided":
		return ans, ErrDeviceDecided
	case "pending":
		return ans, ErrAuthorizationPending
	case "slowdown":
		return ans, ErrSlowDown
	case "denied":
		return ans, ErrAccessDenied
	case "expired":
		return ans, ErrDeviceExpired
	}
	return ans, fmt.Errorf("%w: %s: answered %v", ErrUnavailable, op, res)
}

// entries returns revocations as Revoked.add takes them.
func entries(rs []revocation) map[string]int64 {
	m := make(map[string]int64, len(rs))
	for _, e := range rs {
		m[e.ID] = max(m[e.ID], int64(math.Round(e.Until)))
	}
	return m
}

// session reads the session view at a.rest[i].
func (a answer) session(i int) (Session, error) {
	var f [10]string
	var ms [3]int64
	if err := a.view(i, "session", f[:], 7, ms[:]); err != nil {
		return Session{}, err
	}
	return Session{ID: f[0], UserID: f[1], ClientID: f[2], Profile: f[3], Scope: f[4], Role: f[5], PasswordStamp: f[6],
		Created: time.UnixMilli(ms[0]), Refreshed: time.UnixMilli(ms[1]), Expires: time.UnixMilli(ms[2])}, nil
}

// device reads the device request view at a.rest[i].
func (a answer) device(i int) (DeviceCode, error) {
	var f [10]string
	var ms [3]int64
	if err := a.view(i, "device request", f[:], 2, ms[:]); err != nil {
		return DeviceCode{}, err
	}
	return DeviceCode{ClientID: f[0], Scope: f[1], Created: time.UnixMilli(ms[0]), Expires: time.UnixMilli(ms[1]),
		Interval: time.Duration(ms[2]) * time.Millisecond, Status: DeviceStatus(f[5]), UserID: f[6], Profile: f[7],
		DeviceName: f[8], UserCode: f[9]}, nil
}

// view reads the flat view of a what at a.rest[i] — exactly len(f)
// strings — into f, and the integers (Unix milliseconds or a duration in
// milliseconds) from f[at] on into ms.
func (a answer) view(i int, what string, f []string, at int, ms []int64) error {
	var v []any
	if i < len(a.rest) {
		v, _ = a.rest[i].([]any)
	}
	if len(v) != len(f) {
		return fmt.Errorf("%w: a %s of %d fields", ErrUnavailable, what, len(v))
	}
	for j := range f {
		var ok bool
		if f[j], ok = v[j].(string); !ok {
			return fmt.Errorf("%w: a %s with field %d missing", ErrUnavailable, what, j)
		}
	}
	for j := range ms {
		var err error
		if ms[j], err = strconv.ParseInt(f[at+j], 10, 64); err != nil {
			return fmt.Errorf("%w: a %s time: %w", ErrUnavailable, what, err)
		}
	}
	return nil
}

// setUp records whether Redis answered, logging the changes.
func (r *Redis) setUp(ok bool, err error) {
	if r.up.Swap(ok) == ok {
		return
	}
	if ok {
		r.logger.Info("session store reachable")
	} else {
		r.logger.Warn("session store unreachable: sessions cannot be created, refreshed or ended", zap.Error(err))
	}
}

// pingEvery is how often Run checks Redis's health.
func (r *Redis) pingEvery() time.Duration { return min(maxPingEvery, r.cfg.ResyncInterval) }

// Run keeps the Revoked set current until ctx is done: it subscribes to
// the revocation channel, reloads the whole set on every (re)connect and
// every ResyncInterval, and checks Redis's health with PING. When Redis
// goes away it reconnects, with backoff, and service resumes without a
// restart. It returns nil when ctx is done.
func (r *Redis) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("session: Run is already running")
	}
	defer r.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.health(ctx) })

	var backoff time.Duration
	for {
		wasUp, err := r.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		// The first failure is news; the retries while Redis stays away
		// are not.
		level := zap.DebugLevel
		if wasUp || backoff == 0 {
			backoff, level = 0, zap.WarnLevel
		}
		backoff = min(max(2*backoff, minBackoff), max(min(maxBackoff, r.cfg.ResyncInterval), minBackoff))
		if ce := r.logger.Check(level, "revocation feed lost; reconnecting"); ce != nil {
			ce.Write(zap.Error(err), zap.Duration("retry_in", backoff))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// health pings Redis every pingEvery, until ctx is done.
func (r *Redis) health(ctx context.Context) {
	t := time.NewTicker(r.pingEvery())
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		err := r.client.Ping(pctx).Err()
		cancel()
		if ctx.Err() != nil {
			return
		}
		r.setUp(err == nil, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// follow subscribes to the revocation channel, reloads the revoked set,
// then applies each message and reloads every ResyncInterval until the
// subscription fails or ctx is done. wasUp reports whether it got as far
// as the first reload.
func (r *Redis) follow(ctx context.Context) (wasUp bool, err error) {
	ps := r.client.Subscribe(ctx)
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { ps.Close() }) // ends a blocked receive
	defer stop()

	sctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	err = ps.Subscribe(sctx, r.channel)
	cancel()
	if err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	msg, err := ps.ReceiveTimeout(ctx, r.cfg.Timeout)
	if err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	if _, ok := msg.(*redis.Subscription); !ok {
		return false, fmt.Errorf("subscribe: answered %T", msg)
	}
	// Subscribed first, reloaded second: a revocation published between
	// the two is in both, and none is in neither.
	if err := r.resync(ctx); err != nil {
		return false, err
	}
	r.subscribed.Store(true)
	defer r.subscribed.Store(false)

	nextResync := time.Now().Add(r.cfg.ResyncInterval)
	heard := time.Now()  // when the subscription last answered
	var pinged time.Time // when a PING went unanswered since, or zero
	for {
		now := time.Now()
		if !now.Before(nextResync) {
			if err := r.resync(ctx); err != nil {
				return true, err
			}
			nextResync = time.Now().Add(r.cfg.ResyncInterval)
		}
		if pinged.IsZero() && now.Sub(heard) >= r.pingEvery() {
			if err := ps.Ping(ctx); err != nil {
				return true, fmt.Errorf("ping the subscription: %w", err)
			}
			pinged = now
		}
		if !pinged.IsZero() && now.Sub(pinged) >= r.cfg.Timeout {
			return true, errors.New("the subscription did not answer PING")
		}
		wake := heard.Add(r.pingEvery())
		if !pinged.IsZero() {
			wake = pinged.Add(r.cfg.Timeout)
		}
		if nextResync.Before(wake) {
			wake = nextResync
		}
		msg, err := ps.ReceiveTimeout(ctx, max(time.Until(wake), time.Millisecond))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				continue
			}
			return true, fmt.Errorf("receive: %w", err)
		}
		heard, pinged = time.Now(), time.Time{}
		if m, ok := msg.(*redis.Message); ok {
			var rs []revocation
			if err := json.Unmarshal([]byte(m.Payload), &rs); err != nil {
				r.logger.Warn("revocation message not understood", zap.Error(err))
				continue
			}
			r.revoked.add(entries(rs))
		}
	}
}

// resync reloads the revoked set in full, and confirms it complete as of
// the start of the reload.
func (r *Redis) resync(ctx context.Context) error {
	start := r.opts.now()
	rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	zs, err := r.client.ZRangeByScoreWithScores(rctx, r.base+"revoked", &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(start.UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		r.setUp(false, err)
		return fmt.Errorf("reload the revoked set: %w", err)
	}
	r.setUp(true, nil)
	m := make(map[string]int64, len(zs))
	for _, z := range zs {
		id, _ := z.Member.(string)
		m[id] = int64(z.Score)
	}
	r.revoked.add(m)
	r.revoked.confirm(start)
	return nil
}
