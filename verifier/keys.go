package verifier

import (
	"context"
	"crypto"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/tollgate/tollgate/jwk"
)

// Key is one verification key. Public is an *rsa.PublicKey,
// *ecdsa.PublicKey, ed25519.PublicKey, or a []byte HMAC secret.
type Key struct {
	// ID is the key's kid; for keys loaded without one it is the RFC 7638
	// thumbprint.
	ID string
	// Algorithms lists the JWS algorithms this key may verify. It is never
	// empty for a usable key and never mixes key families.
	Algorithms []string
	// Public is the verification key material.
	Public any
}

// allows reports whether k may verify a token signed with alg.
func (k *Key) allows(alg string) bool { return slices.Contains(k.Algorithms, alg) }

// KeySource supplies the verification keys of one issuer.
type KeySource interface {
	// Keys returns the keys that may have signed a token with the given
	// kid, or all keys when kid is empty. An unknown kid yields no keys
	// and no error; the error reports a source that cannot answer.
	Keys(ctx context.Context, kid string) ([]*Key, error)
}

// KeySet is an immutable kid-indexed set of keys. It is a KeySource.
type KeySet struct {
	byID map[string][]*Key
	all  []*Key
}

var _ KeySource = (*KeySet)(nil)

// NewKeySet indexes keys by ID.
func NewKeySet(keys ...*Key) *KeySet {
	s := &KeySet{byID: make(map[string][]*Key, len(keys)), all: keys}
	for _, k := range keys {
		s.byID[k.ID] = append(s.byID[k.ID], k)
	}
	return s
}

// Keys implements KeySource.
func (s *KeySet) Keys(_ context.Context, kid string) ([]*Key, error) {
	if kid == "" {
		return s.all, nil
	}
	return s.byID[kid], nil
}

// Len returns the number of keys in the set.
func (s *KeySet) Len() int { return len(s.all) }

// equal reports whether s and o hold the same keys (ID, algorithms and
// material), in any order. Material it cannot compare counts as different.
func (s *KeySet) equal(o *KeySet) bool {
	if len(s.all) != len(o.all) {
		return false
	}
	has := func(set []*Key, k *Key) bool { return slices.ContainsFunc(set, k.equal) }
	for _, k := range s.all {
		if !has(o.all, k) {
			return false
		}
	}
	for _, k := range o.all {
		if !has(s.all, k) {
			return false
		}
	}
	return true
}

// equal reports whether k and o are the same key.
func (k *Key) equal(o *Key) bool {
	if k.ID != o.ID || !slices.Equal(k.Algorithms, o.Algorithms) {
		return false
	}
	switch pub := k.Public.(type) {
	case []byte:
		secret, ok := o.Public.([]byte)
		return ok && subtle.ConstantTimeCompare(pub, secret) == 1
	case interface{ Equal(crypto.PublicKey) bool }: // every crypto public key type
		return pub.Equal(o.Public)
	default:
		return false
	}
}

// newKey makes a Key from public material, restricting it to the algorithms
// that are allowed by the issuer, possible for the key family, and (when the
// JWK names one) the key's own alg.
func newKey(kid, jwkAlg string, pub any, allowed []string) (*Key, error) {
	var algs []string
	for _, a := range jwk.Algorithms(pub) {
		if slices.Contains(allowed, a) && (jwkAlg == "" || jwkAlg == a) {
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		return nil, fmt.Errorf("key %q (%T) allows none of the algorithms %v", kid, pub, allowed)
	}
	if kid == "" {
		tp, err := jwk.Thumbprint(pub)
		if err != nil {
			return nil, err
		}
		kid = tp
	}
	return &Key{ID: kid, Algorithms: algs, Public: pub}, nil
}

// loadKeyFiles reads keys from PEM, JWK and JWKS files; a directory is read
// entry by entry (files only, sorted by name, hidden files skipped). Every
// problem is reported, joined.
func loadKeyFiles(paths []string, allowed []string) ([]*Key, error) {
	var keys []*Key
	var errs []error
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %v", ErrKeyFile, err))
			continue
		}
		for _, f := range files {
			ks, err := loadKeyFile(f, allowed)
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: %s: %v", ErrKeyFile, f, err))
				continue
			}
			keys = append(keys, ks...)
		}
	}
	return keys, errors.Join(errs...)
}

func expand(p string) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			files = append(files, filepath.Join(p, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no key files in directory", p)
	}
	return files, nil
}

func loadKeyFile(path string, allowed []string) ([]*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "{") {
		return parseJWKS(data, allowed)
	}
	return parsePEM(data, allowed)
}

// parsePEM reads every PEM block: public keys, certificates, and private
// keys (whose public half is used).
func parsePEM(data []byte, allowed []string) ([]*Key, error) {
	var keys []*Key
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var pub any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = c.PublicKey
			}
		default:
			pub, err = jwk.PrivateKey(block)
			if errors.Is(err, jwk.ErrNotPrivateKey) {
				continue // another kind of block, such as parameters
			}
		}
		if err != nil {
			return nil, fmt.Errorf("pem %s: %v", block.Type, err)
		}
		k, err := newKey("", "", jwk.Public(pub), allowed)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM key found")
	}
	return keys, nil
}

// parseJWKS parses a JWK Set or a single JWK. Keys of unsupported types or
// uses ("use" other than "sig") are skipped; it is an error if no usable key
// remains. Private JWKs contribute their public half; symmetric ("oct") keys
// are kept only when an HMAC algorithm is allowed.
func parseJWKS(data []byte, allowed []string) ([]*Key, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks: %v", err)
	}
	raws := set.Keys
	if raws == nil {
		raws = []json.RawMessage{data}
	}
	var keys []*Key
	var skipped []error
	for i, raw := range raws {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(raw); err != nil {
			skipped = append(skipped, fmt.Errorf("key %d: %v", i, err))
			continue
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		k, err := newKey(key.KeyID, key.Algorithm, jwk.Public(key.Key), allowed)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no usable key: %w", errors.Join(skipped...))
	}
	return keys, nil
}
