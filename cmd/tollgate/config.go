package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/httpurl"
	"github.com/tollgate/tollgate/issuer"
	"github.com/tollgate/tollgate/proxy"
	"github.com/tollgate/tollgate/verifier"
)

// maxTokenCacheSize caps TOLLGATE_TOKEN_CACHE_SIZE: ten million tokens
// are 4–10 GiB, past any replica's memory.
const maxTokenCacheSize = 10_000_000

// envPrefix is the prefix of every environment variable tollgate reads.
const envPrefix = "TOLLGATE_"

// Config is everything tollgate serve needs: the environment variables
// (prefix TOLLGATE_) plus the optional YAML file they may name. Only this
// package reads the environment; every other package gets a plain Config.
type Config struct {
	// Listen is the public listener address: proxy and token endpoints.
	Listen string `env:"LISTEN" envDefault:":8080"`
	// AdminListen serves /metrics, /healthz and /readyz.
	AdminListen string `env:"ADMIN_LISTEN" envDefault:":9090"`
	// UpstreamURL, when set, routes every path not matched by a YAML route
	// to this upstream (named "default") with auth required.
	UpstreamURL string `env:"UPSTREAM_URL"`
	// Issuer, Audience, VerifyKeys, JWKSURLs and Algorithms describe one
	// trusted issuer without a YAML file.
	Issuer     string   `env:"ISSUER"`
	Audience   []string `env:"AUDIENCE"`
	VerifyKeys []string `env:"VERIFY_KEYS"`
	JWKSURLs   []string `env:"JWKS_URLS"`
	Algorithms []string `env:"ALGORITHMS"`
	// IssuerMaxLifetime bounds exp − iat of that issuer's tokens; 0 means
	// 24h.
	IssuerMaxLifetime time.Duration `env:"ISSUER_MAX_LIFETIME"`
	// Leeway is the clock skew tolerated on exp/nbf/iat.
	Leeway time.Duration `env:"LEEWAY" envDefault:"60s"`
	// MaxTokenBytes bounds the length of a bearer token.
	MaxTokenBytes int `env:"MAX_TOKEN_BYTES" envDefault:"8192"`
	// TokenCacheSize bounds the verified-token cache in tokens (about
	// 0.35 KiB each for tollgate's own, most of it outside the Go heap, so
	// ~33 MiB at the default, a replica's share of a large fleet); 0 turns
	// the cache off, so every request verifies a signature.
	TokenCacheSize int `env:"TOKEN_CACHE_SIZE" envDefault:"100000"`
	// JWKSRefresh is the background refresh interval of remote JWKS.
	JWKSRefresh time.Duration `env:"JWKS_REFRESH" envDefault:"15m"`
	// JWKSMaxStale is how long cached remote keys keep serving while the
	// JWKS endpoint fails.
	JWKSMaxStale time.Duration `env:"JWKS_MAX_STALE" envDefault:"24h"`
	// JWKSLookupWait bounds how long a request with an unknown kid waits
	// for a JWKS fetch; JWKSTimeout bounds one fetch; JWKSCooldown is the
	// least time between fetches caused by unknown kids once
	// JWKSNewKIDFetches distinct new kids have each caused one in a refresh
	// cycle; JWKSRetryBackoff is the first wait before retrying a failed
	// fetch while no keys can be served (it doubles).
	JWKSLookupWait    time.Duration `env:"JWKS_LOOKUP_WAIT" envDefault:"1s"`
	JWKSTimeout       time.Duration `env:"JWKS_TIMEOUT" envDefault:"10s"`
	JWKSCooldown      time.Duration `env:"JWKS_COOLDOWN" envDefault:"5s"`
	JWKSNewKIDFetches int           `env:"JWKS_NEW_KID_FETCHES" envDefault:"32"`
	JWKSRetryBackoff  time.Duration `env:"JWKS_RETRY_BACKOFF" envDefault:"1s"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// LogFormat is json or console.
	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
	// PublicURL is tollgate's own public base URL: the iss of the tokens it
	// mints and the base of its discovery document.
	PublicURL string `env:"PUBLIC_URL"`
	// SigningKeysDir holds the PEM private keys tollgate signs with; setting
	// it turns the token endpoints on.
	SigningKeysDir string `env:"SIGNING_KEYS_DIR"`
	// UsersFile is the YAML users file the password grant checks.
	UsersFile string `env:"USERS_FILE"`
	// TokenAudience is the aud of minted access tokens.
	TokenAudience string `env:"TOKEN_AUDIENCE" envDefault:"tollgate"`
	// AccessTokenTTL and RefreshTokenTTL are the token lifetimes.
	AccessTokenTTL  time.Duration `env:"ACCESS_TOKEN_TTL" envDefault:"1h"`
	RefreshTokenTTL time.Duration `env:"REFRESH_TOKEN_TTL" envDefault:"720h"`
	// RefreshSigning is how stateless refresh tokens are signed: mac (a
	// MAC under a key derived from the signing key; a third of the CPU of
	// a refresh) or signature (as access tokens, what earlier versions
	// accept). Either is accepted.
	RefreshSigning string `env:"REFRESH_SIGNING" envDefault:"mac"`
	// ReloadInterval is how often the users file and the keys directory
	// are checked for changes.
	ReloadInterval time.Duration `env:"RELOAD_INTERVAL" envDefault:"5s"`
	// Pprof serves net/http/pprof on the admin listener. Off by default:
	// profiles reveal internals and cost CPU while taken.
	Pprof bool `env:"PPROF" envDefault:"false"`
	// ConfigFile names the optional YAML file.
	ConfigFile string `env:"CONFIG_FILE"`
	// UpstreamTimeout bounds the wait for an upstream's response headers
	// (504 after it).
	UpstreamTimeout time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"30s"`
	// UpstreamIdleConnsPerHost and UpstreamIdleConns size the keep-alive
	// pool to the upstreams: per upstream and overall. Go's default of 2
	// per host would make a busy proxy open and close a connection for
	// most requests.
	UpstreamIdleConnsPerHost int `env:"UPSTREAM_IDLE_CONNS_PER_HOST" envDefault:"64"`
	UpstreamIdleConns        int `env:"UPSTREAM_IDLE_CONNS" envDefault:"256"`
	// ReadHeaderTimeout and IdleTimeout protect the public listener from
	// slow clients. There is no overall read/write timeout, so that
	// streaming responses and WebSockets work.
	ReadHeaderTimeout time.Duration `env:"READ_HEADER_TIMEOUT" envDefault:"10s"`
	IdleTimeout       time.Duration `env:"IDLE_TIMEOUT" envDefault:"120s"`
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int `env:"MAX_HEADER_BYTES" envDefault:"65536"`
	// ShutdownDelay is how long /readyz fails before the listeners stop
	// accepting, so load balancers stop sending traffic first.
	ShutdownDelay time.Duration `env:"SHUTDOWN_DELAY" envDefault:"5s"`
	// DrainTimeout bounds how long in-flight requests may take to finish
	// on shutdown.
	DrainTimeout time.Duration `env:"DRAIN_TIMEOUT" envDefault:"25s"`
	// SessionStore is none (stateless), memory (one replica; lost on
	// restart) or a Redis URL (redis://, rediss://, unix://).
	SessionStore string `env:"SESSION_STORE" envDefault:"none"`
	// SessionStorePasswordFile holds the Redis password, so the URL in a
	// ConfigMap carries none.
	SessionStorePasswordFile string `env:"SESSION_STORE_PASSWORD_FILE"`
	// SessionStoreSentinelMaster and SessionStoreAddrs select Redis
	// Sentinel (master name and sentinel addresses) or, with addresses and
	// no master, Redis Cluster; the URL then gives only credentials and
	// TLS.
	SessionStoreSentinelMaster string   `env:"SESSION_STORE_SENTINEL_MASTER"`
	SessionStoreAddrs          []string `env:"SESSION_STORE_ADDRS"`
	// RefreshReuseInterval is how long a used refresh token may come back
	// and get the same successor; after it, it revokes its session.
	RefreshReuseInterval time.Duration `env:"REFRESH_REUSE_INTERVAL" envDefault:"5s"`
	// MaxSessionsPerUser limits a user's live sessions (0: unlimited);
	// SessionLimitPolicy is evict_oldest or refuse.
	MaxSessionsPerUser int    `env:"MAX_SESSIONS_PER_USER" envDefault:"0"`
	SessionLimitPolicy string `env:"SESSION_LIMIT_POLICY" envDefault:"evict_oldest"`
	// RevocationMaxStale, when positive, makes the proxy refuse tollgate's
	// own tokens while its revoked-session set has not been confirmed for
	// longer (the store unreachable); 0 keeps serving.
	RevocationMaxStale time.Duration `env:"REVOCATION_MAX_STALE" envDefault:"0s"`
	// DeviceCodeTTL and DeviceInterval are the device sign-in's (RFC 8628)
	// code lifetime and polling interval; DevicePageURL is the public base
	// URL of its page (default TOLLGATE_PUBLIC_URL); DeviceProduct and
	// DeviceLogoFile brand the page. The device flow is on with a session
	// store.
	DeviceCodeTTL  time.Duration `env:"DEVICE_CODE_TTL" envDefault:"10m"`
	DeviceInterval time.Duration `env:"DEVICE_INTERVAL" envDefault:"5s"`
	DevicePageURL  string        `env:"DEVICE_PAGE_URL"`
	DeviceProduct  string        `env:"DEVICE_PRODUCT"`
	DeviceLogoFile string        `env:"DEVICE_LOGO_FILE"`
	// DeviceCodeGuesses is how many wrong user codes a client IP may enter
	// per hour on the device page.
	DeviceCodeGuesses int `env:"DEVICE_CODE_GUESSES" envDefault:"20"`
	// TraceUserID adds the verified user's ID (enduser.id) to request
	// spans. Off by default: it is personal data.
	TraceUserID bool `env:"TRACE_USER_ID" envDefault:"false"`
	// otel holds the OpenTelemetry SDK's own variables (OTEL_*), which
	// configure tracing as they do in every SDK (see tracingConfig).
	otel map[string]string
	// BodyIdleTimeout and BodyMinRate cut off request bodies that trickle
	// in: nothing for BodyIdleTimeout, or less than BodyMinRate bytes/s on
	// average after it. Long uploads at a decent rate are never cut.
	BodyIdleTimeout time.Duration `env:"BODY_IDLE_TIMEOUT" envDefault:"10s"`
	BodyMinRate     int64         `env:"BODY_MIN_RATE" envDefault:"1024"`
	// LoginAttemptsPerUser and LoginAttemptsPerIP are the brute-force
	// limits of the password grant: attempts a login name (or a client IP)
	// has, one coming back every LoginUserRefill (LoginIPRefill). A
	// successful login gives its attempt back. 0 turns a limit off.
	LoginAttemptsPerUser int           `env:"LOGIN_ATTEMPTS_PER_USER" envDefault:"10"`
	LoginUserRefill      time.Duration `env:"LOGIN_USER_REFILL" envDefault:"30s"`
	LoginAttemptsPerIP   int           `env:"LOGIN_ATTEMPTS_PER_IP" envDefault:"60"`
	LoginIPRefill        time.Duration `env:"LOGIN_IP_REFILL" envDefault:"1s"`
	// MaxLoginQueue bounds the password checks waiting for a slot; beyond
	// it a login is answered 503 at once. 0 means 8 per allowed concurrent
	// check.
	MaxLoginQueue int `env:"MAX_LOGIN_QUEUE" envDefault:"0"`
	// TrustedProxies are the CIDRs (load balancers, ingress) whose
	// X-Forwarded-For is believed for the client's IP.
	TrustedProxies []string `env:"TRUSTED_PROXIES"`

	// File is the parsed YAML file (zero if none).
	File File `env:"-"`
}

