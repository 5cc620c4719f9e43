package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Hasher compares a password with an encoded hash. Users uses
// PasswordHasher unless WithHasher says otherwise.
type Hasher interface {
	// Compare reports whether password matches encodedHash (a bcrypt hash
	// or an argon2id PHC string), in constant time. A malformed hash is an
	// error, not a mismatch.
	Compare(encodedHash string, password []byte) (bool, error)
}

// PasswordHasher checks bcrypt and argon2id hashes and makes argon2id ones.
// Its fields are the parameters of the hashes Hash makes; Compare reads the
// parameters from the hash it is given. The zero value uses OWASP's
// recommendation for argon2id (19 MiB, two passes, one lane).
type PasswordHasher struct {
	// Memory is argon2id's memory cost in KiB. Zero means 19456 (19 MiB).
	Memory uint32
	// Time is the number of passes. Zero means 2.
	Time uint32
	// Threads is the number of lanes. Zero means 1.
	Threads uint8
	// SaltLen is the length of the random salt in bytes. Zero means 16.
	SaltLen uint32
	// KeyLen is the length of the derived key in bytes. Zero means 32.
	KeyLen uint32
}

var _ Hasher = PasswordHasher{}

// Defaults of PasswordHasher.
const (
	defaultArgonMemoryKiB = 19456
	defaultArgonTime      = 2
	defaultArgonThreads   = 1
	defaultArgonSaltLen   = 16
	defaultArgonKeyLen    = 32
)

// Bounds on hash parameters. They apply to hashes read from the users file
// as well as to the ones Hash makes: a login must never cost more than about
// a quarter of a GiB or a few seconds of one core. The minimums are the
// algorithms' own (bcrypt.MinCost; argon2 needs 8 KiB per lane).
const (
	maxBcryptCost     = 15        // about 2 s per comparison on current hardware
	maxBcryptPassword = 72        // bytes; bcrypt ignores the rest
	maxArgonMemoryKiB = 256 << 10 // 256 MiB
	maxArgonTime      = 10
	maxArgonThreads   = 16
	minArgonSaltLen   = 8
	maxArgonSaltLen   = 64
	minArgonKeyLen    = 16
	maxArgonKeyLen    = 64
)

const (
	algBcrypt   = "bcrypt"
	algArgon2id = "argon2id"
)

// b64 returns the PHC string encoding: standard alphabet, no padding, and
// no stray bits.
func b64() *base64.Encoding { return base64.RawStdEncoding.Strict() }

