package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/jwk"
	"github.com/tollgate/tollgate/verifier"
	"github.com/tollgate/tollgate/watch"
)

// SigningKey is one private key from the keys directory.
type SigningKey struct {
	// ID is the RFC 7638 thumbprint of the public key.
	ID string
	// Algorithm is ES256 (P-256), RS256 (RSA) or EdDSA (Ed25519).
	Algorithm string
	// File is the file the key came from.
	File string

	method jwt.SigningMethod
	signer crypto.Signer
	secret []byte // HMAC keys only
	// refreshMAC is the key's refresh MAC key (see refreshMACKey), and
	// refreshKID the kid of refresh tokens MACed with it ("rt-" + ID);
	// unset for HMAC keys.
	refreshMAC []byte
	refreshKID string
}

// Public returns the key's public half.
func (k *SigningKey) Public() crypto.PublicKey { return k.signer.Public() }

// keySnapshot is one immutable reading of the keys directory.
type keySnapshot struct {
	current *SigningKey // the newest key: it signs
	hmac    *SigningKey // the newest HMAC key, for legacy clients; never published
	all     []*SigningKey
	set     *verifier.KeySet // every public key, for in-process verification
	jwks    []byte           // every public key, published
	// refresh verifies refresh tokens: every private key's refresh MAC key
	// and public key, never an HMAC (*.jwk) key.
	refresh *verifier.KeySet
}

// KeysConfig configures Keys.
type KeysConfig struct {
	// Dir holds PEM private keys (PKCS#8, SEC 1 or PKCS#1). Required. The
	// newest key — the last file in name order; keygen names files by
	// creation time — signs; every key is published until its file is
	// removed.
	Dir string
	// PollInterval is how often Run looks for changes. Zero means 5s.
	PollInterval time.Duration
}

// Keys holds tollgate's signing keys, re-read when the directory changes.
// It is a verifier.KeySource, so the proxy verifies self-issued tokens
// without an HTTP round trip.
type Keys struct {
	cfg      KeysConfig
	logger   *zap.Logger
	onReload func(error)
	watch    *watch.Watcher
	snap     atomic.Pointer[keySnapshot]
}

var _ verifier.KeySource = (*Keys)(nil)