// File is the YAML configuration file: the structured parts of the
// configuration. Unknown keys are an error, so typos do not go unnoticed.
type File struct {
	Upstreams      []FileUpstream `yaml:"upstreams"`
	Routes         []FileRoute    `yaml:"routes"`
	Headers        []FileHeader   `yaml:"headers"`
	TrustedIssuers []FileIssuer   `yaml:"trusted_issuers"`
	Clients        []FileClient   `yaml:"clients"`
	// PasswordBackend is users_file (default) or legacy.
	PasswordBackend  string              `yaml:"password_backend"`
	LegacyLogin      *FileLegacyLogin    `yaml:"legacy_login"`
	ExternalServices []FileService       `yaml:"external_services"`
	CookieExchange   *FileCookieExchange `yaml:"cookie_exchange"`
	// Realm is the WWW-Authenticate realm; default "tollgate".
	Realm string `yaml:"realm"`
	// Realms are the Keycloak-style realms tollgate serves discovery for,
	// minting their tokens with the realm URL as issuer.
	Realms []string `yaml:"realms"`
	// Scopes registers the scopes tollgate grants beyond the standard
	// OpenID ones.
	Scopes []FileScope `yaml:"scopes"`
	// StripHeaders replaces the list of inbound headers removed before
	// forwarding besides the identity headers (nil: the default list).
	StripHeaders []string `yaml:"strip_headers"`
	// DeviceTexts overrides the device sign-in page's strings (by name,
	// see README) to translate or brand it; DeviceLang is its language tag.
	DeviceTexts map[string]string `yaml:"device_texts"`
	DeviceLang  string            `yaml:"device_lang"`
}

