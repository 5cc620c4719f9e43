package monitoring

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/tollgate/tollgate/tools/internal/product"
	"go.yaml.in/yaml/v3"
)

// root is the repository root, relative to this package's directory (where
// go test runs the tests).
const root = product.Root

const (
	job = "tollgate"
	// acceptClassic is what Prometheus asks for with native histograms
	// off: OpenMetrics text, where a histogram is its classic series.
	acceptClassic = "application/openmetrics-text;version=1.0.0"
	// acceptNative is what it asks for with native histograms on:
	// protobuf, which carries the native histogram.
	acceptNative = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
	// scrapeInterval is the time between two recorded scrapes.
	scrapeInterval = 15 * time.Second
)

// mode is one way Prometheus stores tollgate's histograms.
type mode struct {
	name   string
	accept string
	// native reports that histograms are native (their classic series
	// dropped) rather than classic.
	native bool
}

var modes = []mode{
	{name: "classic histograms", accept: acceptClassic},
	{name: "native histograms", accept: acceptNative, native: true},
}

// scrape is one recorded /metrics response.
type scrape struct {
	body        []byte
	contentType string
}

// recording is what the test recorded of a running tollgate: for each
// mode, one scrape before any traffic and then one after each round.
type recording struct {
	scrapes  map[string][]scrape // by mode name
	instance string
	start    time.Time // the first scrape's timestamp
}

// at is the timestamp of scrape i.
func (r *recording) at(i int) time.Time { return r.start.Add(time.Duration(i) * scrapeInterval) }

// last is the timestamp of the last scrape.
func (r *recording) last() time.Time { return r.at(len(r.scrapes[modes[0].name]) - 1) }

func TestDashboardAndAlertsInBothHistogramModes(t *testing.T) {
	rec := record(t)
	exprs := dashboardExprs(t)
	alerts := alertRules(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			db := load(t, rec, m)
			engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute})
			eval := func(t *testing.T, q string, at time.Time) promql.Vector {
				t.Helper()
				qry, err := engine.NewInstantQuery(t.Context(), db, nil, q, at)
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				defer qry.Close()
				res := qry.Exec(t.Context())
				if res.Err != nil {
					t.Fatalf("%s: %v", q, res.Err)
				}
				switch v := res.Value.(type) {
				case promql.Vector:
					return v
				case promql.Scalar:
					return promql.Vector{{T: v.T, F: v.V}}
				}
				t.Fatalf("%s: a %s, not a vector", q, res.Value.Type())
				return nil
			}

			// Counters that alerts take the increase of exist at 0
			// before their first event, so that the event is an increase.
			for _, c := range []struct {
				query  string
				series int
			}{
				{`tollgate_reloads_total{result="error"}`, 2},                   // users, signing_keys
				{`tollgate_upstream_errors_total{upstream="down"}`, 4},          // refused, timeout, reset, other
				{`tollgate_jwks_fetches_total{result="error"}`, 1},              // the remote JWKS
				{`tollgate_jwks_unknown_kid_suppressed_total`, 1},               // the remote JWKS
				{`tollgate_login_failures_total`, 5},                            // each reason
				{`tollgate_session_events_total{event="reuse_detected"}`, 1},    // with a session store
				{`tollgate_token_errors_total{grant="password"}`, 6},            // the codes declared
				{`tollgate_sessions_revoked_total{cause="password_change"}`, 1}, // with a session store
			} {
				got := eval(t, c.query, rec.at(0))
				if len(got) != c.series || slices.ContainsFunc(got, func(s promql.Sample) bool { return s.F != 0 }) {
					t.Errorf("before any traffic, %s = %v; want %d series at 0", c.query, got, c.series)
				}
			}

			for _, e := range exprs {
				got := eval(t, e, rec.last())
				if !hasValue(got) {
					t.Errorf("dashboard: %s returns no value: %v", e, got)
				}
			}

			for _, a := range alerts {
				t.Run(a.Alert, func(t *testing.T) {
					expr, err := parser.NewParser(parser.Options{}).ParseExpr(a.Expr)
					if err != nil {
						t.Fatal(err)
					}
					// Each side of each comparison has values, and with
					// every comparison made a bool one the whole
					// expression matches its parts' labels: the alert
					// could fire and resolve.
					parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
						b, ok := n.(*parser.BinaryExpr)
						if !ok || !b.Op.IsComparisonOperator() {
							return nil
						}
						for _, side := range []parser.Expr{b.LHS, b.RHS} {
							if side.Type() == parser.ValueTypeVector {
								if got := eval(t, side.String(), rec.last()); !hasValue(got) {
									t.Errorf("%s returns no value: %v", side, got)
								}
							}
						}
						b.ReturnBool = true
						return nil
					})
					if got := eval(t, expr.String(), rec.last()); len(got) == 0 {
						t.Errorf("%s returns nothing", expr)
					}
				})
			}

			// The broken users file was the first failed reload since the
			// start: the alert fires on it.
			var reloadFailing string
			for _, a := range alerts {
				if a.Alert == "TollgateReloadFailing" {
					reloadFailing = a.Expr
				}
			}
			if reloadFailing == "" {
				t.Fatal("alerts.yaml has no TollgateReloadFailing")
			}
			got := eval(t, reloadFailing, rec.last())
			if len(got) != 1 || got[0].Metric.Get("what") != "users" {
				t.Errorf("TollgateReloadFailing after the first broken users file: %v", got)
			}
		})
	}
}

