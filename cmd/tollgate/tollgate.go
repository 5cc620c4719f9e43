package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/issuer"
	"github.com/tollgate/tollgate/limit"
	"github.com/tollgate/tollgate/metrics"
	"github.com/tollgate/tollgate/proxy"
	"github.com/tollgate/tollgate/session"
	"github.com/tollgate/tollgate/tracing"
	"github.com/tollgate/tollgate/verifier"
)

// Main is the running gateway: it owns the listeners, the servers and every
// background goroutine. End-to-end tests start it on :0 ports.
type Main struct {
	cfg       *Config
	logger    *zap.Logger
	metrics   *metrics.Metrics
	verifier  *verifier.Verifier
	keys      *issuer.Keys    // nil without token endpoints
	issuer    *issuer.Issuer  // nil without token endpoints
	users     *identity.Users // the users file; nil without one
	userStore issuer.Users    // the password backend: users file or legacy
	finder    identity.Finder // how exchanged identities map to users
	public    *http.Server
	admin     *http.Server
	// runners are the background loops Run starts and Close stops; checks
	// are what /readyz asks. Both are registered by NewMain as it builds
	// the parts that need them.
	runners []runner
	checks  []readiness
	// store keeps sessions (nil: stateless); redis is the same store when
	// it is Redis.
	store sessionStore
	redis *session.Redis
	// tracer records spans when an OTLP exporter is configured; trace
	// context is propagated either way.
	tracer *tracing.Tracer
	// warnings are what an operator should know about the configuration:
	// check-config prints them, serve logs them.
	warnings []string

	publicLn, adminLn net.Listener
	// conns tracks the public listener's connections, for the hijacked
	// ones http.Server.Shutdown does not wait for.
	conns *connTracker
	// draining is set when shutdown begins; /readyz fails from then on.
	draining atomic.Bool
	// cancel stops the background goroutines started by Run.
	cancel context.CancelFunc
	// bg tracks the background goroutines and the servers' Serve loops.
	bg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	// now is the clock of the verifier and the token endpoints.
	now func() time.Time
	// spanExporter, if set, replaces the configured exporter (tests).
	spanExporter sdktrace.SpanExporter
	// wrapUpstream, if set, wraps the upstream transport (tests).
	wrapUpstream func(http.RoundTripper) http.RoundTripper
}

// runner is a background loop owned by Main.
type runner struct {
	name string
	run  func(ctx context.Context) error
}

// readiness is one condition of /readyz: ready reports whether the part
// named can serve.
type readiness struct {
	name  string
	ready func() bool
}

// addRunner registers a background loop for Run.
func (m *Main) addRunner(name string, run func(ctx context.Context) error) {
	m.runners = append(m.runners, runner{name, run})
}

// addCheck registers a readiness condition for /readyz.
func (m *Main) addCheck(name string, ready func() bool) {
	m.checks = append(m.checks, readiness{name, ready})
}

// mainOption configures optional Main behaviour (tests).
type mainOption func(*Main)

// withClock sets the clock of token verification and minting.
func withClock(now func() time.Time) mainOption { return func(m *Main) { m.now = now } }

// withUpstreamTransport wraps the proxy's upstream transport.
func withUpstreamTransport(wrap func(http.RoundTripper) http.RoundTripper) mainOption {
	return func(m *Main) { m.wrapUpstream = wrap }
}

// withSpanExporter records every span into exp, synchronously, whatever
// the OTEL_* variables say (tests).
func withSpanExporter(exp sdktrace.SpanExporter) mainOption {
	return func(m *Main) { m.spanExporter = exp }
}