// FileScope is a registered scope, optionally restricted to roles or
// users.
type FileScope struct {
	Name  string   `yaml:"name"`
	Roles []string `yaml:"roles"`
	Users []string `yaml:"users"`
}

// FileUpstream is a named upstream API.
type FileUpstream struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
}

// FileRoute maps a path prefix to an upstream.
type FileRoute struct {
	Name                 string   `yaml:"name"`
	Prefix               string   `yaml:"prefix"`
	Upstream             string   `yaml:"upstream"`
	Auth                 string   `yaml:"auth"`
	Scopes               []string `yaml:"scopes"`
	Roles                []string `yaml:"roles"`
	StripPrefix          bool     `yaml:"strip_prefix"`
	DropAuthorization    bool     `yaml:"drop_authorization"`
	ForwardAuthorization bool     `yaml:"forward_authorization"`
	CaseSensitive        bool     `yaml:"case_sensitive"`
	Issuers              []string `yaml:"issuers"`
}

// FileHeader maps a claim to an upstream header.
type FileHeader struct {
	Header string `yaml:"header"`
	Claim  string `yaml:"claim"`
}

// FileClient is a registered OAuth client of the token endpoints.
type FileClient struct {
	ID              string        `yaml:"id"`
	Secret          string        `yaml:"secret"`
	Grants          []string      `yaml:"grants"`
	Roles           []string      `yaml:"roles"`
	Scopes          []string      `yaml:"scopes"`
	Audience        string        `yaml:"audience"`
	PartnerID       string        `yaml:"partner_id"`
	AccessTokenTTL  time.Duration `yaml:"access_token_ttl"`
	RefreshTokenTTL time.Duration `yaml:"refresh_token_ttl"`
	SigningAlg      string        `yaml:"signing_alg"`
	IDTokenAlg      string        `yaml:"id_token_signing_alg"`
}

