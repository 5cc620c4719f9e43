package metrics

import (
	"context"
	"errors"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tollgate/tollgate/session"
	"github.com/tollgate/tollgate/tracing"
)

// BuildInfo identifies the running binary.
type BuildInfo struct {
	Version   string
	Revision  string
	GoVersion string
}

// Metrics holds tollgate's registry and collectors. Its methods satisfy
// the observer interfaces of proxy, verifier and issuer.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	inFlight       prometheus.Gauge
	auth           *prometheus.CounterVec
	upstream       *prometheus.CounterVec
	upstreamTime   *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	issued         *prometheus.CounterVec
	tokenErrors    *prometheus.CounterVec
	loginFailures  *prometheus.CounterVec
	keysLoaded     *prometheus.GaugeVec
	jwksFetches    *prometheus.CounterVec
	kidSuppressed  *prometheus.CounterVec
	jwksStale      *prometheus.GaugeVec
	reloads        *prometheus.CounterVec
	backend        *prometheus.CounterVec
	backendTime    *prometheus.HistogramVec
	sessionEvents  *prometheus.CounterVec
	deviceEvents   *prometheus.CounterVec
	revocations    *prometheus.CounterVec
	storeTime      *prometheus.HistogramVec
	storeErrors    *prometheus.CounterVec
	// Per-request children, resolved once per label set.
	requestChildren  *children[requestKey, countAndTime]
	authChildren     *children[authKey, prometheus.Counter]
	upstreamChildren *children[upstreamKey, countAndTime]

	jwksMu          sync.Mutex
	jwksLastSuccess map[string]time.Time // guarded by jwksMu
}

// durationBuckets are the classic buckets, next to the native histogram.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func histogram(name, help string, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: name, Help: help, Buckets: durationBuckets,
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
	}, labels)
}

