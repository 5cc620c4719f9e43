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
	// SIGHUP asks a running gateway to reload instead of killing it. It is
	// caught before anything starts, so that an early one is not fatal
	// either.
	var reload chan os.Signal
	if len(os.Args) > 1 && (os.Args[1] == "serve" || os.Args[1] == "demo") {
		reload = make(chan os.Signal, 1)
		signal.Notify(reload, syscall.SIGHUP)
	}
	if err := execute(ctx, reload, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

const usage = `usage: tollgate <command>

commands:
  serve          run the gateway (configuration from TOLLGATE_* variables
                 and the YAML file named by TOLLGATE_CONFIG_FILE); SIGHUP
                 reloads the users file and the signing keys, SIGTERM
                 drains and stops
  demo           run a zero-configuration demo on 127.0.0.1 with an echo upstream
  check-config   validate the configuration, list every problem, and exit
  keygen [-alg ES256|RS256|EdDSA] [-bits 2048|3072|4096] [-dir DIR]
                 write a new signing key (default: ES256 into
                 TOLLGATE_SIGNING_KEYS_DIR); it signs from the next reload on
  sessions list --user ID | sessions revoke --user ID | --session SID
                 list or end sessions in the configured Redis session store
  hash-password  read a password on stdin, print its argon2id hash for the
                 users file
  version        print the version
`

// run executes one command without reload requests.
func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return execute(ctx, nil, args, environ, stdin, stdout, stderr)
}

// execute executes one command. ctx is cancelled by SIGINT/SIGTERM; each
// value received on reload (SIGHUP) asks serve and demo to reload.
func execute(ctx context.Context, reload <-chan os.Signal, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, reload, environ, stderr)
	case "demo":
		return demo(ctx, reload, environ, stdout, stderr)
	case "check-config":
		return checkConfig(environ, stdout, stderr)
	case "keygen":
		return keygen(args[1:], environ, stdout, stderr)
	case "sessions":
		return sessionsCommand(ctx, args[1:], environ, stdout, stderr)
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
// gracefully. The warnings about the configuration are logged even when it
// is refused.
func serve(ctx context.Context, reload <-chan os.Signal, environ []string, stderr io.Writer) error {
	m, logger, warnings, err := configure(environ, stderr)
	defer logger.Sync()
	for _, w := range warnings {
		logger.Warn(w)
	}
	if err != nil {
		return err
	}
	var offHeap int64
	if m.verifier != nil {
		offHeap = int64(m.verifier.OffHeapLimit())
	}
	applyMemoryLimit(environ, offHeap, logger)
	return start(ctx, m, reload, nil, nil)
}

// configure is the one validation pass of serve and check-config: it reads
// the environment and the YAML file and, whatever problems they have,
// builds every part, so that every problem is reported at once. The logger
// writes to stderr as configured, or as JSON at info when the logging
// settings themselves are wrong; it is never nil. The warnings are
// returned even with an error.
func configure(environ []string, stderr io.Writer) (*Main, *zap.Logger, []string, error) {
	cfg, warnings, errs := loadConfig(environ)
	logger, err := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil { // reported by check
		logger, _ = newLogger("info", "json", stderr)
	}
	m, err := NewMain(cfg, logger)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, logger, warnings, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return m, logger, append(warnings, m.warnings...), nil
}

// start is the one startup path of serve and demo: it runs m — on public,
// when a listener is handed in — calls started, if not nil, once it
// serves, reloads it on every value received on reload, and shuts down
// gracefully when ctx is cancelled.
func start(ctx context.Context, m *Main, reload <-chan os.Signal, public net.Listener, started func(*Main) error) error {
	m.publicLn = public
	if err := m.Run(ctx); err != nil {
		return err
	}
	if started != nil {
		if err := started(m); err != nil {
			return errors.Join(err, m.Close())
		}
	}
	for {
		select {
		case <-ctx.Done():
			return m.Close()
		case sig := <-reload:
			m.Reload("reload requested by " + signalName(sig))
		}
	}
}

// signalName is SIGHUP for syscall.SIGHUP: what operators call it.
func signalName(sig os.Signal) string {
	if sig == syscall.SIGHUP {
		return "SIGHUP"
	}
	return sig.String()
}

// checkConfig runs exactly the validation serve runs, without listening.
func checkConfig(environ []string, stdout, stderr io.Writer) error {
	_, logger, warnings, err := configure(environ, stderr)
	defer logger.Sync()
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "configuration ok")
	return nil
}

// keygen writes a new private key into the signing keys directory.
func keygen(args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", "ES256", "ES256, RS256 or EdDSA")
	bits := fs.Int("bits", 0, fmt.Sprintf("RSA key size for RS256: 2048 (default, %d), 3072 or 4096", issuer.DefaultRSABits))
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
	file, kid, err := issuer.GenerateKeyBits(*dir, *alg, *bits, time.Now())
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
