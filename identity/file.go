package identity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxFileBytes bounds the users file: far above any real one (a user takes
// about 400 bytes), far below what would hurt.
const maxFileBytes = 16 << 20

// usersFile is the users file.
type usersFile struct {
	Users []fileUser `yaml:"users"`
}

// fileUser is one entry of the users file.
type fileUser struct {
	ID           string         `yaml:"id"`
	Username     string         `yaml:"username"`
	Email        string         `yaml:"email"`
	PasswordHash string         `yaml:"password_hash"`
	Profiles     []string       `yaml:"profiles"`
	Role         string         `yaml:"role"`
	PartnerID    string         `yaml:"partner_id"`
	Claims       map[string]any `yaml:"claims"`
	MaxSessions  int            `yaml:"max_sessions"`
}

// entry is a user with its password hash.
type entry struct {
	user   *User
	hash   string     // as in the file
	params hashParams // hash's
	// rehash, once set, is a hash of the user's password made with the
	// snapshot's params, compared instead of hash: it is made in memory at
	// the user's first successful login when params are not the
	// snapshot's, so that from then on a wrong password for this user
	// costs what it costs for anyone. It is the only part of a snapshot
	// that changes after it is built.
	rehash atomic.Pointer[string]
}

// snapshot is one validated version of the users file. It is never
// modified once built, but for entries' rehash; Users swaps it whole.
type snapshot struct {
	byID    map[string]*entry
	byLogin map[string]*entry // by loginKey of username and of email
	// params are the hash parameters most users have; dummy is a hash of a
	// random password made with them, compared against for unknown logins.
	params hashParams
	dummy  string
	// warnings name the users whose hashes are not made with params; see
	// Users.HashWarnings.
	warnings []string
}

// loginKey is how a username or email is looked up: case and surrounding
// space do not matter.
func loginKey(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// isReservedClaim reports whether the issuer owns the claim name, so a
// user's extra claims cannot set it.
func isReservedClaim(name string) bool {
	switch name {
	case "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "typ", "type", "scope", "client_id", "sid", "profile",
		// OpenID Connect claims about the authentication itself.
		"azp", "auth_time", "nonce", "acr", "amr":
		return true
	}
	return false
}

// parseFile parses and validates a users file and builds a snapshot
// without its dummy hash. The error joins every problem found; none quotes
// a password hash.
func parseFile(data []byte) (*snapshot, error) {
	lines, err := checkStructure(data)
	if err != nil {
		return nil, err
	}
	var problems []error
	var f usersFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		// Type errors and unknown keys: yaml.v3 reports them all and goes
		// on filling f, so the checks below still run.
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, errors.New(cleanYAMLError(err.Error()))
		}
		for _, msg := range te.Errors {
			problems = append(problems, errors.New(cleanYAMLError(msg)))
		}
	}

	s := &snapshot{byID: make(map[string]*entry, len(f.Users)), byLogin: make(map[string]*entry, 2*len(f.Users))}
	firstID := map[string]int{}    // id → index of the first user with it
	firstLogin := map[string]int{} // login key → index of the first user with it
	idsByParams := map[hashParams][]string{}
	var paramsOrder []hashParams
	for i, fu := range f.Users {
		where := fmt.Sprintf("users[%d]", i)
		switch {
		case fu.ID != "" && i < len(lines):
			where += fmt.Sprintf(" (id %q, line %d)", fu.ID, lines[i])
		case fu.ID != "":
			where += fmt.Sprintf(" (id %q)", fu.ID)
		case i < len(lines):
			where += fmt.Sprintf(" (line %d)", lines[i])
		}
		bad := func(format string, args ...any) {
			problems = append(problems, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
		}

		if strings.TrimSpace(fu.ID) == "" {
			bad("id is required")
		} else if j, dup := firstID[fu.ID]; dup {
			bad("id %q is also the id of users[%d]", fu.ID, j)
		} else {
			firstID[fu.ID] = i
		}

		uk, ek := loginKey(fu.Username), loginKey(fu.Email)
		if uk == "" && ek == "" {
			bad("username or email is required")
		}
		for _, l := range []struct{ field, key string }{{"username", uk}, {"email", ek}} {
			if l.key == "" {
				continue
			}
			if j, dup := firstLogin[l.key]; dup && j != i {
				bad("%s %q is also a username or email of users[%d] (logins ignore case)", l.field, l.key, j)
			} else {
				firstLogin[l.key] = i
			}
		}

		var params hashParams
		if fu.PasswordHash == "" {
			bad("password_hash is required")
		} else if h, err := parseHash(fu.PasswordHash); err != nil {
			bad("password_hash: %v", err)
		} else {
			params = h.hashParams
			if len(idsByParams[params]) == 0 {
				paramsOrder = append(paramsOrder, params)
			}
			idsByParams[params] = append(idsByParams[params], fu.ID)
		}

		seen := map[string]int{}
		for j, p := range fu.Profiles {
			if strings.TrimSpace(p) == "" {
				bad("profiles[%d] is empty", j)
			} else if k, dup := seen[p]; dup {
				bad("profiles[%d] %q repeats profiles[%d]", j, p, k)
			} else {
				seen[p] = j
			}
		}

		claims := make(map[string]any, len(fu.Claims))
		for _, name := range slices.Sorted(maps.Keys(fu.Claims)) {
			switch {
			case strings.TrimSpace(name) == "":
				bad("claims: a claim name is empty")
			case isReservedClaim(name):
				bad("claims: %q is reserved for the issuer", name)
			default:
				claims[name] = normalizeClaim("claims."+name, fu.Claims[name], bad)
			}
		}

		if fu.MaxSessions < 0 {
			bad("max_sessions must not be negative")
		}
		e := &entry{hash: fu.PasswordHash, params: params, user: &User{
			ID:            fu.ID,
			Username:      strings.TrimSpace(fu.Username),
			Email:         strings.TrimSpace(fu.Email),
			Profiles:      slices.Clone(fu.Profiles),
			Role:          fu.Role,
			PartnerID:     fu.PartnerID,
			Claims:        claims,
			MaxSessions:   fu.MaxSessions,
			PasswordStamp: passwordStamp(fu.PasswordHash),
		}}
		s.byID[fu.ID] = e
		for _, k := range []string{uk, ek} {
			if k != "" {
				s.byLogin[k] = e
			}
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}

	// The dummy hash is made like the most common kind of hash, the first
	// such in the file on a tie, so that most unknown logins cost what most
	// known ones do.
	s.params = PasswordHasher{}.params()
	best := 0
	for _, p := range paramsOrder {
		if n := len(idsByParams[p]); n > best {
			s.params, best = p, n
		}
	}
	for _, p := range paramsOrder {
		if p != s.params {
			s.warnings = append(s.warnings, hashWarning(p, s.params, idsByParams[p], len(f.Users)))
		}
	}
	return s, nil
}

// maxWarningIDs bounds the ids a hash warning names.
const maxWarningIDs = 5

// hashWarning says that the users with ids have hashes made with p rather
// than with most users' params, and what that reveals. It quotes no hash.
func hashWarning(p, most hashParams, ids []string, total int) string {
	noun, have := "users", "have password hashes"
	if len(ids) == 1 {
		noun, have = "user", "has a password hash"
	}
	var b strings.Builder
	b.WriteString(noun)
	for i, id := range ids[:min(len(ids), maxWarningIDs)] {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %q", id)
	}
	if more := len(ids) - maxWarningIDs; more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	fmt.Fprintf(&b, " (%d of %d) %s made with %s where most users' are made with %s: until each logs in once after tollgate starts, "+
		"the time a wrong password takes tells that their logins exist; rehash their passwords with %s", len(ids), total, have, p, most, most)
	return b.String()
}

// checkStructure checks what decoding into usersFile cannot: that the file
// is one YAML document, a mapping with a users key. It returns the line of
// each user entry, for messages.
func checkStructure(data []byte) ([]int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty (a file without users says users: [])")
		}
		return nil, errors.New(cleanYAMLError(err.Error()))
	}
	if err := dec.Decode(new(yaml.Node)); err == nil {
		return nil, errors.New("the file holds more than one YAML document")
	} else if !errors.Is(err, io.EOF) {
		return nil, errors.New(cleanYAMLError(err.Error()))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("the file is not a mapping with a users key")
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "users" {
			continue // an unknown key, reported by the decoder
		}
		list := root.Content[i+1]
		if list.Kind == yaml.AliasNode && list.Alias != nil {
			list = list.Alias
		}
		var lines []int
		if list.Kind == yaml.SequenceNode {
			for _, n := range list.Content {
				lines = append(lines, n.Line)
			}
		}
		return lines, nil
	}
	return nil, errors.New("the file has no users key (a file without users says users: [])")
}