// NewMain builds every part of the gateway from cfg without listening: key
// files are read, routes and header mappings checked. Every problem is
// reported at once. check-config stops here.
func NewMain(cfg *Config, logger *zap.Logger, opts ...mainOption) (*Main, error) {
	m := &Main{cfg: cfg, logger: logger, metrics: metrics.New(buildInfo()), now: time.Now}
	for _, o := range opts {
		o(m)
	}
	var errs []error
	tcfg, err := tracingConfig(context.Background(), cfg.otel, buildInfo().Version, cfg.TraceUserID)
	if err != nil {
		errs = append(errs, err)
	}
	if m.spanExporter != nil {
		tcfg.Exporter, tcfg.Synchronous = m.spanExporter, true
	}
	m.tracer = tracing.New(tcfg)
	vc := cfg.verifierConfig()
	if cfg.SigningKeysDir != "" {
		keys, err := issuer.LoadKeys(issuer.KeysConfig{Dir: cfg.SigningKeysDir, PollInterval: cfg.ReloadInterval}, logger,
			func(err error) {
				m.metrics.Reloaded("signing_keys", err)
				if m.keys != nil {
					m.metrics.KeysLoaded(context.Background(), "self", m.keys.Len())
				}
				if m.verifier != nil {
					// A removed key's tokens must stop verifying now — also
					// when the last key went and the reload counts as failed.
					m.verifier.KeysChanged()
				}
			})
		if err != nil {
			errs = append(errs, err)
		}
		var err2 error
		m.userStore, m.finder, m.users, err2 = m.buildUsers(cfg, logger)
		if err2 != nil {
			errs = append(errs, err2)
		}
		m.keys = keys
		if keys != nil {
			// Self-issued tokens verify against the in-process key set: those
			// of the public URL and of every configured realm.
			for _, iss := range issuer.SelfIssuers(cfg.PublicURL, cfg.File.Realms) {
				vc.Issuers = append(vc.Issuers, verifier.IssuerConfig{
					Issuer: iss, Audiences: cfg.selfAudiences(), Algorithms: issuer.SelfAlgorithms(),
					Sources: []verifier.KeySource{keys}, MaxLifetime: cfg.selfMaxLifetime(),
					// HS256 tokens are capped to their client's scopes and roles:
					// every holder of the legacy secret can forge them.
					Constrain: func(tok *verifier.Token) error {
						if m.issuer == nil {
							return nil
						}
						return m.issuer.ConstrainHMAC(tok)
					},
				})
			}
			m.metrics.KeysLoaded(context.Background(), "self", keys.Len())
		}
	}
	v, err := verifier.New(vc, logger, verifier.WithClock(m.now), verifier.WithObserver(m.metrics),
		verifier.WithHTTPClient(&http.Client{Transport: &tracing.Transport{Tracer: m.tracer, Name: "jwks"}}))
	if err != nil {
		errs = append(errs, err)
	}
	m.verifier = v
	if v != nil {
		m.metrics.TokenCache(func() (uint64, uint64, uint64, int, int) {
			st := v.CacheStats()
			return st.Hits, st.Misses, st.Evictions, st.Size, st.OffHeapBytes
		})
		m.addRunner("key refresh", v.Run)
		m.addCheck("keys", v.Ready)
	}
	if m.keys != nil {
		m.addRunner("signing keys reload", m.keys.Run)
	}
	if m.users != nil {
		m.addRunner("users file reload", m.users.Run)
	}
	popts := []proxy.Option{proxy.WithObserver(m.metrics)}
	if m.wrapUpstream != nil {
		popts = append(popts, proxy.WrapTransport(m.wrapUpstream))
	}
	store, redis, err := openStore(cfg, logger, m.now, session.WithObserver(m.metrics))
	if err != nil {
		errs = append(errs, err)
	}
	m.store, m.redis = store, redis
	if store != nil {
		rev := store.Revoked()
		popts = append(popts, proxy.WithSessionCheck(&sessionGuard{revoked: rev, issuers: issuer.SelfIssuers(cfg.PublicURL, cfg.File.Realms),
			maxStale: cfg.RevocationMaxStale, now: m.now}))
		up := func() bool { return true }
		if redis != nil {
			up = redis.Up
			m.addRunner("session store", redis.Run)
		}
		m.metrics.SessionStore(up, func() (int, error) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return store.Count(ctx)
		}, rev.Len, rev.Confirmed)
	}
	p, err := proxy.New(cfg.proxyConfig(), v, logger, popts...)
	if err != nil {
		errs = append(errs, err)
	}
	var iss *issuer.Issuer
	if cfg.SigningKeysDir != "" {
		opts := []issuer.Option{issuer.WithClock(m.now), issuer.WithObserver(m.metrics), issuer.WithLoginLimits(m.loginLimits(cfg))}
		if m.store != nil {
			opts = append(opts, issuer.WithSessionStore(m.store, cfg.storeConfig(), m.metrics))
			dev, err := m.deviceOption(cfg)
			if err != nil {
				errs = append(errs, err)
			} else {
				opts = append(opts, dev)
			}
		} else {
			m.warnings = append(m.warnings, "device sign-in (RFC 8628) is off: its codes need a session store (TOLLGATE_SESSION_STORE)")
		}
		exOpts, err := m.buildExchanges(cfg, logger)
		if err != nil {
			errs = append(errs, err)
		}
		// Built even when the users or the verifier failed, to check its
		// own configuration too; it is used only if nothing failed.
		if m.keys != nil {
			if iss, err = issuer.New(cfg.issuerConfig(), m.keys, m.userStore, v, logger, append(opts, exOpts...)...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		m.tracer.Shutdown(context.Background())
		return nil, err
	}
	m.issuer = iss
	// The counters alerts watch start at zero for what the configuration
	// names, so that increase() sees their first event.
	subjects := metrics.Subjects{TokenEndpoints: iss != nil}
	for _, u := range cfg.proxyConfig().Upstreams {
		subjects.Upstreams = append(subjects.Upstreams, u.Name)
	}
	for _, ic := range vc.Issuers {
		subjects.JWKSSources = append(subjects.JWKSSources, ic.JWKSURLs...)
	}
	m.metrics.Declare(subjects)
	if iss != nil {
		m.warnings = append(m.warnings, iss.Warnings()...)
	}
	if m.users != nil {
		m.warnings = append(m.warnings, m.users.HashWarnings()...)
	}
	var public http.Handler = p
	if iss != nil {
		// Token endpoints in process, everything else to the proxy.
		if public, err = edge.NewDispatch(iss.Endpoints(), p); err != nil {
			m.tracer.Shutdown(context.Background())
			return nil, err
		}
	}
	m.public = &http.Server{
		Handler:           edge.New(public, logger, m.metrics, edge.WithBodyTimeouts(cfg.BodyIdleTimeout, cfg.BodyMinRate), edge.WithTracer(m.tracer)),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(logger.Named("http")),
	}
	m.admin = &http.Server{
		Handler:           m.adminHandler(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(logger.Named("admin")),
	}
	return m, nil
}

// Run opens both listeners, starts serving and the background key refresh,
// and returns. ctx bounds the background work; Close stops everything.
func (m *Main) Run(ctx context.Context) error {
	var err error
	if m.publicLn == nil { // tests and the demo may listen first, to learn the address
		if m.publicLn, err = net.Listen("tcp", m.cfg.Listen); err != nil {
			return fmt.Errorf("public listener: %w", err)
		}
	}
	if m.adminLn, err = net.Listen("tcp", m.cfg.AdminListen); err != nil {
		m.publicLn.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	ctx, m.cancel = context.WithCancel(ctx)
	for _, r := range m.runners {
		m.bg.Go(func() {
			if err := r.run(ctx); err != nil {
				m.logger.Error("background loop stopped", zap.String("loop", r.name), zap.Error(err))
			}
		})
	}
	m.conns = newConnTracker(m.publicLn)
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{m.public, m.conns}, {m.admin, m.adminLn}} {
		m.bg.Go(func() {
			if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
				m.logger.Error("server stopped", zap.String("addr", s.ln.Addr().String()), zap.Error(err))
			}
		})
	}
	m.logger.Info("tollgate listening",
		zap.String("public", m.publicLn.Addr().String()),
		zap.String("admin", m.adminLn.Addr().String()))
	return nil
}

// PublicAddr is the public listener's address once Run has returned.
func (m *Main) PublicAddr() string { return m.publicLn.Addr().String() }

// AdminAddr is the admin listener's address once Run has returned.
func (m *Main) AdminAddr() string { return m.adminLn.Addr().String() }

// Close shuts down gracefully: /readyz fails at once so load balancers
// stop routing here, then after ShutdownDelay the public listener stops
// accepting and in-flight requests get up to DrainTimeout to finish.
// Hijacked connections (WebSockets and other upgrades) get the same
// window to close by themselves; those still open at its end are cut.
func (m *Main) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.shutdown() })
	return m.closeErr
}

