package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Hasher compares a password with an encoded hash. The default is
// PasswordHasher; tests inject one that counts calls.
type Hasher interface {
	// Compare reports whether password matches encoded (a bcrypt hash or
	// an argon2id PHC string), in constant time.
	Compare(encoded string, password []byte) (bool, error)
}

// PasswordHasher checks bcrypt and argon2id hashes and makes argon2id ones.
type PasswordHasher struct{}

var _ Hasher = PasswordHasher{}

// Argon2id parameters for new hashes: OWASP's recommendation (19 MiB,
// two passes, one lane).
const (
	argonMemoryKiB = 19456
	argonTime      = 2
	argonThreads   = 1
	argonSaltLen   = 16
	argonKeyLen    = 32
)

// Bounds on parameters read from a users file.
const (
	maxArgonMemoryKiB = 1 << 20 // 1 GiB
	maxArgonTime      = 16
	maxArgonThreads   = 16
	maxArgonKeyLen    = 128
)

// Hash returns an argon2id PHC string for password.
func (PasswordHasher) Hash(password []byte) (string, error) {
	return encodeArgon(&argonParams{
		memory: argonMemoryKiB, time: argonTime, threads: argonThreads,
		salt: make([]byte, argonSaltLen), key: make([]byte, argonKeyLen),
	}, password)
}

// encodeArgon hashes password with p's parameters and a fresh salt of p's
// salt length.
func encodeArgon(p *argonParams, password []byte) (string, error) {
	salt := make([]byte, len(p.salt))
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey(password, salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Compare implements Hasher.
func (PasswordHasher) Compare(encoded string, password []byte) (bool, error) {
	if isBcrypt(encoded) {
		err := bcrypt.CompareHashAndPassword([]byte(encoded), password)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, nil
		default:
			return false, err
		}
	}
	p, err := parseArgon2id(encoded)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey(password, p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

// parseArgon2id reads $argon2id$v=19$m=…,t=…,p=…$salt$key, bounding every
// parameter.
func parseArgon2id(s string) (*argonParams, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, errors.New("not a bcrypt hash or an argon2id PHC string")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return nil, fmt.Errorf("argon2id: unsupported version %q", parts[2])
	}
	var p argonParams
	var threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil || n != 3 {
		return nil, fmt.Errorf("argon2id: bad parameters %q", parts[3])
	}
	if p.memory < 8 || p.memory > maxArgonMemoryKiB || p.time < 1 || p.time > maxArgonTime || threads < 1 || threads > maxArgonThreads {
		return nil, fmt.Errorf("argon2id: parameters %q out of bounds", parts[3])
	}
	p.threads = uint8(threads)
	var err error
	if p.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return nil, errors.New("argon2id: bad salt")
	}
	if p.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > maxArgonKeyLen {
		return nil, errors.New("argon2id: bad key")
	}
	return &p, nil
}

// checkHash validates an encoded hash without comparing anything.
func checkHash(s string) error {
	if isBcrypt(s) {
		if _, err := bcrypt.Cost([]byte(s)); err != nil {
			return fmt.Errorf("bcrypt: %v", err)
		}
		return nil
	}
	_, err := parseArgon2id(s)
	return err
}

// dummyHash returns a hash of a random password made like model (same
// algorithm and cost), for comparisons against unknown logins.
func dummyHash(model string) string {
	pw := make([]byte, 16)
	rand.Read(pw)
	if isBcrypt(model) {
		cost, err := bcrypt.Cost([]byte(model))
		if err != nil {
			cost = bcrypt.DefaultCost
		}
		h, err := bcrypt.GenerateFromPassword(pw, cost)
		if err == nil {
			return string(h)
		}
	}
	if p, err := parseArgon2id(model); err == nil {
		if h, err := encodeArgon(p, pw); err == nil {
			return h
		}
	}
	h, _ := PasswordHasher{}.Hash(pw)
	return h
}