// normalizeClaim checks that v, decoded from YAML, is something a token
// can carry, and returns a copy of it that shares nothing with v.
func normalizeClaim(path string, v any, bad func(string, ...any)) any {
	switch v := v.(type) {
	case nil, string, bool, int, int64, uint64:
		return v
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			bad("%s: NaN and infinities cannot be put in a token", path)
		}
		return v
	case time.Time:
		bad("%s: an unquoted timestamp; quote it to keep it a string", path)
		return nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalizeClaim(fmt.Sprintf("%s[%d]", path, i), e, bad)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			out[k] = normalizeClaim(path+"."+k, v[k], bad)
		}
		return out
	case map[any]any:
		bad("%s: map keys must be strings", path)
		return nil
	default:
		bad("%s: a %T cannot be put in a token", path, v)
		return nil
	}
}

// cleanYAMLError makes a yaml.v3 message fit for logs and operators: the
// value excerpt it quotes in backticks goes (it could be the start of a
// password hash; the excerpt itself may hold backticks, so everything from
// the first to the last one goes), and Go type names become words.
func cleanYAMLError(msg string) string {
	if i, j := strings.IndexByte(msg, '`'), strings.LastIndexByte(msg, '`'); i >= 0 {
		if j == i {
			j = len(msg) - 1
		}
		msg = msg[:i] + "(value redacted)" + msg[j+1:]
	}
	return strings.NewReplacer(
		"in type identity.fileUser", "in a user entry",
		"in type identity.usersFile", "at the top level",
	).Replace(msg)
}