// FileLegacyLogin points the password grant at the legacy login endpoint.
type FileLegacyLogin struct {
	LoginURL      string            `yaml:"login_url"`
	Format        string            `yaml:"format"`
	UsernameField string            `yaml:"username_field"`
	PasswordField string            `yaml:"password_field"`
	LookupURL     string            `yaml:"lookup_url"`
	UserIDPath    string            `yaml:"user_id_path"`
	UsernamePath  string            `yaml:"username_path"`
	EmailPath     string            `yaml:"email_path"`
	RolePath      string            `yaml:"role_path"`
	PartnerPath   string            `yaml:"partner_path"`
	ProfilesPath  string            `yaml:"profiles_path"`
	ClaimPaths    map[string]string `yaml:"claim_paths"`
	Timeout       time.Duration     `yaml:"timeout"`
}

// FileService is an external OAuth server for login_with_token.
type FileService struct {
	Name             string        `yaml:"name"`
	IntrospectionURL string        `yaml:"introspection_url"`
	ClientID         string        `yaml:"client_id"`
	ClientSecret     string        `yaml:"client_secret"`
	UserinfoURL      string        `yaml:"userinfo_url"`
	Claim            string        `yaml:"claim"`
	UserField        string        `yaml:"user_field"`
	CacheTTL         time.Duration `yaml:"cache_ttl"`
	Timeout          time.Duration `yaml:"timeout"`
	// AllowedClients and AllowedAudiences: the apps of the external server
	// whose tokens may be exchanged (required for introspection).
	AllowedClients   []string `yaml:"allowed_clients"`
	AllowedAudiences []string `yaml:"allowed_audiences"`
}

// FileCookieExchange is the legacy session endpoint for cookie_exchange.
type FileCookieExchange struct {
	URL        string        `yaml:"url"`
	Cookies    []string      `yaml:"cookies"`
	UserIDPath string        `yaml:"user_id_path"`
	Timeout    time.Duration `yaml:"timeout"`
}

// FileIssuer is one trusted token issuer.
type FileIssuer struct {
	Issuer      string        `yaml:"issuer"`
	Audiences   []string      `yaml:"audiences"`
	Algorithms  []string      `yaml:"algorithms"`
	KeyFiles    []string      `yaml:"key_files"`
	JWKSURLs    []string      `yaml:"jwks_urls"`
	MaxLifetime time.Duration `yaml:"max_lifetime"`
}

// LoadConfig reads the configuration from environ (KEY=VALUE pairs, as
// os.Environ returns) and the YAML file it names, and checks the shape of
// every value, reporting every problem at once. What needs building (keys,
// routes, header names) is checked by NewMain; serve and check-config run
// both in one pass (configure). The warnings name unknown TOLLGATE_
// variables.
func LoadConfig(environ []string) (*Config, []string, error) {
	cfg, warnings, errs := loadConfig(environ)
	if err := errors.Join(errs...); err != nil {
		return nil, warnings, err
	}
	return cfg, warnings, nil
}

// loadConfig is LoadConfig returning the configuration even when it has
// problems, so that building it can find the rest.
func loadConfig(environ []string) (*Config, []string, []error) {
	cfg, warnings, errs := parseConfig(environ)
	return cfg, warnings, append(errs, cfg.check()...)
}