// hasValue reports whether v holds a sample that is not NaN.
func hasValue(v promql.Vector) bool {
	return slices.ContainsFunc(v, func(s promql.Sample) bool { return s.H != nil || !math.IsNaN(s.F) })
}

// load stores rec's scrapes for m as Prometheus would: parsed by its
// scrape parser, with the target's job and instance labels.
func load(t *testing.T, rec *recording, m mode) *memStorage {
	t.Helper()
	db := &memStorage{series: map[string]*memSeries{}}
	var floats, histograms int
	classicBuckets := false
	for i, s := range rec.scrapes[m.name] {
		p, err := textparse.New(s.body, s.contentType, labels.NewSymbolTable(), textparse.ParserOptions{})
		if err != nil {
			t.Fatalf("%s: scrape %d: %v", m.name, i, err)
		}
		ts := rec.at(i).UnixMilli()
		for {
			entry, err := p.Next()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: scrape %d: %v", m.name, i, err)
			}
			var l labels.Labels
			switch entry {
			case textparse.EntrySeries:
				_, _, v := p.Series()
				p.Labels(&l)
				if l.Get(labels.MetricName) == "tollgate_http_request_duration_seconds_bucket" {
					classicBuckets = true
				}
				db.add(target(l, rec.instance), sample{t: ts, f: v})
				floats++
			case textparse.EntryHistogram:
				_, _, h, fh := p.Histogram()
				p.Labels(&l)
				// The engine reads float histograms, as the TSDB's
				// iterators convert them; the copy is ours to keep.
				if h != nil {
					fh = h.ToFloat(nil)
				} else {
					fh = fh.Copy()
				}
				db.add(target(l, rec.instance), sample{t: ts, fh: fh})
				histograms++
			}
		}
	}
	// The recording is of the mode it claims to be.
	if m.native && (histograms == 0 || classicBuckets) || !m.native && (histograms > 0 || !classicBuckets) {
		t.Fatalf("%s: %d float samples, %d native histograms, classic buckets %v", m.name, floats, histograms, classicBuckets)
	}
	return db
}

// memStorage holds the recorded series in memory for the PromQL engine,
// which reads it through the storage interfaces it reads the TSDB with.
// (Prometheus' TSDB itself would bring the module's cloud SDKs into the
// test's build, tripling it.)
type memStorage struct {
	series map[string]*memSeries // by labels.String()
}

type memSeries struct {
	lset    labels.Labels
	samples []chunks.Sample // in time order
}