// LoadKeys reads the directory; no usable key is an error. onReload, if
// not nil, is called after every later reload attempt with its error. A
// nil logger logs nothing.
func LoadKeys(cfg KeysConfig, logger *zap.Logger, onReload func(error)) (*Keys, error) {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if onReload == nil {
		onReload = func(error) {}
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	k := &Keys{cfg: cfg, logger: logger.Named("keys"), onReload: onReload}
	w, err := watch.New(watch.Config{Path: cfg.Dir, Interval: cfg.PollInterval, MaxBytes: 1 << 20}, k.apply, watch.WithReport(k.reloaded))
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	k.watch = w
	if err := w.Load(); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return k, nil
}

// apply builds a snapshot from the directory's files and serves it; any
// bad file fails the whole set, so a half-written key never replaces a
// good one.
//
// A directory emptied of keys is no broken file: the operator removed
// every key, so none may sign or verify any longer. Its snapshot is served
// (the token endpoints answer 503 until a key is added) and the reload
// reported as failed. At start it is an error: tollgate does not start
// without a key.
func (k *Keys) apply(files []watch.File) error {
	s, err := parseKeyDir(k.cfg.Dir, files)
	if errors.Is(err, errNoKeys) && k.snap.Load() != nil {
		k.snap.Store(s)
		k.logger.Error("every signing key was removed: no token is minted, and none of theirs verifies, until a key is added", zap.String("dir", k.cfg.Dir))
		return err
	}
	if err != nil {
		return err
	}
	k.snap.Store(s)
	k.logger.Info("signing keys loaded", zap.Int("keys", len(s.all)), zap.String("signing_kid", s.current.ID))
	return nil
}

// errNoKeys: the directory holds no private key.
var errNoKeys = errors.New("signing keys: no key")

// reloaded logs a failed reload and reports every attempt.
func (k *Keys) reloaded(err error) {
	if err != nil {
		k.logger.Error("signing keys not reloaded; keeping the last good set", zap.String("dir", k.cfg.Dir), zap.Error(err))
	}
	k.onReload(err)
}

// Reload re-reads the directory; on error the last good set is kept.
func (k *Keys) Reload() error { return k.watch.Reload() }

// Run reloads the keys when the directory changes, until ctx is done.
func (k *Keys) Run(ctx context.Context) error { return k.watch.Run(ctx) }

// Keys implements verifier.KeySource.
func (k *Keys) Keys(ctx context.Context, kid string) ([]*verifier.Key, error) {
	return k.snap.Load().set.Keys(ctx, kid)
}

// JWKS returns the published JWK Set.
func (k *Keys) JWKS() []byte { return k.snap.Load().jwks }

// Len returns the number of keys loaded, HMAC keys included.
func (k *Keys) Len() int { return k.snap.Load().set.Len() }

// Current returns the key that signs new tokens, or nil when every key
// was removed.
func (k *Keys) Current() *SigningKey { return k.snap.Load().current }

// Algorithms lists the algorithms of the keys now loaded (those an ID
// token may be signed with), RS256 first when loaded.
func (k *Keys) Algorithms() []string {
	var algs []string
	for _, sk := range k.snap.Load().all {
		if sk.Algorithm == "RS256" && !slices.Contains(algs, "RS256") {
			algs = append([]string{"RS256"}, algs...)
			continue
		}
		if !slices.Contains(algs, sk.Algorithm) {
			algs = append(algs, sk.Algorithm)
		}
	}
	return algs
}

// sign signs a claims set (JSON) with the current key, or with the newest
// HMAC key when legacy is set.
func (k *Keys) sign(payload []byte, typ string, legacy bool) (string, error) {
	s := k.snap.Load()
	sk := s.current
	if sk == nil {
		return "", errNoKeys
	}
	var key any = sk.signer
	if legacy {
		if s.hmac == nil {
			return "", errors.New("signing keys: no HMAC (*.jwk) key for an HS256 client")
		}
		sk, key = s.hmac, s.hmac.secret
	}
	return signJWT(sk.method, sk.ID, typ, key, payload)
}

// signWith signs a claims set with the newest key of alg, or the newest
// key when none of alg is loaded.
func (k *Keys) signWith(payload []byte, typ, alg string) (string, error) {
	s := k.snap.Load()
	sk := s.current
	if sk == nil {
		return "", errNoKeys
	}
	for j := len(s.all) - 1; j >= 0; j-- {
		if s.all[j].Algorithm == alg {
			sk = s.all[j]
			break
		}
	}
	return signJWT(sk.method, sk.ID, typ, sk.signer, payload)
}

// signJWT returns the compact JWS of payload (RFC 7515 §7.1), its header
// holding alg, kid and typ.
func signJWT(method jwt.SigningMethod, kid, typ string, key any, payload []byte) (string, error) {
	in := signingInput(jwtHeader(method.Alg(), kid, typ), payload)
	sig, err := method.Sign(string(in), key)
	if err != nil {
		return "", err
	}
	in = append(in, '.')
	in = base64.RawURLEncoding.AppendEncode(in, sig)
	return string(in), nil
}

// RefreshKeys is the key source of refresh tokens: for each private key of
// the directory, its public key (for refresh tokens signed with it) and
// its refresh MAC key (see refreshMACKey). The shared HMAC keys of legacy
// clients are not among them: whoever holds one must not mint sessions.
func (k *Keys) RefreshKeys() verifier.KeySource { return refreshKeys{k} }

type refreshKeys struct{ k *Keys }

func (r refreshKeys) Keys(ctx context.Context, kid string) ([]*verifier.Key, error) {
	return r.k.snap.Load().refresh.Keys(ctx, kid)
}

// signRefresh signs a stateless refresh token's claims: with the current
// key's refresh MAC key (HS256) when mac is set, else with the current key.
func (k *Keys) signRefresh(payload []byte, mac bool) (string, error) {
	if !mac {
		return k.sign(payload, "JWT", false)
	}
	sk := k.snap.Load().current
	if sk == nil {
		return "", errNoKeys
	}
	return signJWT(jwt.SigningMethodHS256, sk.refreshKID, "JWT", sk.refreshMAC, payload)
}

// refreshMACKey derives a private key's refresh MAC key: HKDF-SHA256
// (RFC 5869) of its secret — the P-256 scalar in its fixed 32-byte form,
// the Ed25519 seed, or the RSA private exponent and primes, so that no
// encoding a Go release might change enters it — with a label and the
// key's kid as the context. A refresh token is read by tollgate alone, so
// it needs no signature anyone can verify: a MAC under a key only the
// holders of the private key can derive is as strong for it, and costs a
// refresh about a microsecond where an ES256 signature and verification
// cost a hundred. Every replica with the same keys directory derives the
// same key; removing the private key retires its refresh tokens with it.
func refreshMACKey(key crypto.Signer, kid string) ([]byte, error) {
	var secret []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		b, err := k.Bytes()
		if err != nil {
			return nil, err
		}
		secret = b
	case ed25519.PrivateKey:
		secret = k.Seed()
	case *rsa.PrivateKey:
		secret = k.D.Bytes()
		for _, p := range k.Primes {
			secret = append(secret, p.Bytes()...)
		}
	default:
		return nil, fmt.Errorf("no refresh MAC key for a %T", key)
	}
	return hkdf.Key(sha256.New, secret, nil, "tollgate refresh token MAC key v1 "+kid, 32)
}