// parseConfig reads environ and the YAML file without cross-checks.
func parseConfig(environ []string) (*Config, []string, []error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var cfg Config
	var errs []error
	if err := env.ParseWithOptions(&cfg, env.Options{Prefix: envPrefix, Environment: vars}); err != nil {
		perrs, failed := envErrors(err)
		errs = append(errs, perrs...)
		// A value that does not parse is reported once: its setting takes
		// its default, so that the checks and the building that follow do
		// not report the zero value it left.
		rest := maps.Clone(vars)
		for _, name := range failed {
			delete(rest, name)
		}
		cfg = Config{}
		env.ParseWithOptions(&cfg, env.Options{Prefix: envPrefix, Environment: rest}) // its errors are reported above
	}
	cfg.otel = map[string]string{}
	for k, v := range vars {
		if strings.HasPrefix(k, "OTEL_") {
			cfg.otel[k] = v
		}
	}
	if cfg.ConfigFile != "" {
		f, ferrs := readFile(cfg.ConfigFile)
		errs = append(errs, ferrs...)
		cfg.File = f
	}
	return &cfg, unknownVars(vars), errs
}

// envErrors names the variable in each of env's parse errors, which only
// name the struct field, and returns the names of the variables that did
// not parse.
func envErrors(err error) ([]error, []string) {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return []error{err}, nil
	}
	t := reflect.TypeFor[Config]()
	var out []error
	var failed []string
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := t.FieldByName(pe.Name); ok {
				name := envPrefix + f.Tag.Get("env")
				out = append(out, fmt.Errorf("%s: %w", name, pe.Err))
				failed = append(failed, name)
				continue
			}
		}
		out = append(out, e)
	}
	return out, failed
}

// readFile parses the YAML configuration file strictly. The File is what
// could be decoded even when there are errors: one for each unknown key or
// value of the wrong type.
func readFile(path string) (File, []error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, []error{fmt.Errorf("config file: %w", err)}
	}
	f, errs := parseFile(data)
	for i, err := range errs {
		errs[i] = fmt.Errorf("config file %s: %w", path, err)
	}
	return f, errs
}

// maxConfigBytes bounds the configuration file.
const maxConfigBytes = 4 << 20

// unknownField is how yaml.v3 words an unknown key.
var unknownField = regexp.MustCompile(`^(line \d+: )field (.*) not found in type \S+$`)

// parseFile parses the YAML configuration strictly: unknown keys, values
// of the wrong type, and more than one document, are errors. Decoding goes
// on past unknown keys and wrong types, so every one is reported, and the
// File holds everything else.
func parseFile(data []byte) (File, []error) {
	var f File
	if len(data) > maxConfigBytes {
		return f, []error{fmt.Errorf("larger than %d bytes", maxConfigBytes)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var errs []error
	// An empty file is an empty configuration.
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return f, []error{err} // a syntax error: nothing after it can be read
		}
		for _, e := range te.Errors {
			errs = append(errs, errors.New(unknownField.ReplaceAllString(e, "${1}unknown key $2")))
		}
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		errs = append(errs, errors.New("more than one YAML document"))
	}
	return f, errs
}

// unknownVars returns a warning for each TOLLGATE_ variable that names no
// setting, so a typo does not silently fall back to a default.
func unknownVars(vars map[string]string) []string {
	known := map[string]bool{}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("env"); name != "" && name != "-" {
			known[envPrefix+name] = true
		}
	}
	var out []string
	for k := range vars {
		if strings.HasPrefix(k, envPrefix) && !known[k] {
			out = append(out, fmt.Sprintf("unknown environment variable %s is ignored", k))
		}
	}
	slices.Sort(out)
	return out
}

