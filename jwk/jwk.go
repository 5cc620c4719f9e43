package jwk

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// Errors of this package, wrapped with context.
var (
	// ErrNotPrivateKey: a PEM block is not one of the private key types.
	ErrNotPrivateKey = errors.New("jwk: not a private key")
	// ErrUnsupportedKey: the key material is of a kind tollgate cannot use.
	ErrUnsupportedKey = errors.New("jwk: unsupported key")
)

// Algorithms lists the JWS algorithms key can verify (and, for a private
// key, sign): RSA keys RS*/PS*, EC keys the ES algorithm of their curve,
// Ed25519 EdDSA, a []byte secret HS*. key may be public or private. The
// first algorithm is the one tollgate signs with. Nil means none.
func Algorithms(key any) []string {
	switch k := Public(key).(type) {
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}
		case elliptic.P384():
			return []string{"ES384"}
		case elliptic.P521():
			return []string{"ES512"}
		}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	case []byte:
		return []string{"HS256", "HS384", "HS512"}
	}
	return nil
}

// Public returns the public half of a private key; public keys and HMAC
// secrets are returned as they are.
func Public(key any) any {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return &k.PublicKey
	case *ecdsa.PrivateKey:
		return &k.PublicKey
	case ed25519.PrivateKey:
		return k.Public()
	}
	return key
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of key (public or
// private; for a private key, of its public half), base64url-encoded: the
// kid tollgate gives its keys. For a []byte HMAC secret it is the
// thumbprint of {"k":…,"kty":"oct"}, which go-jose does not compute.
func Thumbprint(key any) (string, error) {
	pub := Public(key)
	if secret, ok := pub.([]byte); ok {
		canon := `{"k":"` + base64.RawURLEncoding.EncodeToString(secret) + `","kty":"oct"}`
		sum := sha256.Sum256([]byte(canon))
		return base64.RawURLEncoding.EncodeToString(sum[:]), nil
	}
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("%w: thumbprint of %T", ErrUnsupportedKey, pub)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// PrivateKey parses a PEM block holding a private key: PKCS#8
// ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY").
// Another block type gives ErrNotPrivateKey.
func PrivateKey(block *pem.Block) (crypto.Signer, error) {
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block %q", ErrNotPrivateKey, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("jwk: PEM %s: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok || Algorithms(signer) == nil {
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, key)
	}
	return signer, nil
}

// ParsePrivateKeyPEM reads the first PEM block of data as a private key.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("jwk: no PEM block")
	}
	return PrivateKey(block)
}

// Generate makes a new private key for alg: ES256 (P-256), RS256 (RSA of
// rsaBits bits) or EdDSA (Ed25519).
func Generate(alg string, rsaBits int) (crypto.Signer, error) {
	switch alg {
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		return rsa.GenerateKey(rand.Reader, rsaBits)
	case "EdDSA":
		_, key, err := ed25519.GenerateKey(rand.Reader)
		return key, err
	}
	return nil, fmt.Errorf("%w: algorithm %q: want ES256, RS256 or EdDSA", ErrUnsupportedKey, alg)
}

// MarshalPrivateKeyPEM encodes key as a PKCS#8 PEM block.
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("jwk: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
