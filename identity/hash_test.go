package identity

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// argonHash makes an argon2id hash cheap enough for tests: 64 KiB, one pass.
func argonHash(t testing.TB, password string) string {
	t.Helper()
	h, err := PasswordHasher{Memory: 64, Time: 1}.Hash([]byte(password))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func bcryptHash(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// This test is about the defaults, so it pays for them once.
func TestPasswordHasherDefaults(t *testing.T) {
	enc, err := PasswordHasher{}.Hash([]byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q… does not use OWASP's parameters", enc[:32])
	}
	h, err := parseHash(enc)
	if err != nil {
		t.Fatal(err)
	}
	if h.saltLen != 16 || h.keyLen != 32 {
		t.Errorf("salt %d bytes, key %d bytes; want 16 and 32", h.saltLen, h.keyLen)
	}
	if ok, err := (PasswordHasher{}).Compare(enc, []byte("correct horse")); !ok || err != nil {
		t.Errorf("round trip: %v %v", ok, err)
	}
}

func TestPasswordHasherRoundTrip(t *testing.T) {
	bc := bcryptHash(t, "correct horse")
	tests := []struct {
		name, hash string
	}{
		{"argon2id", argonHash(t, "correct horse")},
		{"argon2id two lanes", func() string {
			h, err := PasswordHasher{Memory: 64, Time: 1, Threads: 2, SaltLen: 8, KeyLen: 16}.Hash([]byte("correct horse"))
			if err != nil {
				t.Fatal(err)
			}
			return h
		}()},
		{"bcrypt $2a$", bc},
		{"bcrypt $2b$", "$2b$" + bc[4:]},
		{"bcrypt $2y$", "$2y$" + bc[4:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := PasswordHasher{}
			if ok, err := h.Compare(tt.hash, []byte("correct horse")); !ok || err != nil {
				t.Errorf("right password: %v %v", ok, err)
			}
			for _, wrong := range []string{"wrong horse", "correct horsf", "", "correct horse "} {
				if ok, err := h.Compare(tt.hash, []byte(wrong)); ok || err != nil {
					t.Errorf("%q: %v %v, want a mismatch", wrong, ok, err)
				}
			}
		})
	}
	a, b := argonHash(t, "same"), argonHash(t, "same")
	if a == b {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

func TestPasswordHasherRejectsParamsOutOfBounds(t *testing.T) {
	for _, h := range []PasswordHasher{
		{Memory: maxArgonMemoryKiB + 1},
		{Memory: 8, Threads: 2},
		{Time: maxArgonTime + 1},
		{Threads: maxArgonThreads + 1},
		{SaltLen: 4},
		{KeyLen: 1 << 20},
	} {
		if enc, err := h.Hash([]byte("pw")); err == nil {
			t.Errorf("%+v: made %q", h, enc)
		}
	}
}

func TestCompareMalformed(t *testing.T) {
	const salt, key = "c2FsdHNhbHRzYWx0c2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	good := "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key
	if _, err := parseHash(good); err != nil {
		t.Fatalf("the well-formed base case does not parse: %v", err)
	}
	bc := "$2a$04$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
	if _, err := parseHash(bc); err != nil {
		t.Fatalf("the well-formed bcrypt case does not parse: %v", err)
	}
	for _, bad := range []string{
		"",
		"plain",
		"$",
		"$$$$$",
		"$argon2id$",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt, // no key
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$x",     // too many fields
		"$argon2id$m=64,t=1,p=1$" + salt + "$" + key,                 // no version
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,            // old version
		"$argon2id$v=$m=64,t=1,p=1$" + salt + "$" + key,              // empty version
		"$argon2id$v=19$m=1099511627776,t=1,p=1$" + salt + "$" + key, // m=1<<40
		"$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key,    // m=MaxUint32
		"$argon2id$v=19$m=262145,t=1,p=1$" + salt + "$" + key,        // just over the cap
		"$argon2id$v=19$m=64,t=1000,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key, // would wrap to 0 as a uint8
		"$argon2id$v=19$m=4,t=1,p=1$" + salt + "$" + key,    // under 8 KiB per lane
		"$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m= 64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,                          // order
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + key,                              // missing p
		"$argon2id$v=19$m=64,t=1,p=1,k=2$" + salt + "$" + key,                      // extra parameter
		"$argon2id$v=19$m=64,t=1,p=1$!!!notbase64!!!$" + key,                       // bad salt
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "!",                    // bad key
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:20] + "\r\n" + key[20:], // line breaks, which base64 skips
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key,                        // padded
		"$argon2id$v=19$m=64,t=1,p=1$" + salt[:len(salt)-1] + "B$" + key,           // stray bits
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key,                                // 4-byte salt
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$a2V5",                            // 3-byte key
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("A", 100),     // 75-byte key
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$2x$04$" + bc[7:],         // unknown bcrypt version
		"$2$04$" + bc[7:],          // old bcrypt
		"$2a$03$" + bc[7:],         // under bcrypt.MinCost
		"$2a$16$" + bc[7:],         // over the cap
		"$2a$31$" + bc[7:],         // bcrypt's own maximum: days per login
		"$2a$1a$" + bc[7:],         // cost not digits
		"$2a$04" + bc[6:len(bc)-1], // one character short
		bc + "A",                   // one character long
		bc[:len(bc)-1] + "!",       // outside the bcrypt alphabet
		"$2a$04$" + strings.Repeat("$", 53),
	} {
		ok, err := PasswordHasher{}.Compare(bad, []byte("pw"))
		if ok || !errors.Is(err, errMalformedHash) {
			t.Errorf("%q: ok %v, err %v; want a malformed-hash error", bad, ok, err)
			continue
		}
		// Messages never quote the secret parts.
		if strings.Contains(err.Error(), salt) || strings.Contains(err.Error(), key) || strings.Contains(err.Error(), bc[7:]) {
			t.Errorf("%q: the error quotes the hash: %v", bad, err)
		}
	}
}

func FuzzParseHash(f *testing.F) {
	const salt, key = "c2FsdHNhbHRzYWx0c2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	for _, s := range []string{
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=262144,t=10,p=16$" + salt + "$" + key,
		"$argon2id$v=19$m=1099511627776,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key,
		"$argon2id$v=19$m=064,t=1,p=1$" + salt + "==$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$$",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"$2y$04$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"$2a$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"$2a$10$short",
		"$$$$$",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHash(s)
		if err != nil {
			if !errors.Is(err, errMalformedHash) {
				t.Fatalf("%q: error %v does not wrap errMalformedHash", s, err)
			}
			if h.alg != "" || h.salt != nil || h.key != nil {
				t.Fatalf("%q: error %v with a result %+v", s, err, h)
			}
			return
		}
		switch h.alg {
		case algBcrypt:
			// Whatever we accept, x/crypto accepts, at the same cost.
			cost, err := bcrypt.Cost([]byte(s))
			if err != nil || cost != h.cost || cost > maxBcryptCost {
				t.Fatalf("%q: accepted, but bcrypt.Cost says %d, %v", s, cost, err)
			}
		case algArgon2id:
			if err := checkArgonParams(h.hashParams); err != nil {
				t.Fatalf("%q: accepted out-of-bounds parameters: %v", s, err)
			}
			if len(h.salt) != h.saltLen || len(h.key) != h.keyLen {
				t.Fatalf("%q: lengths %d/%d disagree with %+v", s, len(h.salt), len(h.key), h.hashParams)
			}
			// Only the canonical form is accepted.
			if got := formatArgon2id(h.hashParams, h.salt, h.key); got != s {
				t.Fatalf("%q: accepted, but formats back as %q", s, got)
			}
		default:
			t.Fatalf("%q: accepted with algorithm %q", s, h.alg)
		}
	})
}

func TestDecodeB64IsCanonical(t *testing.T) {
	// The canonical round trip in FuzzParseHash depends on this.
	for _, s := range []string{"AB", "AA==", "AA\n", "\rAA", "A A", "AA!"} {
		if b, ok := decodeB64(s); ok {
			t.Errorf("%q decoded as %x", s, b)
		}
	}
	if b, ok := decodeB64("AA"); !ok || len(b) != 1 || b[0] != 0 {
		t.Errorf("AA: %x %v", b, ok)
	}
}

// bcrypt checks only the first 72 bytes of a password: a longer one must
// not match a bcrypt hash, even when those 72 bytes are right.
func TestBcryptRefusesPasswordsOver72Bytes(t *testing.T) {
	pw72 := strings.Repeat("p", 72)
	hash := bcryptHash(t, pw72)
	tests := []struct {
		name, password string
		want           bool
	}{
		{"72 bytes", pw72, true},
		{"73 bytes, the first 72 right", pw72 + "x", false},
		{"1000 bytes, the first 72 right", pw72 + strings.Repeat("x", 928), false},
		{"71 bytes", pw72[:71], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok, err := (PasswordHasher{}).Compare(hash, []byte(tt.password)); ok != tt.want || err != nil {
				t.Errorf("%v, %v; want %v", ok, err, tt.want)
			}
		})
	}
}