func (m *Main) shutdown() error {
	m.draining.Store(true)
	if m.publicLn == nil { // never started
		return nil
	}
	m.logger.Info("shutting down", zap.Duration("delay", m.cfg.ShutdownDelay), zap.Duration("drain_timeout", m.cfg.DrainTimeout))
	if m.cfg.ShutdownDelay > 0 {
		t := time.NewTimer(m.cfg.ShutdownDelay)
		<-t.C
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.DrainTimeout)
	defer cancel()
	var errs []error
	if err := m.public.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("drain public listener: %w", err))
		m.public.Close()
	}
	// Shutdown has closed every connection but the hijacked ones, which it
	// forgets; they may run until the same deadline.
	if n := m.conns.open(); n > 0 {
		m.logger.Info("waiting for hijacked connections to close", zap.Int("connections", n))
	}
	if cut := m.conns.drain(ctx); cut > 0 {
		m.logger.Warn("hijacked connections cut at the drain timeout", zap.Int("connections", cut))
	}
	if err := m.admin.Shutdown(ctx); err != nil {
		m.admin.Close()
	}
	m.cancel()
	m.bg.Wait()
	if m.redis != nil {
		m.redis.Close()
	}
	// The spans still queued go out, within a bound of their own: the
	// drain may have used the shared one up.
	flush, cancelFlush := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelFlush()
	if err := m.tracer.Shutdown(flush); err != nil {
		m.logger.Warn("exporting the last spans failed", zap.Error(err))
	}
	m.logger.Info("stopped")
	return errors.Join(errs...)
}