func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// New returns Metrics with a fresh registry holding the Go and process
// collectors, tollgate_build_info and every tollgate collector.
func New(info BuildInfo) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		now: time.Now,
		requests: counter("tollgate_http_requests_total",
			"Requests answered on the public listener, by route, method and status code.", "route", "method", "code"),
		duration: histogram("tollgate_http_request_duration_seconds",
			"Time to answer a request on the public listener, by route.", "route"),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tollgate_http_requests_in_flight",
			Help: "Requests being served on the public listener."}),
		auth: counter("tollgate_auth_decisions_total",
			"Authentication decisions by route, result (allowed or denied) and reason.", "route", "result", "reason"),
		upstream: counter("tollgate_upstream_requests_total",
			"Upstream round trips by upstream and status code (0 when none was received).", "upstream", "code"),
		upstreamTime: histogram("tollgate_upstream_duration_seconds",
			"Time until an upstream's response headers, by upstream.", "upstream"),
		upstreamErrors: counter("tollgate_upstream_errors_total",
			"Failed upstream round trips by upstream and kind (refused, timeout, reset, other).", "upstream", "kind"),
		issued: counter("tollgate_tokens_issued_total",
			"Token pairs issued by grant, client (registered clients only) and dialect.", "grant", "client", "dialect"),
		tokenErrors: counter("tollgate_token_errors_total",
			"Token requests refused, by grant and RFC 6749 error code.", "grant", "error"),
		loginFailures: counter("tollgate_login_failures_total",
			"Failed logins by reason (invalid_credentials, partner_mismatch, throttled_user, throttled_ip, queue_full).", "reason"),
		keysLoaded: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tollgate_keys_loaded",
			Help: "Verification keys held per key source."}, []string{"source"}),
		jwksFetches: counter("tollgate_jwks_fetches_total",
			"Remote JWKS fetches by source and result (success or error).", "source", "result"),
		kidSuppressed: counter("tollgate_jwks_unknown_kid_suppressed_total",
			"Unknown-kid refetches skipped because of the cooldown.", "source"),
		jwksStale: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tollgate_jwks_stale",
			Help: "1 while a remote JWKS's keys are past their maximum staleness and its tokens are refused, 0 after a successful fetch."},
			[]string{"source"}),
		reloads: counter("tollgate_reloads_total",
			"Reloads of the users file and the signing keys directory by what and result.", "what", "result"),
		backend: counter("tollgate_backend_requests_total",
			"Calls to identity backends (external OAuth servers, legacy system) by backend and result.", "backend", "result"),
		backendTime: histogram("tollgate_backend_duration_seconds",
			"Duration of calls to identity backends, by backend.", "backend"),
		sessionEvents: counter("tollgate_session_events_total",
			"Session events: created, rotated (a refresh), retried (a used refresh token within the reuse interval), reuse_detected.", "event"),
		deviceEvents: counter("tollgate_device_events_total",
			"Device sign-in (RFC 8628) events: issued, approved, denied, expired, slow_down, wrong_code.", "event"),
		revocations: counter("tollgate_sessions_revoked_total",
			"Sessions ended, by cause (logout, revoke, reuse, limit, password_change, operator).", "cause"),
		storeTime: histogram("tollgate_session_store_duration_seconds",
			"Duration of session store operations, by operation.", "op"),
		storeErrors: counter("tollgate_session_store_errors_total",
			"Failed session store operations, by operation.", "op"),
		jwksLastSuccess: map[string]time.Time{},
	}
	m.initChildren()
	// Known label values are exported at zero from the start (see
	// Subjects); these two are the same in every configuration.
	for _, what := range []string{"users", "signing_keys"} {
		for _, result := range []string{"success", "error"} {
			m.reloads.WithLabelValues(what, result)
		}
	}
	m.reg.MustRegister(
		// The default Go metrics, and the runtime's CPU classes: the
		// garbage collector's share of the CPU the process used
		// (go_cpu_classes_gc_total_cpu_seconds_total over _total less
		// _idle, estimates of one kind), which the load harness reports
		// per scenario and an operator sizes GOGC by.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/cpu/classes/(gc/total|total|idle):cpu-seconds$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.inFlight, m.auth, m.upstream, m.upstreamTime, m.upstreamErrors,
		m.issued, m.tokenErrors, m.loginFailures, m.keysLoaded, m.jwksFetches, m.kidSuppressed, m.jwksStale, m.reloads,
		m.backend, m.backendTime, m.sessionEvents, m.deviceEvents, m.revocations, m.storeTime, m.storeErrors,
		jwksAge{m},
	)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tollgate_build_info",
		Help: "Build information of the running tollgate binary; always 1.",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(info.Version, info.Revision, info.GoVersion).Set(1)
	m.reg.MustRegister(build)
	return m
}

// Subjects are the label values that configuration makes known. Declare
// exports their counters at zero from the start: a series that appears
// only with its first increment has no earlier sample, so increase() and
// rate() miss that first event, and an alert on it does not fire.
type Subjects struct {
	// Upstreams are the proxy's upstream names: upstream errors start at
	// zero for each kind (refused, timeout, reset, other).
	Upstreams []string
	// JWKSSources are the remote JWK Set URLs: their fetches start at zero
	// for each result, suppressed unknown-kid refetches at zero, their
	// staleness at 0, and their seconds since success count from the
	// declaration until a first fetch succeeds.
	JWKSSources []string
	// TokenEndpoints is set when tollgate serves the token endpoints:
	// login failures start at zero for each reason, and token errors for
	// the password and refresh grants at zero for tokenErrorCodes.
	TokenEndpoints bool
}

// upstreamErrorKinds are the kinds proxy.Observer reports.
var upstreamErrorKinds = []string{"refused", "timeout", "reset", "other"}

// loginFailureReasons are the reasons issuer.Observer reports: wrong
// credentials, an account not of the client's partner, the per-user and
// per-address login limits, and a full login queue.
var loginFailureReasons = []string{"invalid_credentials", "partner_mismatch", "throttled_user", "throttled_ip", "queue_full"}