func (db *memStorage) add(l labels.Labels, s sample) {
	ms := db.series[l.String()]
	if ms == nil {
		ms = &memSeries{lset: l}
		db.series[l.String()] = ms
	}
	ms.samples = append(ms.samples, s)
}

// Querier implements storage.Queryable.
func (db *memStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	return memQuerier{db: db, mint: mint, maxt: maxt}, nil
}

type memQuerier struct {
	db         *memStorage
	mint, maxt int64
}

// matching returns the series ms select that have samples in the
// querier's time range, sorted by labels.
func (q memQuerier) matching(ms []*labels.Matcher) []storage.Series {
	var out []storage.Series
	for _, s := range q.db.series {
		if !slices.ContainsFunc(s.samples, func(x chunks.Sample) bool { return x.T() >= q.mint && x.T() <= q.maxt }) {
			continue
		}
		if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches(s.lset.Get(m.Name)) }) {
			out = append(out, storage.NewListSeries(s.lset, s.samples))
		}
	}
	slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return out
}

func (q memQuerier) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return &seriesSet{series: q.matching(ms), i: -1}
}

func (q memQuerier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	var values []string
	for _, s := range q.matching(ms) {
		if v := s.Labels().Get(name); v != "" && !slices.Contains(values, v) {
			values = append(values, v)
		}
	}
	slices.Sort(values)
	return values, nil, nil
}

func (q memQuerier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	var names []string
	for _, s := range q.matching(ms) {
		s.Labels().Range(func(l labels.Label) {
			if !slices.Contains(names, l.Name) {
				names = append(names, l.Name)
			}
		})
	}
	slices.Sort(names)
	return names, nil, nil
}

func (memQuerier) Close() error { return nil }

// seriesSet iterates over a slice of series.
type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// sample is one scraped sample: a float, or a native histogram (fh).
type sample struct {
	t  int64
	f  float64
	fh *histogram.FloatHistogram
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return s.fh }

func (s sample) Type() chunkenc.ValueType {
	if s.fh != nil {
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

func (s sample) Copy() chunks.Sample {
	if s.fh != nil {
		s.fh = s.fh.Copy()
	}
	return s
}

// target adds the labels Prometheus gives every sample of the target.
func target(l labels.Labels, instance string) labels.Labels {
	b := labels.NewBuilder(l)
	b.Set("job", job)
	b.Set("instance", instance)
	return b.Labels()
}

// dashboardExprs are the dashboard's queries with $job set, and the
// metric of its job variable.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "charts/tollgate/files/dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	var exprs []string
	labelValues := regexp.MustCompile(`^label_values\((.+), *job\)$`)
	for _, v := range dash.Templating.List {
		if v.Name == "job" {
			m := labelValues.FindStringSubmatch(v.Query)
			if m == nil {
				t.Fatalf("the job variable's query %q is not label_values(..., job)", v.Query)
			}
			exprs = append(exprs, m[1])
		}
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q has a target without expr", p.Title)
			}
			exprs = append(exprs, strings.ReplaceAll(tg.Expr, "$job", job))
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("only %d dashboard expressions", len(exprs))
	}
	return exprs
}

// rule is one alerting rule of alerts.yaml.
type rule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func alertRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "charts/tollgate/files/alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("alerts.yaml has no rule")
	}
	return rules
}