// check validates the values that need no building.
func (c *Config) check() []error {
	var errs []error
	if c.LogFormat != "json" && c.LogFormat != "console" {
		errs = append(errs, fmt.Errorf("TOLLGATE_LOG_FORMAT: %q is not json or console", c.LogFormat))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("TOLLGATE_LOG_LEVEL: %w", err))
	}
	for name, d := range map[string]time.Duration{
		"TOLLGATE_LEEWAY": c.Leeway, "TOLLGATE_SHUTDOWN_DELAY": c.ShutdownDelay, "TOLLGATE_ISSUER_MAX_LIFETIME": c.IssuerMaxLifetime,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative", name))
		}
	}
	for name, d := range map[string]time.Duration{
		"TOLLGATE_UPSTREAM_TIMEOUT": c.UpstreamTimeout, "TOLLGATE_DRAIN_TIMEOUT": c.DrainTimeout,
		"TOLLGATE_READ_HEADER_TIMEOUT": c.ReadHeaderTimeout, "TOLLGATE_IDLE_TIMEOUT": c.IdleTimeout,
		"TOLLGATE_JWKS_REFRESH": c.JWKSRefresh, "TOLLGATE_JWKS_MAX_STALE": c.JWKSMaxStale,
		"TOLLGATE_JWKS_LOOKUP_WAIT": c.JWKSLookupWait, "TOLLGATE_JWKS_TIMEOUT": c.JWKSTimeout,
		"TOLLGATE_JWKS_COOLDOWN": c.JWKSCooldown, "TOLLGATE_JWKS_RETRY_BACKOFF": c.JWKSRetryBackoff,
		"TOLLGATE_ACCESS_TOKEN_TTL": c.AccessTokenTTL, "TOLLGATE_REFRESH_TOKEN_TTL": c.RefreshTokenTTL,
		"TOLLGATE_RELOAD_INTERVAL": c.ReloadInterval,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive", name))
		}
	}
	if c.MaxHeaderBytes < 4096 {
		errs = append(errs, errors.New("TOLLGATE_MAX_HEADER_BYTES: must be at least 4096"))
	}
	if c.MaxTokenBytes < 256 {
		errs = append(errs, errors.New("TOLLGATE_MAX_TOKEN_BYTES: must be at least 256"))
	}
	if c.UpstreamIdleConnsPerHost < 1 || c.UpstreamIdleConns < c.UpstreamIdleConnsPerHost {
		errs = append(errs, errors.New("TOLLGATE_UPSTREAM_IDLE_CONNS_PER_HOST: must be at least 1 and at most TOLLGATE_UPSTREAM_IDLE_CONNS"))
	}
	for _, p := range c.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("TOLLGATE_TRUSTED_PROXIES: %q is not an address or CIDR", p))
		}
	}
	switch {
	case c.SessionStore == "none", c.SessionStore == "memory":
	case strings.HasPrefix(c.SessionStore, "redis://"), strings.HasPrefix(c.SessionStore, "rediss://"), strings.HasPrefix(c.SessionStore, "unix://"):
	default:
		errs = append(errs, errors.New("TOLLGATE_SESSION_STORE: want none, memory, or a redis://, rediss:// or unix:// URL"))
	}
	if c.SessionStore == "none" && (c.MaxSessionsPerUser > 0 || c.RevocationMaxStale > 0) {
		errs = append(errs, errors.New("TOLLGATE_MAX_SESSIONS_PER_USER and TOLLGATE_REVOCATION_MAX_STALE need TOLLGATE_SESSION_STORE"))
	}
	if c.SessionLimitPolicy != "evict_oldest" && c.SessionLimitPolicy != "refuse" {
		errs = append(errs, fmt.Errorf("TOLLGATE_SESSION_LIMIT_POLICY: %q is not evict_oldest or refuse", c.SessionLimitPolicy))
	}
	if c.MaxSessionsPerUser < 0 || c.RefreshReuseInterval < 0 || c.RevocationMaxStale < 0 {
		errs = append(errs, errors.New("TOLLGATE_MAX_SESSIONS_PER_USER, TOLLGATE_REFRESH_REUSE_INTERVAL and TOLLGATE_REVOCATION_MAX_STALE must not be negative"))
	}
	if c.DeviceCodeTTL <= 0 || c.DeviceInterval <= 0 || c.DeviceCodeGuesses < 0 {
		errs = append(errs, errors.New("TOLLGATE_DEVICE_CODE_TTL and TOLLGATE_DEVICE_INTERVAL must be positive, TOLLGATE_DEVICE_CODE_GUESSES not negative"))
	}
	if c.DevicePageURL != "" {
		if _, err := httpurl.Parse(c.DevicePageURL); err != nil {
			errs = append(errs, fmt.Errorf("TOLLGATE_DEVICE_PAGE_URL: %w", err))
		}
	}
	if c.JWKSNewKIDFetches < 0 {
		errs = append(errs, errors.New("TOLLGATE_JWKS_NEW_KID_FETCHES: must not be negative (0 turns it off)"))
	}
	if c.LoginAttemptsPerUser < 0 || c.LoginAttemptsPerIP < 0 || c.MaxLoginQueue < 0 {
		errs = append(errs, errors.New("TOLLGATE_LOGIN_ATTEMPTS_PER_USER, _PER_IP and TOLLGATE_MAX_LOGIN_QUEUE must not be negative"))
	}
	if c.BodyIdleTimeout <= 0 || c.BodyMinRate < 0 {
		errs = append(errs, errors.New("TOLLGATE_BODY_IDLE_TIMEOUT must be positive and TOLLGATE_BODY_MIN_RATE not negative"))
	}
	if c.LoginUserRefill <= 0 || c.LoginIPRefill <= 0 {
		errs = append(errs, errors.New("TOLLGATE_LOGIN_USER_REFILL and TOLLGATE_LOGIN_IP_REFILL must be positive"))
	}
	if c.TokenCacheSize < 0 || c.TokenCacheSize > maxTokenCacheSize {
		errs = append(errs, fmt.Errorf("TOLLGATE_TOKEN_CACHE_SIZE: must be between 0 (off) and %d", maxTokenCacheSize))
	}
	if c.UpstreamURL != "" {
		if _, err := httpurl.Parse(c.UpstreamURL); err != nil {
			errs = append(errs, fmt.Errorf("TOLLGATE_UPSTREAM_URL: %w", err))
		}
	}
	if c.Issuer == "" && (len(c.Audience)+len(c.VerifyKeys)+len(c.JWKSURLs)) > 0 {
		errs = append(errs, errors.New("TOLLGATE_ISSUER: required when TOLLGATE_AUDIENCE, TOLLGATE_VERIFY_KEYS or TOLLGATE_JWKS_URLS is set"))
	}
	if c.UpstreamURL == "" && len(c.File.Routes) == 0 {
		errs = append(errs, errors.New("no route: set TOLLGATE_UPSTREAM_URL or routes in TOLLGATE_CONFIG_FILE"))
	}
	switch c.File.PasswordBackend {
	case "", "users_file":
		if c.File.LegacyLogin != nil {
			errs = append(errs, errors.New("legacy_login is set but password_backend is not legacy"))
		}
	case "legacy":
		if c.File.LegacyLogin == nil {
			errs = append(errs, errors.New("password_backend legacy needs a legacy_login section"))
		}
		if c.UsersFile != "" {
			errs = append(errs, errors.New("TOLLGATE_USERS_FILE is set but password_backend is legacy"))
		}
	default:
		errs = append(errs, fmt.Errorf("password_backend %q is not users_file or legacy", c.File.PasswordBackend))
	}
	if c.SigningKeysDir != "" {
		if c.UsersFile == "" && c.File.PasswordBackend != "legacy" {
			errs = append(errs, errors.New("TOLLGATE_USERS_FILE: required with TOLLGATE_SIGNING_KEYS_DIR (or password_backend: legacy)"))
		}
		if _, err := httpurl.Parse(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("TOLLGATE_PUBLIC_URL: %w (required with TOLLGATE_SIGNING_KEYS_DIR: it is the iss of minted tokens)", err))
		}
	} else if c.UsersFile != "" || len(c.File.Clients) > 0 || c.File.PasswordBackend != "" ||
		len(c.File.ExternalServices) > 0 || c.File.CookieExchange != nil {
		errs = append(errs, errors.New("TOLLGATE_SIGNING_KEYS_DIR: required when users, clients or exchange backends are configured"))
	}
	if c.AccessTokenTTL > 0 && c.RefreshTokenTTL > 0 && c.RefreshTokenTTL < c.AccessTokenTTL {
		errs = append(errs, errors.New("TOLLGATE_REFRESH_TOKEN_TTL: shorter than TOLLGATE_ACCESS_TOKEN_TTL"))
	}
	if c.RefreshSigning != "" && c.RefreshSigning != issuer.RefreshMAC && c.RefreshSigning != issuer.RefreshSignature {
		errs = append(errs, fmt.Errorf("TOLLGATE_REFRESH_SIGNING: %q, want %s or %s", c.RefreshSigning, issuer.RefreshMAC, issuer.RefreshSignature))
	}
	if c.Issuer == "" && c.SigningKeysDir == "" && len(c.File.TrustedIssuers) == 0 {
		errs = append(errs, errors.New("no trusted issuer: set TOLLGATE_ISSUER (with TOLLGATE_AUDIENCE and TOLLGATE_VERIFY_KEYS or TOLLGATE_JWKS_URLS) or trusted_issuers in TOLLGATE_CONFIG_FILE"))
	}
	return errs
}

