package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/issuer"
	"github.com/tollgate/tollgate/session"
	"github.com/tollgate/tollgate/verifier"
)

// sessionStore is what Main needs of a session store: the issuer's view,
// plus the revoked set the proxy reads and a count for the metrics.
type sessionStore interface {
	issuer.Sessions
	Count(ctx context.Context) (int, error)
	Revoked() *session.Revoked
}

// openStore builds the store TOLLGATE_SESSION_STORE names: nil for none.
// A Redis store must be Run (by Main) to follow revocations.
func openStore(cfg *Config, logger *zap.Logger, now func() time.Time, opts ...session.Option) (sessionStore, *session.Redis, error) {
	opts = append(opts, session.WithClock(now), session.WithRevokeFor(cfg.selfMaxLifetime()+cfg.Leeway))
	switch cfg.SessionStore {
	case "", "none":
		return nil, nil, nil
	case "memory":
		return session.NewMemory(now, opts...), nil, nil
	}
	rc := session.RedisConfig{URL: cfg.SessionStore}
	if cfg.SessionStorePasswordFile != "" {
		b, err := os.ReadFile(cfg.SessionStorePasswordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("TOLLGATE_SESSION_STORE_PASSWORD_FILE: %w", err)
		}
		rc.Password = strings.TrimRight(string(b), "\r\n")
	}
	switch {
	case cfg.SessionStoreSentinelMaster != "":
		rc.SentinelMaster, rc.SentinelAddrs = cfg.SessionStoreSentinelMaster, cfg.SessionStoreAddrs
	case len(cfg.SessionStoreAddrs) > 0:
		rc.ClusterAddrs = cfg.SessionStoreAddrs
	}
	r, err := session.NewRedis(rc, logger, opts...)
	if err != nil {
		return nil, nil, err
	}
	return r, r, nil
}

// sessionGuard is the proxy's session check: a token of tollgate's own
// issuer whose session is in this replica's revoked set is refused —
// one map lookup, no store round trip.
type sessionGuard struct {
	revoked  *session.Revoked
	issuers  []string      // tollgate's own: its public URL and its realms'
	maxStale time.Duration // 0: keep serving however old the set is
	now      func() time.Time
}

// Check implements proxy.SessionCheck.
func (g *sessionGuard) Check(tok *verifier.Token) error {
	if !slices.Contains(g.issuers, tok.Issuer()) {
		return nil
	}
	if g.maxStale > 0 && g.now().Sub(g.revoked.Confirmed()) > g.maxStale {
		return verifier.ErrRevocationUnknown
	}
	if g.revoked.Contains(tok.SessionID) { // not Claims: a cached token keeps none
		return verifier.ErrRevoked
	}
	return nil
}

// storeConfig is the issuer's view of the session settings.
func (c *Config) storeConfig() issuer.StoreConfig {
	return issuer.StoreConfig{ReuseInterval: c.RefreshReuseInterval, MaxPerUser: c.MaxSessionsPerUser,
		RefuseBeyond: c.SessionLimitPolicy == "refuse"}
}

// sessionsCommand is `tollgate sessions list|revoke`: support staff end a
// stolen box's session through the configured store, without touching
// Redis by hand.
func sessionsCommand(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "revoke") {
		return errors.New("sessions: want `sessions list --user ID` or `sessions revoke --user ID | --session SID`")
	}
	fs := flag.NewFlagSet("sessions "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "the user whose sessions")
	sid := fs.String("session", "", "one session id (revoke)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	// Only the store's settings matter here: the gateway's other settings
	// need not be complete on a support workstation.
	cfg, _, errs := parseConfig(environ)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	store, redis, err := openStore(cfg, zap.NewNop(), time.Now)
	if err != nil {
		return err
	}
	if store == nil {
		return errors.New("sessions: no session store (TOLLGATE_SESSION_STORE is none)")
	}
	if redis != nil {
		defer redis.Close()
	}
	if _, ok := store.(*session.Memory); ok {
		return errors.New("sessions: the memory store lives inside the running gateway; only a Redis store can be reached from here")
	}
	switch {
	case args[0] == "list" && *user != "":
		list, err := store.List(ctx, *user)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SESSION\tCLIENT\tPROFILE\tCREATED\tREFRESHED\tEXPIRES")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.ClientID, s.Profile, s.Created.UTC().Format(time.RFC3339),
				s.Refreshed.UTC().Format(time.RFC3339), s.Expires.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	case args[0] == "revoke" && (*user != "") != (*sid != ""):
		ids := []string{*sid}
		if *user != "" {
			list, err := store.List(ctx, *user)
			if err != nil {
				return err
			}
			ids = ids[:0]
			for _, s := range list {
				ids = append(ids, s.ID)
			}
		}
		until := time.Now().Add(cfg.selfMaxLifetime() + cfg.Leeway)
		if err := store.Revoke(ctx, ids, session.CauseOperator, until); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %d session(s)\n", len(ids))
		return nil
	}
	return errors.New("sessions: list needs --user; revoke needs exactly one of --user and --session")
}