// TestEveryAlertHasUnitTests checks that alerts_test.yaml, which test.sh
// runs with promtool, has for every alert a case where it fires and one
// where it stays quiet.
func TestEveryAlertHasUnitTests(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "charts/tollgate/files/alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("alerts_test.yaml: %v", err)
	}
	if !slices.Equal(f.RuleFiles, []string{"alerts.yaml"}) {
		t.Errorf("alerts_test.yaml tests %v, want [alerts.yaml]", f.RuleFiles)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, r := range alertRules(t) {
		if !fires[r.Alert] {
			t.Errorf("no unit test where %s fires", r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("no unit test where %s stays quiet", r.Alert)
		}
	}
}

// record runs tollgate, gives it traffic that reaches every metric the
// dashboard and the alerts read, and scrapes it in both formats before
// the traffic and after each round of it.
func record(t *testing.T) *recording {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	t.Cleanup(cancel)
	g := startTollgate(ctx, t)
	rec := &recording{scrapes: map[string][]scrape{}, instance: g.admin, start: time.Unix(1_800_000_000, 0)}
	scrapeAll := func() {
		for _, m := range modes {
			rec.scrapes[m.name] = append(rec.scrapes[m.name], g.scrape(ctx, t, m.accept))
		}
	}
	scrapeAll()
	for round := range 3 {
		if round == 1 {
			// A broken edit of the users file: the first failed reload
			// since the start. The last good version keeps serving.
			product.WriteFile(t, g.usersFile, "users: [broken")
			g.reload(ctx, t)
		}
		g.traffic(ctx, t)
		scrapeAll()
	}
	return rec
}

// gateway is a running tollgate binary and what it was started with.
type gateway struct {
	public, admin string // host:port
	usersFile     string
	partnerKey    *ecdsa.PrivateKey
	cmd           *exec.Cmd
}

func startTollgate(ctx context.Context, t *testing.T) *gateway {
	t.Helper()
	dir := t.TempDir()
	bin := product.Build(ctx, t, dir)
	keys := filepath.Join(dir, "keys")
	if b, err := exec.CommandContext(ctx, bin, "keygen", "-alg", "ES256", "-dir", keys).CombinedOutput(); err != nil {
		t.Fatalf("tollgate keygen: %v\n%s", err, b)
	}
	g := &gateway{usersFile: filepath.Join(dir, "users.yaml")}
	product.WriteFile(t, g.usersFile, product.Users(t, "someuser@24i.com", "qwerty123"))

	// An upstream that answers, one that is down (a closed port), and a
	// partner identity provider's JWKS.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(api.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	g.partnerKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk(t, g.partnerKey, "p1")}})
	}))
	t.Cleanup(jwks.Close)

	config := filepath.Join(dir, "tollgate.yaml")
	product.WriteFile(t, config, fmt.Sprintf(`
upstreams:
  - {name: api, url: %q}
  - {name: down, url: "http://%s"}
routes:
  - {name: api, prefix: /api, upstream: api}
  - {name: down, prefix: /down, upstream: down}
trusted_issuers:
  - {issuer: https://partner.test, audiences: [partner-api], jwks_urls: [%q]}
clients:
  - {id: anonymous, grants: [password, refresh_token]}
`, api.URL, down, jwks.URL))

	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{
		"TOLLGATE_LISTEN=127.0.0.1:0",
		"TOLLGATE_ADMIN_LISTEN=127.0.0.1:0",
		"TOLLGATE_PUBLIC_URL=https://auth.test",
		"TOLLGATE_SIGNING_KEYS_DIR=" + keys,
		"TOLLGATE_USERS_FILE=" + g.usersFile,
		"TOLLGATE_CONFIG_FILE=" + config,
		"TOLLGATE_SESSION_STORE=memory",
		"TOLLGATE_RELOAD_INTERVAL=1h", // reloads on SIGHUP only
		"TOLLGATE_JWKS_COOLDOWN=1h",   // every unknown kid after the first is suppressed
		"TOLLGATE_SHUTDOWN_DELAY=0s",
		"TOLLGATE_DRAIN_TIMEOUT=5s",
		"TOLLGATE_LOG_FORMAT=json",
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g.cmd = cmd
	var logMu sync.Mutex
	var logs strings.Builder // guarded by logMu
	listening := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			logMu.Lock()
			logs.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			var line struct{ Msg, Public, Admin string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "tollgate listening" {
				listening <- [2]string{line.Public, line.Admin}
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			logMu.Lock()
			t.Errorf("tollgate serve: %v\n%s", err, logs.String())
			logMu.Unlock()
		}
	})
	select {
	case addrs := <-listening:
		g.public, g.admin = addrs[0], addrs[1]
	case <-ctx.Done():
		logMu.Lock()
		t.Fatalf("tollgate did not start listening:\n%s", logs.String())
	}
	// Ready once the remote JWKS has been fetched.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for g.status(ctx, t, "GET", "http://"+g.admin+"/readyz", "", "") != http.StatusOK {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("tollgate did not become ready")
		}
	}
	return g
}