// verifierConfig turns the trusted issuers (env and file) into the
// verifier's configuration.
func (c *Config) verifierConfig() verifier.Config {
	remote := verifier.RemoteConfig{RefreshInterval: c.JWKSRefresh, MaxStale: c.JWKSMaxStale, LookupWait: c.JWKSLookupWait,
		Timeout: c.JWKSTimeout, Cooldown: c.JWKSCooldown, NewKIDFetches: c.JWKSNewKIDFetches, RetryBackoff: c.JWKSRetryBackoff}
	if c.JWKSNewKIDFetches == 0 {
		remote.NewKIDFetches = -1 // 0 turns it off; the verifier reads zero as its default
	}
	vc := verifier.Config{Leeway: c.Leeway, MaxTokenBytes: c.MaxTokenBytes, CacheSize: c.TokenCacheSize}
	if c.TokenCacheSize == 0 {
		vc.CacheSize = -1 // off; the verifier reads zero as its default
	}
	if c.Issuer != "" {
		vc.Issuers = append(vc.Issuers, verifier.IssuerConfig{
			Issuer: c.Issuer, Audiences: c.Audience, Algorithms: c.Algorithms,
			KeyFiles: c.VerifyKeys, JWKSURLs: c.JWKSURLs, Remote: remote, MaxLifetime: c.IssuerMaxLifetime,
		})
	}
	for _, fi := range c.File.TrustedIssuers {
		vc.Issuers = append(vc.Issuers, verifier.IssuerConfig{
			Issuer: fi.Issuer, Audiences: fi.Audiences, Algorithms: fi.Algorithms,
			KeyFiles: fi.KeyFiles, JWKSURLs: fi.JWKSURLs, Remote: remote, MaxLifetime: fi.MaxLifetime,
		})
	}
	return vc
}

