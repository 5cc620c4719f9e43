package jwk_test

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"testing"

	"github.com/tollgate/tollgate/jwk"
)

// TestThumbprintRFC7638 checks the example of RFC 7638 §3.1.
func TestThumbprintRFC7638(t *testing.T) {
	n, err := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	if err != nil {
		t.Fatal(err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	got, err := jwk.Thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Errorf("thumbprint %s, want %s", got, want)
	}
}

func TestThumbprintOfPrivateIsOfPublic(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	priv, err := jwk.Thumbprint(ec)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := jwk.Thumbprint(&ec.PublicKey)
	if priv != pub {
		t.Errorf("private %s, public %s", priv, pub)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if o, _ := jwk.Thumbprint(other); o == pub {
		t.Error("two keys share a thumbprint")
	}
	a, _ := jwk.Thumbprint([]byte("0123456789abcdef0123456789abcdef"))
	b, _ := jwk.Thumbprint([]byte("0123456789abcdef0123456789abcdeF"))
	if a == "" || a == b {
		t.Errorf("HMAC thumbprints %q and %q", a, b)
	}
}

func TestAlgorithms(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name  string
		key   any
		first string
		n     int
	}{
		{"rsa private", rsaKey, "RS256", 6},
		{"rsa public", &rsaKey.PublicKey, "RS256", 6},
		{"p256", p256, "ES256", 1},
		{"p384 public", &p384.PublicKey, "ES384", 1},
		{"ed25519", ed, "EdDSA", 1},
		{"hmac", []byte("secret"), "HS256", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			algs := jwk.Algorithms(tc.key)
			if len(algs) != tc.n || algs[0] != tc.first {
				t.Errorf("algorithms %v, want %d starting with %s", algs, tc.n, tc.first)
			}
			if slices.ContainsFunc(algs, func(a string) bool { return a[:2] == "HS" }) && tc.first != "HS256" {
				t.Errorf("asymmetric key allows HMAC: %v", algs)
			}
		})
	}
	if algs := jwk.Algorithms("not a key"); algs != nil {
		t.Errorf("a string allows %v", algs)
	}
}

func TestPrivateKeyFormats(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	for _, tc := range []struct {
		name  string
		block *pem.Block
		want  crypto.PublicKey
	}{
		{"pkcs8 ec", pkcs8(t, ec), &ec.PublicKey},
		{"sec1 ec", &pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}, &ec.PublicKey},
		{"pkcs1 rsa", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}, &rsaKey.PublicKey},
		{"pkcs8 ed25519", pkcs8(t, ed), ed.Public()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := jwk.ParsePrivateKeyPEM(pem.EncodeToMemory(tc.block))
			if err != nil {
				t.Fatal(err)
			}
			if !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.want) {
				t.Error("parsed key has another public half")
			}
		})
	}
	der, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if _, err := jwk.PrivateKey(&pem.Block{Type: "PUBLIC KEY", Bytes: der}); !errors.Is(err, jwk.ErrNotPrivateKey) {
		t.Errorf("public key block: %v, want ErrNotPrivateKey", err)
	}
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if _, err := jwk.PrivateKey(pkcs8(t, x)); !errors.Is(err, jwk.ErrUnsupportedKey) {
		t.Errorf("X25519 key: %v, want ErrUnsupportedKey", err)
	}
	if _, err := jwk.ParsePrivateKeyPEM([]byte("no pem here")); err == nil {
		t.Error("no PEM block accepted")
	}
	out, err := jwk.MarshalPrivateKeyPEM(ec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := jwk.ParsePrivateKeyPEM(out)
	if err != nil || !back.(*ecdsa.PrivateKey).Equal(ec) {
		t.Errorf("round trip: %v", err)
	}
}

func pkcs8(t *testing.T, key any) *pem.Block {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
}

func TestGenerate(t *testing.T) {
	for alg, want := range map[string]string{"ES256": "ES256", "RS256": "RS256", "EdDSA": "EdDSA"} {
		k, err := jwk.Generate(alg, 2048)
		if err != nil {
			t.Fatal(err)
		}
		if got := jwk.Algorithms(k); len(got) == 0 || got[0] != want {
			t.Errorf("%s: a key for %v", alg, got)
		}
	}
	if _, err := jwk.Generate("HS256", 0); !errors.Is(err, jwk.ErrUnsupportedKey) {
		t.Errorf("HS256: %v", err)
	}
}