// hasHMAC reports whether an HMAC key is loaded.
func (k *Keys) hasHMAC() bool { return k.snap.Load().hmac != nil }

// parseHMACKey reads a JWK {"kty":"oct","k":…} of at least 32 bytes: the
// legacy HS256 key. It is never published.
func parseHMACKey(name string, data []byte) (*SigningKey, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	secret, ok := jwk.Key.([]byte)
	if !ok {
		return nil, errors.New("a *.jwk file in the keys directory must be an HMAC (kty oct) key")
	}
	if len(secret) < 32 {
		return nil, errors.New("HMAC keys must have at least 32 bytes")
	}
	sum := sha256.Sum256(append([]byte("tollgate-hmac-kid:"), secret...))
	return &SigningKey{ID: "hs-" + base64.RawURLEncoding.EncodeToString(sum[:9]), Algorithm: "HS256",
		File: name, method: jwt.SigningMethodHS256, secret: secret}, nil
}

// parseKeyDir reads every *.pem file (private keys) and *.jwk file (HMAC
// keys) of the directory; any bad file fails the whole read.
func parseKeyDir(dir string, files []watch.File) (*keySnapshot, error) {
	s := &keySnapshot{}
	var errs []error
	var public, refresh []*verifier.Key
	var jwks jose.JSONWebKeySet
	for _, f := range files { // in name order: the last key is the newest
		name := filepath.Join(dir, f.Name)
		switch filepath.Ext(f.Name) {
		case ".pem":
			sk, err := parseKeyFile(name, f.Data)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
			if slices.ContainsFunc(s.all, func(o *SigningKey) bool { return o.ID == sk.ID }) {
				continue // the same key twice
			}
			s.all = append(s.all, sk)
			pub := sk.signer.Public()
			public = append(public, &verifier.Key{ID: sk.ID, Algorithms: []string{sk.Algorithm}, Public: pub})
			refresh = append(refresh, public[len(public)-1],
				&verifier.Key{ID: sk.refreshKID, Algorithms: []string{"HS256"}, Public: sk.refreshMAC})
			jwks.Keys = append(jwks.Keys, jose.JSONWebKey{Key: pub, KeyID: sk.ID, Algorithm: sk.Algorithm, Use: "sig"})
		case ".jwk":
			sk, err := parseHMACKey(name, f.Data)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
			s.hmac = sk // the last in name order is the newest
			public = append(public, &verifier.Key{ID: sk.ID, Algorithms: []string{"HS256"}, Public: sk.secret})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.set, s.refresh = verifier.NewKeySet(public...), verifier.NewKeySet(refresh...)
	var err error
	if s.jwks, err = json.Marshal(jwks); err != nil {
		return nil, err
	}
	if len(s.all) == 0 {
		// An empty set retires every key: HMAC keys go with the others.
		s.hmac, s.set, s.refresh, s.jwks = nil, verifier.NewKeySet(), verifier.NewKeySet(), []byte(`{"keys":[]}`)
		return s, fmt.Errorf("%w: no *.pem key in %s (create one with `tollgate keygen`)", errNoKeys, dir)
	}
	s.current = s.all[len(s.all)-1]
	return s, nil
}

// parseKeyFile reads a PEM private key.
func parseKeyFile(name string, data []byte) (*SigningKey, error) {
	key, err := jwk.ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, err
	}
	// The algorithm a key signs with is the first its material allows;
	// the verifier derives the same from the public half.
	alg := jwk.Algorithms(key)[0]
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if alg != "ES256" {
			return nil, errors.New("only P-256 EC keys are supported (ES256)")
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("RSA keys must have at least 2048 bits")
		}
	}
	kid, err := jwk.Thumbprint(key)
	if err != nil {
		return nil, err
	}
	mac, err := refreshMACKey(key, kid)
	if err != nil {
		return nil, err
	}
	return &SigningKey{ID: kid, Algorithm: alg, File: name, method: jwt.GetSigningMethod(alg), signer: key, refreshMAC: mac, refreshKID: "rt-" + kid}, nil
}