// tokenErrorCodes are the codes token errors start at zero with, for the
// password and refresh_token grants: the client's mistakes (the RFC 6749
// codes a working client does not cause), rate limiting, and the
// gateway's own failures. Rarer pairs appear with their first event.
var tokenErrorCodes = []string{"invalid_request", "invalid_client", "invalid_grant", "too_many_requests", "temporarily_unavailable", "server_error"}

// Declare exports the counters of s at zero (see Subjects). Call it once
// the configuration is known, before traffic; values seen before keep
// their counts, and declaring one twice is harmless.
func (m *Metrics) Declare(s Subjects) {
	for _, u := range s.Upstreams {
		for _, kind := range upstreamErrorKinds {
			m.upstreamErrors.WithLabelValues(u, kind)
		}
	}
	for _, src := range s.JWKSSources {
		m.jwksFetches.WithLabelValues(src, "success")
		m.jwksFetches.WithLabelValues(src, "error")
		m.kidSuppressed.WithLabelValues(src)
		m.jwksStale.WithLabelValues(src)
		m.jwksMu.Lock()
		if _, ok := m.jwksLastSuccess[src]; !ok {
			m.jwksLastSuccess[src] = m.now()
		}
		m.jwksMu.Unlock()
	}
	if s.TokenEndpoints {
		for _, reason := range loginFailureReasons {
			m.loginFailures.WithLabelValues(reason)
		}
		for _, grant := range []string{"password", "refresh_token"} {
			for _, code := range tokenErrorCodes {
				m.tokenErrors.WithLabelValues(grant, code)
			}
		}
	}
}

// TokenCache exports the verified-token cache's counters, read at scrape
// time (the hot path only bumps atomics).
func (m *Metrics) TokenCache(stats func() (hits, misses, evictions uint64, size, offHeapBytes int)) {
	counter := func(name, help string, pick func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, pick)
	}
	m.reg.MustRegister(
		counter("tollgate_token_cache_hits_total", "Verified-token cache hits.", func() float64 { h, _, _, _, _ := stats(); return float64(h) }),
		counter("tollgate_token_cache_misses_total", "Verified-token cache misses (full verification).", func() float64 { _, mi, _, _, _ := stats(); return float64(mi) }),
		counter("tollgate_token_cache_evictions_total", "Entries evicted from the full verified-token cache.", func() float64 { _, _, e, _, _ := stats(); return float64(e) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tollgate_token_cache_entries", Help: "Tokens in the verified-token cache."},
			func() float64 { _, _, _, n, _ := stats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tollgate_token_cache_offheap_bytes",
			Help: "Memory of the verified-token cache's records outside the Go heap (not in go_memstats_*)."},
			func() float64 { _, _, _, _, b := stats(); return float64(b) }),
	)
}

// SessionEvent counts a session event (issuer.SessionObserver).
func (m *Metrics) SessionEvent(_ context.Context, event string) {
	m.sessionEvents.WithLabelValues(event).Inc()
}

// DeviceEvent counts a device sign-in event (issuer.SessionObserver).
func (m *Metrics) DeviceEvent(_ context.Context, event string) {
	m.deviceEvents.WithLabelValues(event).Inc()
}

// SessionsRevoked counts ended sessions by cause.
func (m *Metrics) SessionsRevoked(_ context.Context, cause string, n int) {
	m.revocations.WithLabelValues(cause).Add(float64(n))
}