// decodeB64 decodes s if it is the canonical encoding of something: the
// decoder alone would skip CR and LF.
func decodeB64(s string) ([]byte, bool) {
	b, err := b64().DecodeString(s)
	if err != nil || b64().EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// hashParams is what makes two hashes cost the same: the algorithm and its
// parameters, without salt or digest. It is comparable.
type hashParams struct {
	alg     string
	cost    int    // bcrypt
	memory  uint32 // argon2id, KiB
	time    uint32 // argon2id
	threads uint8  // argon2id
	saltLen int    // argon2id, bytes
	keyLen  int    // argon2id, bytes
}

// String describes p for logs; it holds no secret.
func (p hashParams) String() string {
	if p.alg == algBcrypt {
		return fmt.Sprintf("bcrypt cost=%d", p.cost)
	}
	return fmt.Sprintf("argon2id m=%d,t=%d,p=%d salt=%d key=%d", p.memory, p.time, p.threads, p.saltLen, p.keyLen)
}

// parsedHash is an encoded hash taken apart.
type parsedHash struct {
	hashParams
	salt, key []byte // argon2id only
}

// Hash returns an argon2id PHC string for password with h's parameters and
// a fresh random salt.
func (h PasswordHasher) Hash(password []byte) (string, error) {
	p := h.params()
	if err := checkArgonParams(p); err != nil {
		return "", fmt.Errorf("identity: hash password: %w", err)
	}
	salt := make([]byte, p.saltLen)
	rand.Read(salt) // never returns an error; it crashes the program instead
	key := argon2.IDKey(password, salt, p.time, p.memory, p.threads, uint32(p.keyLen))
	return formatArgon2id(p, salt, key), nil
}

// params returns the parameters of the hashes h makes, defaults filled in.
func (h PasswordHasher) params() hashParams {
	return hashParams{
		alg:     algArgon2id,
		memory:  orDefault(h.Memory, defaultArgonMemoryKiB),
		time:    orDefault(h.Time, defaultArgonTime),
		threads: orDefault(h.Threads, defaultArgonThreads),
		saltLen: int(orDefault(h.SaltLen, defaultArgonSaltLen)),
		keyLen:  int(orDefault(h.KeyLen, defaultArgonKeyLen)),
	}
}

func orDefault[T uint8 | uint32](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Compare implements Hasher for bcrypt ($2a$, $2b$, $2y$) and argon2id PHC
// strings. A password longer than 72 bytes never matches a bcrypt hash,
// which could only check its first 72.
func (PasswordHasher) Compare(encodedHash string, password []byte) (bool, error) {
	h, err := parseHash(encodedHash)
	if err != nil {
		return false, err
	}
	switch h.alg {
	case algBcrypt:
		// bcrypt reads only the first 72 bytes, so a longer password would
		// match whatever follows them. It is refused, after the same work
		// as any other comparison, so the refusal takes no other time.
		tooLong := len(password) > maxBcryptPassword
		err := bcrypt.CompareHashAndPassword([]byte(encodedHash), password[:min(len(password), maxBcryptPassword)])
		switch {
		case err == nil:
			return !tooLong, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, nil
		default:
			return false, fmt.Errorf("%w: bcrypt: %v", errMalformedHash, err)
		}
	default:
		key := argon2.IDKey(password, h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
		return subtle.ConstantTimeCompare(key, h.key) == 1, nil
	}
}

// parseHash takes an encoded hash apart and checks its parameters against
// the bounds. It accepts only the canonical form (no leading zeros, no
// padding, no stray base64 bits), so a parsed argon2id hash formats back
// to the same string. Errors never quote the salt or digest.
func parseHash(s string) (parsedHash, error) {
	switch {
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		return parseBcrypt(s)
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$argon2i$"), strings.HasPrefix(s, "$argon2d$"):
		return parsedHash{}, fmt.Errorf("%w: only argon2id is supported, not argon2i or argon2d", errMalformedHash)
	case strings.HasPrefix(s, "$2"):
		return parsedHash{}, fmt.Errorf("%w: bcrypt: unsupported version (want $2a$, $2b$ or $2y$)", errMalformedHash)
	default:
		return parsedHash{}, fmt.Errorf("%w: neither a bcrypt hash nor an argon2id PHC string", errMalformedHash)
	}
}

// bcryptAlphabet is bcrypt's own base64 alphabet.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// parseBcrypt checks $2x$NN$ followed by 22 characters of salt and 31 of
// digest.
func parseBcrypt(s string) (parsedHash, error) {
	const size = 7 + 22 + 31
	if len(s) != size {
		return parsedHash{}, fmt.Errorf("%w: bcrypt: %d characters, want %d", errMalformedHash, len(s), size)
	}
	if s[6] != '$' || !isDigit(s[4]) || !isDigit(s[5]) {
		return parsedHash{}, fmt.Errorf("%w: bcrypt: the cost is not two digits", errMalformedHash)
	}
	cost := int(s[4]-'0')*10 + int(s[5]-'0')
	if cost < bcrypt.MinCost || cost > maxBcryptCost {
		return parsedHash{}, fmt.Errorf("%w: bcrypt: cost %d out of range [%d, %d]", errMalformedHash, cost, bcrypt.MinCost, maxBcryptCost)
	}
	for i := 7; i < len(s); i++ {
		if strings.IndexByte(bcryptAlphabet, s[i]) < 0 {
			return parsedHash{}, fmt.Errorf("%w: bcrypt: character %d is outside the bcrypt alphabet", errMalformedHash, i)
		}
	}
	return parsedHash{hashParams: hashParams{alg: algBcrypt, cost: cost}}, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseArgon2id reads $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>.
func parseArgon2id(s string) (parsedHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != algArgon2id {
		return parsedHash{}, fmt.Errorf("%w: argon2id: want $argon2id$v=19$m=…,t=…,p=…$salt$key", errMalformedHash)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return parsedHash{}, fmt.Errorf("%w: argon2id: unsupported version (want v=%d)", errMalformedHash, argon2.Version)
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return parsedHash{}, fmt.Errorf("%w: argon2id: want parameters m=…,t=…,p=…", errMalformedHash)
	}
	var vals [3]uint32
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(fields[i], name+"=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || strconv.FormatUint(n, 10) != v {
			return parsedHash{}, fmt.Errorf("%w: argon2id: parameter %d is not %s=<decimal>", errMalformedHash, i+1, name)
		}
		vals[i] = uint32(n)
	}
	if vals[2] > maxArgonThreads { // before the conversion to uint8 below
		return parsedHash{}, fmt.Errorf("%w: argon2id: p=%d out of range [1, %d]", errMalformedHash, vals[2], maxArgonThreads)
	}
	salt, ok := decodeB64(parts[4])
	if !ok {
		return parsedHash{}, fmt.Errorf("%w: argon2id: the salt is not unpadded base64", errMalformedHash)
	}
	key, ok := decodeB64(parts[5])
	if !ok {
		return parsedHash{}, fmt.Errorf("%w: argon2id: the key is not unpadded base64", errMalformedHash)
	}
	h := parsedHash{
		hashParams: hashParams{
			alg: algArgon2id, memory: vals[0], time: vals[1], threads: uint8(vals[2]),
			saltLen: len(salt), keyLen: len(key),
		},
		salt: salt, key: key,
	}
	if err := checkArgonParams(h.hashParams); err != nil {
		return parsedHash{}, fmt.Errorf("%w: %w", errMalformedHash, err)
	}
	return h, nil
}

// checkArgonParams checks p against the bounds.
func checkArgonParams(p hashParams) error {
	switch {
	case p.threads < 1 || p.threads > maxArgonThreads:
		return fmt.Errorf("argon2id: p=%d out of range [1, %d]", p.threads, maxArgonThreads)
	case p.memory < 8*uint32(p.threads) || p.memory > maxArgonMemoryKiB:
		return fmt.Errorf("argon2id: m=%d out of range [%d, %d]", p.memory, 8*uint32(p.threads), maxArgonMemoryKiB)
	case p.time < 1 || p.time > maxArgonTime:
		return fmt.Errorf("argon2id: t=%d out of range [1, %d]", p.time, maxArgonTime)
	case p.saltLen < minArgonSaltLen || p.saltLen > maxArgonSaltLen:
		return fmt.Errorf("argon2id: salt of %d bytes, want %d to %d", p.saltLen, minArgonSaltLen, maxArgonSaltLen)
	case p.keyLen < minArgonKeyLen || p.keyLen > maxArgonKeyLen:
		return fmt.Errorf("argon2id: key of %d bytes, want %d to %d", p.keyLen, minArgonKeyLen, maxArgonKeyLen)
	}
	return nil
}

func formatArgon2id(p hashParams, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads,
		b64().EncodeToString(salt), b64().EncodeToString(key))
}

// newDummyHash hashes a random password with parameters p. Nothing can
// match it; comparing against it costs what comparing against a real hash
// with p costs.
func newDummyHash(p hashParams) (string, error) {
	h, err := hashWith(p, []byte(rand.Text()))
	if err != nil {
		return "", fmt.Errorf("identity: dummy hash: %w", err)
	}
	return h, nil
}

// hashWith hashes password with parameters p and a fresh random salt. A
// bcrypt p cannot hold a password over 72 bytes.
func hashWith(p hashParams, password []byte) (string, error) {
	if p.alg == algBcrypt {
		h, err := bcrypt.GenerateFromPassword(password, p.cost)
		if err != nil {
			return "", err
		}
		return string(h), nil
	}
	return PasswordHasher{
		Memory: p.memory, Time: p.time, Threads: p.threads,
		SaltLen: uint32(p.saltLen), KeyLen: uint32(p.keyLen),
	}.Hash(password)
}