// Reload re-reads the users file and the signing keys directory now, as
// their polling does when they change; a broken new version is refused and
// the last good one keeps serving. The environment and the YAML file are
// not re-read: changing them needs a restart. why, logged first, says what
// asked for the reload. Each part's outcome is logged and the errors are
// returned.
func (m *Main) Reload(why string) error {
	m.logger.Info(why, zap.String("not_reloaded", "environment variables and the YAML file: restart to apply changes to them"))
	var errs []error
	if m.users != nil {
		if err := m.users.Reload(); err != nil {
			errs = append(errs, err)
			m.logger.Error("users file reload failed; the last good version keeps serving", zap.String("path", m.cfg.UsersFile), zap.Error(err))
		} else {
			m.logger.Info("users file reloaded", zap.String("path", m.cfg.UsersFile), zap.Int("users", m.users.Len()))
		}
	}
	if m.keys != nil {
		if err := m.keys.Reload(); err != nil {
			errs = append(errs, err)
			m.logger.Error("signing keys reload failed; the last good set keeps serving", zap.String("dir", m.cfg.SigningKeysDir), zap.Error(err))
		} else {
			m.logger.Info("signing keys reloaded", zap.String("dir", m.cfg.SigningKeysDir), zap.Int("keys", m.keys.Len()))
		}
	}
	if m.users == nil && m.keys == nil {
		m.logger.Info("nothing to reload: no users file and no signing keys directory")
	}
	return errors.Join(errs...)
}

// deviceOption turns the device sign-in on, its codes in the session
// store and its wrong-code limit per client IP shared like the login
// limits.
func (m *Main) deviceOption(cfg *Config) (issuer.Option, error) {
	dc := issuer.DeviceConfig{CodeTTL: cfg.DeviceCodeTTL, Interval: cfg.DeviceInterval, PageURL: cfg.DevicePageURL,
		Product: cfg.DeviceProduct, Texts: cfg.File.DeviceTexts, Lang: cfg.File.DeviceLang}
	if cfg.DeviceLogoFile != "" {
		logo, err := os.ReadFile(cfg.DeviceLogoFile)
		if err != nil {
			return nil, fmt.Errorf("TOLLGATE_DEVICE_LOGO_FILE: %w", err)
		}
		dc.LogoSVG = logo
	}
	var guesses limit.Limiter
	if cfg.DeviceCodeGuesses > 0 {
		lc := limit.Config{Burst: cfg.DeviceCodeGuesses, Every: time.Hour / time.Duration(cfg.DeviceCodeGuesses)}
		if m.redis != nil {
			guesses = m.redis.Limiter(lc, "device_codes")
		} else {
			guesses = limit.New(lc, m.now)
		}
	}
	codes, ok := m.store.(issuer.DeviceCodes)
	if !ok {
		return nil, errors.New("the session store keeps no device codes")
	}
	return issuer.WithDevice(codes, dc, guesses), nil
}

// loginLimits builds the brute-force limits of the password grant.
// With Redis they count across every replica.
func (m *Main) loginLimits(cfg *Config) issuer.LoginLimits {
	build := func(lc limit.Config, name string) limit.Limiter {
		if m.redis != nil {
			return m.redis.Limiter(lc, name)
		}
		return limit.New(lc, m.now)
	}
	var l issuer.LoginLimits
	if cfg.LoginAttemptsPerUser > 0 {
		l.PerUser = build(limit.Config{Burst: cfg.LoginAttemptsPerUser, Every: cfg.LoginUserRefill}, "login_user")
	}
	if cfg.LoginAttemptsPerIP > 0 {
		l.PerIP = build(limit.Config{Burst: cfg.LoginAttemptsPerIP, Every: cfg.LoginIPRefill}, "login_ip")
	}
	return l
}

