package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// HandlePrefix begins every refresh handle NewHandle makes, so that a
// leaked one is recognisable (secret scanners, logs).
const HandlePrefix = "tgr_"

// keptHandles is how many handles replaced before the previous one a
// session remembers: presenting one of them revokes the session; older
// ones are forgotten (ErrNotFound). It bounds a session's records
// however often it is refreshed.
const keptHandles = 16

// NewHandle returns a new refresh handle: 32 random bytes, base64url,
// after HandlePrefix.
func NewHandle() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails: it crashes the program instead
	return HandlePrefix + base64.RawURLEncoding.EncodeToString(b)
}

// hashHandle returns what a store keeps of a handle: its SHA-256,
// base64url.
func hashHandle(handle string) string {
	sum := sha256.Sum256([]byte(handle))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// successorAEAD returns the cipher that keeps the successor of presented:
// AES-256-GCM under SHA-256("tollgate successor\x00" + presented). Only a
// holder of presented can read what it was replaced with.
func successorAEAD(presented string) cipher.AEAD {
	key := sha256.Sum256([]byte("tollgate successor\x00" + presented))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key cannot fail
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// sealSuccessor encrypts next under presented: a random nonce, then the
// sealed handle.
func sealSuccessor(presented, next string) []byte {
	aead := successorAEAD(presented)
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(next)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, []byte(next), nil)
}

// openSuccessor decrypts what sealSuccessor made.
func openSuccessor(presented string, sealed []byte) (string, error) {
	aead := successorAEAD(presented)
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed successor too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
	if err != nil {
		return "", err
	}
	return string(plain), nil
}
