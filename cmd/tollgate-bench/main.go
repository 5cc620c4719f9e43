package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/internal/bareproxy"
)

// must returns v, for values that cannot fail to parse.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate-bench:", err)
		os.Exit(1)
	}
}

// The harness's own child processes are this binary run with one of these
// as its first argument, then the upstream's URL for the bare proxies, and
// after childBareHeaders the names and values of the headers it adds.
const (
	childUpstream    = "child-upstream"
	childBare        = "child-bare"
	childBarePool    = "child-bare-pool"
	childBareHeaders = "child-bare-headers"
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case childUpstream:
			return serveUpstream(ctx, stdout)
		case childBare, childBarePool:
			if len(args) != 2 {
				return fmt.Errorf("%s: want the upstream URL", args[0])
			}
			return serveBare(ctx, args[1], args[0] == childBarePool, nil, stdout)
		case childBareHeaders:
			if len(args) < 2 || len(args)%2 != 0 {
				return fmt.Errorf("%s: want the upstream URL, then header names and values", args[0])
			}
			extra := http.Header{}
			for i := 2; i < len(args); i += 2 {
				extra.Add(args[i], args[i+1])
			}
			return serveBare(ctx, args[1], true, extra, stdout)
		}
	}
	return bench(ctx, args, stdout, stderr)
}