// buildUsers builds the password backend: the users file, or the legacy
// login endpoint.
func (m *Main) buildUsers(cfg *Config, logger *zap.Logger) (issuer.Users, identity.Finder, *identity.Users, error) {
	backendOpts := []identity.BackendOption{identity.WithBackendObserver(m.metrics), identity.WithBackendClock(m.now),
		identity.WithBackendTransport(&tracing.Transport{Tracer: m.tracer, Name: "backend"})}
	if ll := cfg.File.LegacyLogin; cfg.File.PasswordBackend == "legacy" && ll != nil {
		l, err := identity.NewLegacy(identity.LegacyConfig{
			LoginURL: ll.LoginURL, Format: ll.Format, UsernameField: ll.UsernameField, PasswordField: ll.PasswordField,
			LookupURL: ll.LookupURL, UserIDPath: ll.UserIDPath, UsernamePath: ll.UsernamePath, EmailPath: ll.EmailPath,
			RolePath: ll.RolePath, PartnerPath: ll.PartnerPath, ProfilesPath: ll.ProfilesPath, ClaimPaths: ll.ClaimPaths,
			Timeout: ll.Timeout,
		}, logger, backendOpts...)
		if err != nil {
			return nil, nil, nil, err
		}
		return l, l, nil, nil
	}
	users, err := identity.New(identity.Config{Path: cfg.UsersFile, PollInterval: cfg.ReloadInterval}, logger,
		identity.WithOnReload(func(err error) { m.metrics.Reloaded("users", err) }))
	if err != nil {
		return nil, nil, nil, err
	}
	return users, users, users, nil
}

// buildExchanges builds the external-token and cookie exchanges that are
// configured.
func (m *Main) buildExchanges(cfg *Config, logger *zap.Logger) ([]issuer.Option, error) {
	backendOpts := []identity.BackendOption{identity.WithBackendObserver(m.metrics), identity.WithBackendClock(m.now)}
	var opts []issuer.Option
	var errs []error
	if len(cfg.File.ExternalServices) > 0 {
		var services []identity.Service
		for _, s := range cfg.File.ExternalServices {
			services = append(services, identity.Service{
				Name: s.Name, IntrospectionURL: s.IntrospectionURL, ClientID: s.ClientID, ClientSecret: s.ClientSecret,
				UserinfoURL: s.UserinfoURL, Claim: s.Claim, UserField: s.UserField, CacheTTL: s.CacheTTL, Timeout: s.Timeout,
				AllowedClients: s.AllowedClients, AllowedAudiences: s.AllowedAudiences,
			})
		}
		x, err := identity.NewExternal(services, m.finder, logger, backendOpts...)
		if err != nil {
			errs = append(errs, err)
		} else {
			opts = append(opts, issuer.WithExternal(x))
		}
	}
	if ce := cfg.File.CookieExchange; ce != nil {
		c, err := identity.NewCookieSessions(identity.CookieConfig{
			URL: ce.URL, Cookies: ce.Cookies, UserIDPath: ce.UserIDPath, Timeout: ce.Timeout,
		}, logger, backendOpts...)
		if err != nil {
			errs = append(errs, err)
		} else {
			opts = append(opts, issuer.WithLegacySessions(c))
		}
	}
	return opts, errors.Join(errs...)
}

func (m *Main) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.metrics.Handler())
	if m.cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	// /readyz fails while draining and until every part is ready (remote
	// keys fetched once). Keys that went stale later do not fail it — every
	// replica would go unready at once, its own outage — but its body names
	// them, as does tollgate_jwks_stale.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		status, code := "ready", http.StatusOK
		if m.draining.Load() {
			status, code = "draining", http.StatusServiceUnavailable
		} else {
			for _, c := range m.checks {
				if !c.ready() {
					status, code = "waiting for "+c.name, http.StatusServiceUnavailable
					break
				}
			}
		}
		body := map[string]any{"status": status}
		if keys := m.verifier.Status(); len(keys) > 0 {
			body["keys"] = keys
		}
		writeJSON(w, code, body)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// version is stamped by the release build (-ldflags "-X main.version=…");
// it is never written at run time.
var version string

// buildInfo reads the version and VCS revision stamped by the Go toolchain.
func buildInfo() metrics.BuildInfo {
	info := metrics.BuildInfo{Version: "(devel)", Revision: "unknown", GoVersion: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	info.GoVersion = bi.GoVersion
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	if version != "" {
		info.Version = version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			info.Revision = s.Value
		}
	}
	return info
}