// DefaultRSABits is the size of RS256 keys keygen makes. 2048 bits:
// NIST (SP 800-57) accepts it through 2030, it is what identity providers
// (Keycloak, Dex) sign with, and signing keys here are rotated in months,
// not kept for decades; a 3072-bit key costs about 3× the CPU per
// signature (see docs/PERFORMANCE.md), which a fleet renewing its tokens
// pays on every refresh.
const DefaultRSABits = 2048

// GenerateKey makes a new private key for alg (ES256, RS256 with
// DefaultRSABits, or EdDSA) and writes it into dir as PKCS#8 PEM, named by
// creation time so that it becomes the newest key. It returns the file
// name and the kid.
func GenerateKey(dir, alg string, now time.Time) (string, string, error) {
	return GenerateKeyBits(dir, alg, 0, now)
}

// GenerateKeyBits is GenerateKey with the RSA key size: 2048, 3072 or
// 4096 for RS256 (0: DefaultRSABits); other algorithms take 0.
func GenerateKeyBits(dir, alg string, bits int, now time.Time) (string, string, error) {
	switch {
	case alg == "RS256" && bits == 0:
		bits = DefaultRSABits
	case alg == "RS256" && bits != 2048 && bits != 3072 && bits != 4096:
		return "", "", fmt.Errorf("RSA keys of %d bits: want 2048, 3072 or 4096", bits)
	case alg != "RS256" && bits != 0:
		return "", "", fmt.Errorf("-bits is for RS256 keys; %s keys have a fixed size", alg)
	}
	key, err := jwk.Generate(alg, bits)
	if err != nil {
		return "", "", err
	}
	pemBytes, err := jwk.MarshalPrivateKeyPEM(key)
	if err != nil {
		return "", "", err
	}
	kid, err := jwk.Thumbprint(key)
	if err != nil {
		return "", "", err
	}
	short := sha256.Sum256([]byte(kid))
	name := filepath.Join(dir, fmt.Sprintf("%s-%s-%x.pem", now.UTC().Format("20060102T150405Z"), strings.ToLower(alg), short[:3]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	// Write then rename, so a reload never sees half a key.
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, pemBytes, 0o600); err != nil {
		return "", "", err
	}
	if err := os.Rename(tmp, name); err != nil {
		return "", "", err
	}
	return name, kid, nil
}