// bench runs the load harness and prints its table on stdout; progress
// goes to stderr.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tollgate-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 5*time.Second, "load per scenario (bounded)")
	conns := fs.Int("conns", 32, "concurrent keep-alive connections")
	tokens := fs.Int("tokens", 100000, "distinct valid tokens for the cold scenario (d), each sent once: it ends early when they run out")
	fleet := fs.String("fleet", "10000,100000", "fleet sizes: for each, that many distinct tokens cycling after a warm-up pass (comma-separated, ascending; empty: none)")
	idle := fs.Int("idle", 10000, "idle keep-alive connections for the memory measurement (0: skip)")
	repeat := fs.Int("repeat", 1, "measure each fleet and (c-full), with the (bp) and (bh) before it, this many times in a row; the summary gives the median ratio")
	interleave := fs.Int("interleave", 6, "measure each fleet and (c-full), with the (bp) and (bh) before it, in this many slices of -duration/N each, taking turns in a rotating order, so that the machine's drift falls on all three alike (1: one after another; a multiple of 3 puts each in each place equally often)")
	profiles := fs.String("profile", "", "directory for CPU profiles of the process under test in scenarios (bp) and (bh) (each time), (c), (c-full), (d) and (e), and in the -store ones (empty: none); under -interleave, of a scenario's first slice")
	alg := fs.String("alg", "ES256", "algorithm of the gateway's signing key, so of every token: ES256, EdDSA or RS256")
	tollgate := fs.String("tollgate", "", "tollgate binary to measure (empty: build ./cmd/tollgate of this module)")
	store := fs.String("store", "", "add the session store scenarios: memory, redis or all (empty: none)")
	noIDToken := fs.Bool("no-id-token", false, "refresh scenarios log in with scope "+loginScope+" (no openid), so no id_token is minted")
	tracing := fs.Bool("tracing", false, "add the hot token on gateways exporting spans over OTLP/HTTP, sampling 1% and 100% (to a sink that discards them)")
	redisBin := fs.String("redis-server", "redis-server", "redis-server binary for -store redis (run on a unix socket in a temporary directory)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *duration > time.Minute || *duration <= 0 {
		return errors.New("-duration must be within (0, 1m]")
	}
	if *conns <= 0 || *tokens <= 0 {
		return errors.New("-conns and -tokens must be positive")
	}
	if *repeat < 1 || *repeat > 10 {
		return errors.New("-repeat must be within [1, 10]")
	}
	if *interleave < 1 || *interleave > 20 || *interleave > 1 && *duration/time.Duration(*interleave) < 50*time.Millisecond {
		return fmt.Errorf("-interleave %d with -duration %s: want 1 to 20 slices of at least 50ms each (-interleave 1 measures one scenario after another)", *interleave, *duration)
	}
	fleetSizes, err := parseSizes(*fleet)
	if err != nil {
		return fmt.Errorf("-fleet: %w", err)
	}
	withMemory, withRedis := *store == storeMemory || *store == storeAll, *store == storeRedis || *store == storeAll
	if *store != "" && !withMemory && !withRedis {
		return fmt.Errorf("-store %q: want memory, redis or all", *store)
	}
	raiseFileLimit()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tollgate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := *tollgate
	if bin == "" {
		fmt.Fprintln(stderr, "building tollgate…")
		if bin, err = buildTollgate(ctx, dir); err != nil {
			return err
		}
	}

	upstream, err := startChild(ctx, self, childUpstream)
	if err != nil {
		return err
	}
	defer upstream.stop()
	bare, err := startChild(ctx, self, childBare, upstream.url)
	if err != nil {
		return err
	}
	defer bare.stop()
	barePool, err := startChild(ctx, self, childBarePool, upstream.url)
	if err != nil {
		return err
	}
	defer barePool.stop()
	// pprof on: the fleet's memory is measured after a collection it asks
	// for (/debug/pprof/heap?gc=1).
	gw, err := startGateway(ctx, bin, filepath.Join(dir, "gateway"), upstream.url, *alg, true)
	if err != nil {
		return err
	}
	defer gw.stop()

	client := newLoadClient(*conns)
	refresh, access, err := login(ctx, client, gw.url, "")
	if err != nil {
		return err
	}
	scope, refreshNote := "", ""
	if *noIDToken {
		scope, refreshNote = loginScope, ", no id_token"
		if refresh, _, err = login(ctx, client, gw.url, scope); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "minting %d tokens for the cold scenario…\n", *tokens)
	many, err := mintMany(gw.key, *alg, gw.kid, gw.url, "cold-", *tokens)
	if err != nil {
		return err
	}
	var fleetTokens []string
	if len(fleetSizes) > 0 {
		fmt.Fprintf(stderr, "minting %d tokens for the fleet scenarios…\n", fleetSizes[len(fleetSizes)-1])
		if fleetTokens, err = mintMany(gw.key, *alg, gw.kid, gw.url, "fleet-", fleetSizes[len(fleetSizes)-1]); err != nil {
			return err
		}
	}
	hot := []string{"Bearer " + access}
	// (bh) is (bp) adding to each upstream request the headers tollgate
	// adds (identity, request id, trace context), with the hot token's
	// values: what carrying them costs the proxy, the upstream and the
	// kernel, whatever the proxy. Headers tollgate removes, it keeps: the
	// summary names them.
	added, removed, err := bareproxy.HeaderDiff(ctx, client, barePool.url, gw.url, "/api/channels/1", hot[0])
	if err != nil {
		return err
	}
	addedNames := slices.Sorted(maps.Keys(added))
	bhArgs := []string{childBareHeaders, upstream.url}
	for _, k := range addedNames {
		for _, v := range added[k] {
			bhArgs = append(bhArgs, k, v)
		}
	}
	bareHeaders, err := startChild(ctx, self, bhArgs...)
	if err != nil {
		return err
	}
	defer bareHeaders.stop()
	if bhAdded, _, err := bareproxy.HeaderDiff(ctx, client, barePool.url, bareHeaders.url, "/api/channels/1", hot[0]); err != nil {
		return err
	} else if !maps.EqualFunc(bhAdded, added, slices.Equal) {
		return fmt.Errorf("(bh) adds %v, not what tollgate adds: %v", bhAdded, added)
	}
	get := func(base string, auths []string) request {
		return func(i int) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/channels/1", nil)
			if err == nil && auths != nil {
				req.Header.Set("Authorization", auths[i%len(auths)])
			}
			return req, err
		}
	}
	post := func(body string) request {
		return func(int) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.url+"/oauth/token", strings.NewReader(body))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			return req, err
		}
	}
	type scenario struct {
		id, name string
		proc     *child
		admin    string // admin listener to take a CPU profile from (-profile); "": none
		sidecar  *child // a process proc relies on, whose CPU is reported too
		load     load
		stats    string       // statistics of the process: its GC, and a gateway's cache; "": none
		before   func() error // run before the clock starts (a fleet's warm-up); nil: nothing
		// seq numbers the scenario's requests. A fleet's repeats share it,
		// and so go on through the fleet's tokens where the one before
		// stopped, as its slices do.
		seq *atomic.Int64
	}
	// label names a scenario in the rows of the baselines measured again
	// before it: "(g) 10000 tokens", "(c-full)".
	label := func(s scenario) string {
		if n, ok := strings.CutPrefix(s.id, "g"); ok {
			return "(g) " + n + " tokens"
		}
		return s.name[:strings.IndexByte(s.name, ')')+1]
	}
	bh := func(before *scenario) scenario {
		s := scenario{id: "bh", name: fmt.Sprintf("(bh) (bp) adding tollgate's %d upstream headers", len(added)),
			proc: bareHeaders, admin: bareHeaders.admin, load: shared(get(bareHeaders.url, hot)), stats: bareHeaders.admin}
		if before != nil {
			s.id, s.name = "bh@"+before.id, "(bh) again, before "+label(*before)
		}
		return s
	}
	scenarios := []scenario{
		{id: "a", name: "(a) direct upstream", proc: upstream, load: shared(get(upstream.url, nil))},
		{id: "b", name: "(b) bare httputil.ReverseProxy", proc: bare, load: shared(get(bare.url, hot)), stats: bare.admin},
		{id: "bp", name: "(bp) bare httputil.ReverseProxy with a BufferPool", proc: barePool, admin: barePool.admin, load: shared(get(barePool.url, hot)), stats: barePool.admin},
		bh(nil),
		{id: "c", name: "(c) tollgate, one hot token, fresh process", proc: gw.child, admin: gw.admin, load: shared(get(gw.url, hot)), stats: gw.admin},
	}
	// The fleet scenarios: each size's tokens cycle after a warm-up pass
	// over those not seen yet; then the hot token with the cache full.
	var fleetMemory []string
	var beforeFleet gatewayStats
	for i, n := range fleetSizes {
		from := 0
		if i > 0 {
			from = fleetSizes[i-1]
		}
		scenarios = append(scenarios, scenario{id: fmt.Sprintf("g%d", n), name: fmt.Sprintf("(g) tollgate, fleet of %d distinct %s tokens after warm-up", n, *alg),
			proc: gw.child, load: shared(get(gw.url, fleetTokens[:n])), stats: gw.admin, seq: new(atomic.Int64),
			before: func() error {
				if i == 0 {
					if beforeFleet, err = heapStats(ctx, gw.admin); err != nil {
						return err
					}
				}
				fmt.Fprintf(stderr, "warming up %d tokens…\n", n-from)
				if err := warm(ctx, client, gw.url, fleetTokens[from:n], *conns); err != nil {
					return err
				}
				after, err := heapStats(ctx, gw.admin)
				if err != nil {
					return err
				}
				cached := after.entries - beforeFleet.entries
				if cached <= 0 {
					return fmt.Errorf("the warm-up cached no token (is TOLLGATE_TOKEN_CACHE_SIZE 0 in the environment?)")
				}
				heap, offHeap := after.heapAlloc-beforeFleet.heapAlloc, after.offHeap-beforeFleet.offHeap
				fleetMemory = append(fleetMemory, fmt.Sprintf("fleet of %d: %.0f tokens cached, heap +%.1f MiB and off-heap records +%.1f MiB = %.0f B per cached token (%.0f B of it on the heap), RSS %.1f MiB",
					n, cached, heap/(1<<20), offHeap/(1<<20), (heap+offHeap)/cached, heap/cached, gw.rss()/(1<<20)))
				return nil
			}})
	}
	if len(fleetSizes) > 0 {
		scenarios = append(scenarios, scenario{id: "c-full", name: "(c-full) tollgate, one hot token, the fleet in the cache",
			proc: gw.child, admin: gw.admin, load: shared(get(gw.url, hot)), stats: gw.admin})
	}
	scenarios = append(scenarios,
		scenario{id: "d", name: fmt.Sprintf("(d) tollgate, cold: %d distinct %s tokens, each new", len(many), *alg), proc: gw.child, admin: gw.admin, load: shared(once(get(gw.url, many), len(many))), stats: gw.admin},
		scenario{id: "e", name: fmt.Sprintf("(e) refresh grant, %s%s", *alg, refreshNote), proc: gw.child, admin: gw.admin, load: shared(post("grant_type=refresh_token&client_id=anonymous&refresh_token=" + refresh))},
		scenario{id: "f", name: "(f) password grant (argon2id default)", proc: gw.child, load: shared(post("grant_type=password&client_id=anonymous&username=" + benchUser + "&password=" + benchPassword))},
	)
	// Each fleet target is a ratio to (bp) measured again just before it
	// (after the warm-up, which the baseline then takes over): this
	// machine's throughput drifts over a run by more than the margins the
	// targets leave, and the first (bp) is minutes before the last of
	// them.
	for i := 0; i < len(scenarios); i++ {
		if s := scenarios[i]; strings.HasPrefix(s.id, "g") || s.id == "c-full" || s.id == "d" {
			scenarios = slices.Insert(scenarios, i, scenario{id: "bp@" + s.id, name: "(bp) again, before " + label(s),
				proc: barePool, admin: barePool.admin, load: shared(get(barePool.url, hot)), stats: barePool.admin, before: s.before},
				bh(&s))
			scenarios[i+2].before = nil
			i += 2
		}
	}
	// -repeat: each fleet and (c-full) again, with the baselines before
	// it, right after itself (the cold scenario's tokens are each sent
	// once, so it is not repeated). Repeat r of a scenario is id#r.
	for i := 0; i < len(scenarios); i++ {
		if s := scenarios[i]; strings.HasPrefix(s.id, "g") || s.id == "c-full" {
			var more []scenario
			for r := 2; r <= *repeat; r++ {
				for _, m := range scenarios[i-2 : i+1] { // (bp) again, (bh) again, the scenario
					m.id, m.name, m.before = repeatID(m.id, r), fmt.Sprintf("%s, #%d", m.name, r), nil
					more = append(more, m)
				}
			}
			scenarios = slices.Insert(scenarios, i+1, more...)
			i += len(more)
		}
	}
	// The store scenarios run next to the one they are compared with, so
	// that the machine's drift between them is least.
	after := func(id string, s scenario) {
		i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.id == id })
		scenarios = slices.Insert(scenarios, i+1, s)
	}
	if withRedis {
		redis, storeURL, err := startRedis(ctx, *redisBin, filepath.Join(dir, "redis"))
		if err != nil {
			return err
		}
		defer redis.stop()
		gwr, err := startGateway(ctx, bin, filepath.Join(dir, "gateway-redis"), upstream.url, *alg, *profiles != "",
			"TOLLGATE_SESSION_STORE="+storeURL)
		if err != nil {
			return err
		}
		defer gwr.stop()
		fmt.Fprintf(stderr, "revoking %d sessions in Redis, %d logins…\n", revokedSessions, *conns+1)
		if err := seedRevoked(ctx, storeURL, revokedSessions); err != nil {
			return err
		}
		if err := waitRevoked(ctx, gwr.admin, revokedSessions); err != nil {
			return err
		}
		_, access, err := login(ctx, client, gwr.url, "")
		if err != nil {
			return err
		}
		handles, err := loginMany(ctx, client, gwr.url, scope, *conns)
		if err != nil {
			return err
		}
		// (e-memory), inserted after (e) below, comes before (e-redis).
		after("e", scenario{id: "e-redis", name: "(e-redis) refresh grant, Redis store on a unix socket", proc: gwr.child, admin: gwr.admin, sidecar: redis, load: refreshChains(ctx, gwr.url, handles)})
		after("c", scenario{id: "c-revoked", name: fmt.Sprintf("(c-revoked) tollgate, one hot token, store on with %dk revoked sessions", revokedSessions/1000),
			proc: gwr.child, admin: gwr.admin, sidecar: redis, load: shared(get(gwr.url, []string{"Bearer " + access})), stats: gwr.admin})
	}
	if *tracing {
		// The upstream answers 204 to everything: a collector that
		// discards what it is sent, costing the gateway what a real one
		// would.
		for _, t := range []struct{ id, ratio string }{{"c-trace100", "1"}, {"c-trace1", "0.01"}} {
			gwt, err := startGateway(ctx, bin, filepath.Join(dir, "gateway-"+t.id), upstream.url, *alg, false,
				"OTEL_EXPORTER_OTLP_ENDPOINT="+upstream.url, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
				"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG="+t.ratio)
			if err != nil {
				return err
			}
			defer gwt.stop()
			_, access, err := login(ctx, client, gwt.url, "")
			if err != nil {
				return err
			}
			pct := strings.TrimSuffix(strconv.FormatFloat(100*must(strconv.ParseFloat(t.ratio, 64)), 'f', -1, 64), ".0")
			after("c", scenario{id: t.id, name: fmt.Sprintf("(%s) tollgate, one hot token, spans exported, %s%% sampled", t.id, pct),
				proc: gwt.child, load: shared(get(gwt.url, []string{"Bearer " + access})), stats: gwt.admin})
		}
	}
	if withMemory {
		gwm, err := startGateway(ctx, bin, filepath.Join(dir, "gateway-memory"), upstream.url, *alg, *profiles != "",
			"TOLLGATE_SESSION_STORE=memory")
		if err != nil {
			return err
		}
		defer gwm.stop()
		fmt.Fprintf(stderr, "%d logins on the memory store…\n", *conns)
		handles, err := loginMany(ctx, client, gwm.url, scope, *conns)
		if err != nil {
			return err
		}
		after("e", scenario{id: "e-memory", name: "(e-memory) refresh grant, memory store", proc: gwm.child, admin: gwm.admin, load: refreshChains(ctx, gwm.url, handles)})
	}
	for i := range scenarios {
		if scenarios[i].seq == nil {
			scenarios[i].seq = new(atomic.Int64)
		}
	}
	// measure runs s's load for d, reading its process's statistics around
	// it, and takes a CPU profile meanwhile into the file profile ("": none).
	measure := func(s scenario, d time.Duration, profile string) (sample, error) {
		var before gatewayStats
		if s.stats != "" {
			var err error
			if before, err = scrapeStats(ctx, s.stats); err != nil {
				return sample{}, err
			}
		}
		var profiled chan error
		if profile != "" && s.admin != "" {
			profiled = make(chan error, 1)
			go func() { profiled <- cpuProfile(ctx, s.admin, d, profile) }()
		}
		sm, err := drive(ctx, client, s.proc, s.sidecar, s.load, s.seq, *conns, d)
		if profiled != nil {
			if perr := <-profiled; perr != nil {
				fmt.Fprintf(stderr, "profile of %s: %v\n", s.name, perr)
			}
		}
		if err != nil {
			return sm, err
		}
		if s.stats != "" {
			now, err := scrapeStats(ctx, s.stats)
			if err != nil {
				return sm, err
			}
			change := now.minus(before)
			sm.stats = &change
		}
		return sm, nil
	}
	results := map[string]result{}
	var table []result
	sliced := false
	for i := 0; i < len(scenarios); {
		// A group is measured together: a fleet or (c-full) with the
		// (bp) and (bh) before it, in turns, under -interleave.
		group, rounds := scenarios[i:i+1], 1
		if t, ok := strings.CutPrefix(scenarios[i].id, "bp@"); ok && *interleave > 1 && (strings.HasPrefix(t, "g") || strings.HasPrefix(t, "c-full")) {
			group, rounds = scenarios[i:i+3], *interleave
			sliced = true
		}
		i += len(group)
		if s := group[0]; s.before != nil {
			if err := s.before(); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
		}
		slice := *duration / time.Duration(rounds)
		for _, s := range group {
			if rounds > 1 {
				fmt.Fprintf(stderr, "%s: %s in %d slices, in turns with the others of its group…\n", s.name, *duration, rounds)
			} else {
				fmt.Fprintf(stderr, "%s: %s…\n", s.name, *duration)
			}
		}
		samples := make([]sample, len(group))
		for round := range rounds {
			for _, j := range order(round, len(group)) {
				s, profile := group[j], ""
				if *profiles != "" && round == 0 {
					profile = filepath.Join(*profiles, s.id+".pprof")
				}
				sm, err := measure(s, slice, profile)
				if err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
				samples[j].add(sm)
			}
		}
		for j, s := range group {
			r, err := samples[j].result(s.proc.rss() / (1 << 20))
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			r.name, r.id = s.name, s.id
			results[s.id] = r
			table = append(table, r)
		}
	}
	printTable(stdout, table, results["b"], baseline(results))
	if sliced {
		fmt.Fprintf(stdout, "-interleave %d: each fleet and (c-full), and the (bp) and (bh) again before it, measured in %d slices of %s each, the three in turns.\n",
			*interleave, *interleave, *duration/time.Duration(*interleave))
	}
	if len(fleetMemory) > 0 {
		fmt.Fprintln(stdout)
		for _, line := range fleetMemory {
			fmt.Fprintln(stdout, line)
		}
		printFleetRatios(stdout, results, fleetSizes, *repeat)
	}
	fmt.Fprintln(stdout)
	printSameHeaders(stdout, results, fleetSizes, *repeat, addedNames, slices.Sorted(maps.Keys(removed)))
	if *store != "" {
		fmt.Fprintln(stdout)
		printStoreRatios(stdout, results)
	}
	if *tracing {
		c, bp := results["c"], results["bp"]
		fmt.Fprintf(stdout, "\ntracing: one hot token, requests/s ×(c) tracing off: 1%% sampled %.2f (target ≥ 0.9), 100%% sampled %.2f; (c) ×(bp) %.2f (target ≥ 0.95)\n",
			results["c-trace1"].rps/c.rps, results["c-trace100"].rps/c.rps, c.rps/bp.rps)
	}
	if *idle > 0 {
		perConn, n, err := freshIdleMemory(ctx, bin, filepath.Join(dir, "idle"), upstream.url, *alg, *idle)
		if err != nil {
			fmt.Fprintf(stdout, "\nidle keep-alive connections: not measured: %v\n", err)
		} else {
			fmt.Fprintf(stdout, "\nidle keep-alive connections: %d held open, %.1f KiB RSS each\n", n, perConn/1024)
		}
	}
	fmt.Fprintf(stdout, "\n%s, GOMAXPROCS %d, %d connections, %s per scenario; load generator on the same machine\n",
		time.Now().Format("2006-01-02"), runtime.GOMAXPROCS(0), *conns, *duration)
	return nil
}

// order is the order in which the n scenarios of a group are measured in
// round r: rotated by one each round, so that over n rounds each is
// measured in each place once.
func order(r, n int) []int {
	o := make([]int, n)
	for k := range o {
		o[k] = (k + r) % n
	}
	return o
}

// freshIdleMemory measures idle connections on a gateway of its own: the
// one that served the scenarios holds heap it is still returning to the
// system, which would hide the connections' memory.
func freshIdleMemory(ctx context.Context, bin, dir, upstream, alg string, n int) (float64, int, error) {
	gw, err := startGateway(ctx, bin, dir, upstream, alg, false)
	if err != nil {
		return 0, 0, err
	}
	defer gw.stop()
	return idleMemory(ctx, gw.child, n)
}
