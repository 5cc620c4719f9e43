// Command tollgate is an authenticating reverse-proxy gateway: it verifies
// Bearer JWTs on every request, maps their claims to identity headers and
// forwards to the operator's upstream APIs.
//
// Usage:
//
//	tollgate serve          run the gateway (configuration from TOLLGATE_* and TOLLGATE_CONFIG_FILE)
//	tollgate demo           run a zero-configuration demo on 127.0.0.1
//	tollgate check-config   validate the configuration and exit
//	tollgate keygen         write a new signing key into TOLLGATE_SIGNING_KEYS_DIR
//	tollgate hash-password  read a password on stdin, print its argon2id hash
//	tollgate version        print the version
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/issuer"
	"go.uber.org/zap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

const usage = `usage: tollgate <command>

commands:
  serve          run the gateway (configuration from TOLLGATE_* variables
                 and the YAML file named by TOLLGATE_CONFIG_FILE)
  demo           run a zero-configuration demo on 127.0.0.1 with an echo upstream
  check-config   validate the configuration, list every problem, and exit
  keygen [-alg ES256|RS256|EdDSA] [-dir DIR]
                 write a new signing key (default: ES256 into
                 TOLLGATE_SIGNING_KEYS_DIR); it signs from the next reload on
  hash-password  read a password on stdin, print its argon2id hash for the
                 users file
  version        print the version
`

// run executes one command. ctx is cancelled by SIGINT/SIGTERM.
func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, environ, stderr)
	case "demo":
		return demo(ctx, environ, stdout, stderr)
	case "check-config":
		return checkConfig(environ, stdout, stderr)
	case "keygen":
		return keygen(args[1:], environ, stdout, stderr)
	case "hash-password":
		return hashPassword(stdin, stdout)
	case "version":
		bi := buildInfo()
		fmt.Fprintf(stdout, "tollgate %s (revision %s, %s)\n", bi.Version, bi.Revision, bi.GoVersion)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// serve runs the gateway until ctx is cancelled, then shuts down
// gracefully.
func serve(ctx context.Context, environ []string, stderr io.Writer) error {
	cfg, warnings, err := LoadConfig(environ)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	logger, err := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	defer logger.Sync()
	for _, w := range warnings {
		logger.Warn(w)
	}
	applyMemoryLimit(environ, logger)
	return start(ctx, cfg, logger, nil, nil)
}

// start is the one startup path of serve and demo: it builds the gateway
// from cfg, runs it — on public, when a listener is handed in — calls
// started, if not nil, once it serves, and shuts down gracefully when ctx
// is cancelled.
func start(ctx context.Context, cfg *Config, logger *zap.Logger, public net.Listener, started func(*Main) error) error {
	m, err := NewMain(cfg, logger)
	if err != nil {
		if public != nil {
			public.Close()
		}
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	for _, w := range m.warnings {
		logger.Warn(w)
	}
	m.publicLn = public
	if err := m.Run(ctx); err != nil {
		return err
	}
	if started != nil {
		if err := started(m); err != nil {
			return errors.Join(err, m.Close())
		}
	}
	<-ctx.Done()
	return m.Close()
}

// checkConfig runs exactly the validation serve runs, without listening.
func checkConfig(environ []string, stdout, stderr io.Writer) error {
	cfg, warnings, err := LoadConfig(environ)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	logger, err := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	m, err := NewMain(cfg, logger)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	for _, w := range m.warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintln(stdout, "configuration ok")
	return nil
}

// keygen writes a new private key into the signing keys directory.
func keygen(args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", "ES256", "ES256, RS256 or EdDSA")
	dir := fs.String("dir", "", "directory (default TOLLGATE_SIGNING_KEYS_DIR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		cfg, _, _ := parseConfig(environ)
		*dir = cfg.SigningKeysDir
	}
	if *dir == "" {
		return errors.New("keygen: no directory: pass -dir or set TOLLGATE_SIGNING_KEYS_DIR")
	}
	file, kid, err := issuer.GenerateKey(*dir, *alg, time.Now())
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s (%s, kid %s)\n", file, *alg, kid)
	return nil
}

// hashPassword reads one password (the first line of stdin) and prints its
// argon2id hash.
func hashPassword(stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return errors.New("hash-password: empty password on stdin")
	}
	h, err := identity.PasswordHasher{}.Hash([]byte(pw))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, h)
	return nil
}