// StoreCall records one session store operation (session.Observer).
func (m *Metrics) StoreCall(_ context.Context, op string, d time.Duration, err error) {
	m.storeTime.WithLabelValues(op).Observe(d.Seconds())
	// The store's other errors are answers (not found, pending, used):
	// only an unavailable store is a failure.
	if errors.Is(err, session.ErrUnavailable) {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

// SessionStore exports the store's state, read at scrape time: whether it
// answers, its live sessions (nil: not counted), and this replica's
// revoked-session set (its size, and when it was last known complete).
func (m *Metrics) SessionStore(up func() bool, active func() (int, error), revoked func() int, confirmed func() time.Time) {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	// Zero error counts are exposed from the start, so a rate() works
	// before the first failure.
	for _, op := range []string{"create", "rotate", "get", "lookup", "update", "revoke", "list", "count", "limit",
		"device_create", "device_get", "device_decide", "device_poll"} {
		m.storeErrors.WithLabelValues(op)
	}
	for _, event := range []string{"created", "rotated", "retried", "reuse_detected"} {
		m.sessionEvents.WithLabelValues(event)
	}
	for _, event := range []string{"issued", "approved", "denied", "expired", "slow_down", "wrong_code"} {
		m.deviceEvents.WithLabelValues(event)
	}
	for _, cause := range []string{"logout", "revoke", "reuse", "limit", "password_change", "operator"} {
		m.revocations.WithLabelValues(cause)
	}
	m.reg.MustRegister(
		gauge("tollgate_session_store_up", "1 while the session store answers.", func() float64 {
			if up() {
				return 1
			}
			return 0
		}),
		gauge("tollgate_revoked_sessions", "Revoked sessions this replica refuses tokens of.", func() float64 { return float64(revoked()) }),
		gauge("tollgate_revoked_set_age_seconds", "Seconds since this replica's revoked-session set was last known complete.",
			func() float64 { return m.now().Sub(confirmed()).Seconds() }),
	)
	if active != nil {
		m.reg.MustRegister(gauge("tollgate_sessions_active", "Live sessions in the store.", func() float64 {
			n, err := active()
			if err != nil {
				return math.NaN()
			}
			return float64(n)
		}))
	}
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// boundedMethod bounds the method label.
func boundedMethod(method string) string {
	switch method {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return method
	}
	return "OTHER"
}

type requestKey struct {
	route, method string
	code          int
}

// countAndTime is a counter child and the latency histogram child that
// goes with it.
type countAndTime struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

type authKey struct{ route, reason string }

type upstreamKey struct {
	upstream string
	code     int
}

// initChildren sets up the per-request children caches.
func (m *Metrics) initChildren() {
	m.requestChildren = newChildren(func(k requestKey) countAndTime {
		return countAndTime{
			count:    m.requests.WithLabelValues(k.route, k.method, strconv.Itoa(k.code)),
			duration: m.duration.WithLabelValues(k.route),
		}
	})
	m.authChildren = newChildren(func(k authKey) prometheus.Counter {
		result := "denied"
		if k.reason == "ok" || k.reason == "anonymous" {
			result = "allowed"
		}
		return m.auth.WithLabelValues(k.route, result, k.reason)
	})
	m.upstreamChildren = newChildren(func(k upstreamKey) countAndTime {
		return countAndTime{
			count:    m.upstream.WithLabelValues(k.upstream, strconv.Itoa(k.code)),
			duration: m.upstreamTime.WithLabelValues(k.upstream),
		}
	})
}

// RequestStarted counts a request in flight; RequestDone ends it. The
// request methods satisfy edge.Observer.
func (m *Metrics) RequestStarted(context.Context) { m.inFlight.Inc() }

// RequestDone records one answered request.
//
// A request whose trace is recorded leaves its trace ID on the latency
// histogram as an exemplar (OpenMetrics), so a slow bucket on a dashboard
// links to a trace; others cost nothing more.
func (m *Metrics) RequestDone(ctx context.Context, route, method string, code int, d time.Duration) {
	m.inFlight.Dec()
	if route == "" {
		route = "none"
	}
	c := m.requestChildren.get(requestKey{route: route, method: boundedMethod(method), code: code})
	c.count.Inc()
	observe(ctx, c.duration, d)
}

// observe records d in h, with the trace ID of ctx's span as an exemplar
// when that span is recorded.
func observe(ctx context.Context, h prometheus.Observer, d time.Duration) {
	if s := tracing.FromContext(ctx); s.Recorded() {
		if eo, ok := h.(prometheus.ExemplarObserver); ok {
			// A copy: the span's ID strings share memory that is reused.
			eo.ObserveWithExemplar(d.Seconds(), prometheus.Labels{"trace_id": strings.Clone(s.TraceID())})
			return
		}
	}
	h.Observe(d.Seconds())
}

// AuthDecision records one authentication outcome.
func (m *Metrics) AuthDecision(_ context.Context, route, reason string) {
	m.authChildren.get(authKey{route: route, reason: reason}).Inc()
}

// Upstream records one upstream round trip.
func (m *Metrics) Upstream(ctx context.Context, upstream string, code int, d time.Duration, kind string) {
	c := m.upstreamChildren.get(upstreamKey{upstream: upstream, code: code})
	c.count.Inc()
	observe(ctx, c.duration, d)
	if kind != "" {
		m.upstreamErrors.WithLabelValues(upstream, kind).Inc()
	}
}

// TokenIssued records a pair of tokens issued.
func (m *Metrics) TokenIssued(_ context.Context, grant, client, dialect string) {
	m.issued.WithLabelValues(grant, client, dialect).Inc()
}

// TokenError records a refused token request; a failed login also counts
// by reason.
func (m *Metrics) TokenError(_ context.Context, grant, code, loginFailure string) {
	m.tokenErrors.WithLabelValues(grant, code).Inc()
	if loginFailure != "" {
		m.loginFailures.WithLabelValues(loginFailure).Inc()
	}
}

// Reloaded records a reload of the users file or the keys directory.
func (m *Metrics) Reloaded(what string, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	m.reloads.WithLabelValues(what, result).Inc()
}

// BackendCall records one call to an identity backend.
func (m *Metrics) BackendCall(_ context.Context, backend string, d time.Duration, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	m.backend.WithLabelValues(backend, result).Inc()
	m.backendTime.WithLabelValues(backend).Observe(d.Seconds())
}

// JWKSFetch implements verifier.Observer.
func (m *Metrics) JWKSFetch(_ context.Context, source string, err error) {
	if err != nil {
		m.jwksFetches.WithLabelValues(source, "error").Inc()
		return
	}
	m.jwksFetches.WithLabelValues(source, "success").Inc()
	m.jwksMu.Lock()
	m.jwksLastSuccess[source] = m.now()
	m.jwksMu.Unlock()
}

// KeysLoaded implements verifier.Observer.
func (m *Metrics) KeysLoaded(_ context.Context, source string, n int) {
	m.keysLoaded.WithLabelValues(source).Set(float64(n))
}

// UnknownKIDSuppressed implements verifier.Observer.
func (m *Metrics) UnknownKIDSuppressed(_ context.Context, source string) {
	m.kidSuppressed.WithLabelValues(source).Inc()
}

// KeysStale implements verifier.Observer.
func (m *Metrics) KeysStale(_ context.Context, source string, stale bool) {
	v := 0.0
	if stale {
		v = 1
	}
	m.jwksStale.WithLabelValues(source).Set(v)
}

// jwksAge exports the seconds since each remote JWKS was last fetched
// successfully, computed at scrape time.
type jwksAge struct{ m *Metrics }

var jwksAgeDesc = prometheus.NewDesc("tollgate_jwks_seconds_since_success",
	"Seconds since the last successful fetch of each remote JWKS (since startup while none has succeeded).", []string{"source"}, nil)

func (j jwksAge) Describe(ch chan<- *prometheus.Desc) { ch <- jwksAgeDesc }

func (j jwksAge) Collect(ch chan<- prometheus.Metric) {
	j.m.jwksMu.Lock()
	defer j.m.jwksMu.Unlock()
	now := j.m.now()
	for src, t := range j.m.jwksLastSuccess {
		ch <- prometheus.MustNewConstMetric(jwksAgeDesc, prometheus.GaugeValue, now.Sub(t).Seconds(), src)
	}
}