// traffic is one round of requests reaching every collector.
func (g *gateway) traffic(ctx context.Context, t *testing.T) {
	t.Helper()
	base := "http://" + g.public
	tokens := g.login(ctx, t)
	bearer := "Bearer " + tokens["access_token"]
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/api/x", bearer, 200},
		{"/api/y", bearer, 200},
		{"/api/x", "", 401},                 // missing
		{"/api/x", "Bearer not.a.jwt", 401}, // malformed
		{"/down/x", bearer, 502},            // refused
		{"/api/x", g.partnerToken(t), 401},  // unknown kid: a refetch, suppressed after the first
		{"/api/x", g.partnerToken(t), 401},  // suppressed
		{"/nowhere", bearer, http.StatusNotFound},
	} {
		if got := g.status(ctx, t, "GET", base+c.path, c.auth, ""); got != c.want {
			t.Fatalf("GET %s: %d, want %d", c.path, got, c.want)
		}
	}
	if got := g.status(ctx, t, "POST", base+"/oauth/token", "", "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=wrong"); got != 400 {
		t.Fatalf("a wrong password: %d", got)
	}
	refreshed := g.token(ctx, t, "grant_type=refresh_token&client_id=anonymous&refresh_token="+url.QueryEscape(tokens["refresh_token"]))
	if got := g.status(ctx, t, "POST", base+"/oauth/logout", "", "client_id=anonymous&refresh_token="+url.QueryEscape(refreshed["refresh_token"])); got/100 != 2 {
		t.Fatalf("logout: %d", got)
	}
}

func (g *gateway) login(ctx context.Context, t *testing.T) map[string]string {
	t.Helper()
	return g.token(ctx, t, "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=qwerty123")
}

// token posts form to the token endpoint and returns the token response.
func (g *gateway) token(ctx context.Context, t *testing.T, form string) map[string]string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+g.public+"/oauth/token", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
		t.Fatalf("token request: %d %s", resp.StatusCode, b)
	}
	tokens := map[string]string{}
	for k, v := range out {
		if s, ok := v.(string); ok {
			tokens[k] = s
		}
	}
	return tokens
}

// status sends a request and returns its status code.
func (g *gateway) status(ctx context.Context, t *testing.T, method, u, auth, form string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// scrape reads /metrics in the format accept asks for.
func (g *gateway) scrape(ctx context.Context, t *testing.T, accept string) scrape {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+g.admin+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return scrape{body: b, contentType: resp.Header.Get("Content-Type")}
}

// reload sends SIGHUP and waits until the users file's reload is counted.
func (g *gateway) reload(ctx context.Context, t *testing.T) {
	t.Helper()
	counted := func() bool {
		s := g.scrape(ctx, t, "text/plain;version=0.0.4")
		return regexp.MustCompile(`(?m)^tollgate_reloads_total\{result="error",what="users"\} 1$`).Match(s.body)
	}
	if counted() {
		t.Fatal("a failed reload counted before the first one")
	}
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !counted() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the failed reload was not counted")
		}
	}
}

// partnerToken is a token of the partner issuer naming a key its JWKS
// does not have. Its signature is never checked: the key is looked up
// first.
func (g *gateway) partnerToken(t *testing.T) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	header := enc(map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": "made-up"})
	claims := enc(map[string]any{"iss": "https://partner.test", "aud": "partner-api", "sub": "partner-user", "exp": time.Now().Add(time.Hour).Unix()})
	return "Bearer " + header + "." + claims + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
}

// jwk is key's public JWK.
func jwk(t *testing.T, key *ecdsa.PrivateKey, kid string) map[string]string {
	t.Helper()
	pub, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
		"x": base64.RawURLEncoding.EncodeToString(pub[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(pub[33:]),
	}
}