// proxyConfig turns upstreams, routes and headers into the proxy's
// configuration. TOLLGATE_UPSTREAM_URL becomes the upstream "default" with a
// catch-all route, unless the file already routes "/".
func (c *Config) proxyConfig() proxy.Config {
	pc := proxy.Config{Realm: c.File.Realm, ResponseHeaderTimeout: c.UpstreamTimeout, StripHeaders: c.File.StripHeaders,
		MaxIdleConnsPerHost: c.UpstreamIdleConnsPerHost, MaxIdleConns: c.UpstreamIdleConns}
	for _, u := range c.File.Upstreams {
		pc.Upstreams = append(pc.Upstreams, proxy.Upstream{Name: u.Name, URL: u.URL})
	}
	for _, r := range c.File.Routes {
		pc.Routes = append(pc.Routes, proxy.Route{
			Name: r.Name, Prefix: r.Prefix, Upstream: r.Upstream, Auth: proxy.AuthMode(r.Auth),
			Scopes: r.Scopes, Roles: r.Roles, StripPrefix: r.StripPrefix, DropAuthorization: r.DropAuthorization,
			CaseSensitive: r.CaseSensitive, ForwardAuthorization: r.ForwardAuthorization, Issuers: r.Issuers,
		})
	}
	if c.UpstreamURL != "" {
		pc.Upstreams = append(pc.Upstreams, proxy.Upstream{Name: "default", URL: c.UpstreamURL})
		if !slices.ContainsFunc(pc.Routes, func(r proxy.Route) bool { return r.Prefix == "/" }) {
			pc.Routes = append(pc.Routes, proxy.Route{Name: "default", Prefix: "/", Upstream: "default", Auth: proxy.AuthRequired})
		}
	}
	for _, h := range c.File.Headers {
		pc.Headers = append(pc.Headers, proxy.HeaderMapping{Header: h.Header, Claim: h.Claim})
	}
	return pc
}

// issuerConfig is the token endpoints' configuration. A nil clients
// section means an open registry; an empty list means no client at all.
func (c *Config) issuerConfig() issuer.Config {
	ic := issuer.Config{Issuer: c.PublicURL, Audience: c.TokenAudience, AccessTTL: c.AccessTokenTTL, RefreshTTL: c.RefreshTokenTTL, RefreshSigning: c.RefreshSigning,
		Realm: c.File.Realm, MaxLoginQueue: c.MaxLoginQueue, TrustedProxies: c.trustedProxies(), Realms: c.File.Realms}
	for _, fs := range c.File.Scopes {
		ic.Scopes = append(ic.Scopes, issuer.Scope{Name: fs.Name, Roles: fs.Roles, Users: fs.Users})
	}
	if c.File.Clients != nil {
		ic.Clients = []issuer.Client{}
	}
	for _, fc := range c.File.Clients {
		ic.Clients = append(ic.Clients, issuer.Client{
			ID: fc.ID, Secret: fc.Secret, Grants: fc.Grants, Scopes: fc.Scopes, Audience: fc.Audience,
			PartnerID: fc.PartnerID, AccessTTL: fc.AccessTokenTTL, RefreshTTL: fc.RefreshTokenTTL,
			SigningAlg: fc.SigningAlg, Roles: fc.Roles, IDTokenAlg: fc.IDTokenAlg,
		})
	}
	return ic
}

// trustedProxies parses TOLLGATE_TRUSTED_PROXIES (checked by check()).
func (c *Config) trustedProxies() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix reads a CIDR, or a single address as its own prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

// selfMaxLifetime is the longest access token tollgate mints: the global
// lifetime or a client's longer one.
func (c *Config) selfMaxLifetime() time.Duration {
	d := c.AccessTokenTTL
	for _, fc := range c.File.Clients {
		d = max(d, fc.AccessTokenTTL)
	}
	return d
}

// selfAudiences lists the audiences of minted access tokens, for the
// verifier that trusts them.
func (c *Config) selfAudiences() []string {
	auds := []string{c.TokenAudience}
	for _, fc := range c.File.Clients {
		if fc.Audience != "" && !slices.Contains(auds, fc.Audience) {
			auds = append(auds, fc.Audience)
		}
	}
	return auds
}
