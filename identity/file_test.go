package identity

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// someUserYAML is the example of the users file documentation.
func someUserYAML(hash string) string {
	return `users:
  - id: "2"
    username: someuser@24i.com
    email: someuser@24i.com
    password_hash: "` + hash + `"
    profiles: ["4f3d8946-4423-11ea-bbb8-b7af30354b4a", "kids"]
    role: AGENT
    partner_id: "10000"
    claims: {agentId: "f9683b7b-e332-4864-b725-ac6cdc207dbd", siteId: 10115}
`
}

func TestParseFileValid(t *testing.T) {
	bc, ar := bcryptHash(t, "qwerty123"), argonHash(t, "s3cret")
	s, err := parseFile([]byte(someUserYAML(bc) + `
  - id: "3"
    email: "  Client1@Company.com "
    password_hash: ` + ar + `
    claims:
      ratio: 1.5
      big: 18446744073709551615
      adult: true
      nothing: null
      tags: [a, 2]
      nested: {deep: {n: 7}}
      date: "2024-01-02"
  - id: "4"
    username: Bob
    password_hash: "` + bc + `"
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.byID) != 3 {
		t.Fatalf("%d users, want 3", len(s.byID))
	}
	u := s.byID["2"].user
	want := &User{
		ID: "2", Username: "someuser@24i.com", Email: "someuser@24i.com",
		Profiles: []string{"4f3d8946-4423-11ea-bbb8-b7af30354b4a", "kids"}, Role: "AGENT", PartnerID: "10000",
		Claims:        map[string]any{"agentId": "f9683b7b-e332-4864-b725-ac6cdc207dbd", "siteId": 10115},
		PasswordStamp: passwordStamp(s.byID["2"].hash),
	}
	if u.PasswordStamp == "" || strings.Contains(s.byID["2"].hash, u.PasswordStamp) || passwordStamp(s.byID["2"].hash+"x") == u.PasswordStamp {
		t.Errorf("password stamp %q", u.PasswordStamp)
	}
	if !reflect.DeepEqual(u, want) {
		t.Errorf("user 2:\n got %#v\nwant %#v", u, want)
	}
	if u.DefaultProfile() != "4f3d8946-4423-11ea-bbb8-b7af30354b4a" || !u.HasProfile("kids") || u.HasProfile("KIDS") {
		t.Errorf("profiles: default %q", u.DefaultProfile())
	}
	// Types: a YAML number stays a number, a string a string.
	if _, ok := u.Claims["siteId"].(int); !ok {
		t.Errorf("siteId is a %T", u.Claims["siteId"])
	}
	if _, ok := u.Claims["agentId"].(string); !ok {
		t.Errorf("agentId is a %T", u.Claims["agentId"])
	}
	c := s.byID["3"].user.Claims
	wantClaims := map[string]any{
		"ratio": 1.5, "big": uint64(18446744073709551615), "adult": true, "nothing": nil,
		"tags": []any{"a", 2}, "nested": map[string]any{"deep": map[string]any{"n": 7}}, "date": "2024-01-02",
	}
	if !reflect.DeepEqual(c, wantClaims) {
		t.Errorf("claims:\n got %#v\nwant %#v", c, wantClaims)
	}
	if e := s.byID["3"].user; e.Email != "Client1@Company.com" || e.Username != "" || e.DefaultProfile() != "" || e.Claims == nil {
		t.Errorf("user 3: %+v", e)
	}
	if s.byID["4"].user.Claims == nil {
		t.Error("a user without claims has nil Claims")
	}
	// Logins are keyed lowercased: username and email, once each.
	for login, id := range map[string]string{"someuser@24i.com": "2", "client1@company.com": "3", "bob": "4"} {
		if e := s.byLogin[login]; e == nil || e.user.ID != id {
			t.Errorf("login %q: %v", login, e)
		}
	}
	if len(s.byLogin) != 3 {
		t.Errorf("%d logins, want 3", len(s.byLogin))
	}
	if s.byID["3"].hash != ar {
		t.Error("the hash is not kept")
	}
}

func TestParseFileEmpty(t *testing.T) {
	for _, doc := range []string{"users: []\n", "users:\n", "# nobody yet\nusers: []\n"} {
		s, err := parseFile([]byte(doc))
		if err != nil || len(s.byID) != 0 || len(s.byLogin) != 0 {
			t.Errorf("%q: %v", doc, err)
			continue
		}
		if s.params != (PasswordHasher{}).params() {
			t.Errorf("%q: dummy parameters %v, want the defaults", doc, s.params)
		}
	}
}

func TestParseFileInvalid(t *testing.T) {
	bc := bcryptHash(t, "x")
	user := func(fields string) string {
		return "users:\n  - {" + fields + "}\n"
	}
	good := `id: "1", username: alice, password_hash: "` + bc + `"`
	tests := []struct {
		name, file string
		want       []string
	}{
		{"empty file", "", []string{"the file is empty"}},
		{"comments only", "# users: []\n", []string{"the file is empty"}},
		{"no users key", "people: []\n", []string{"no users key"}},
		{"not a mapping", "- alice\n", []string{"not a mapping"}},
		{"two documents", "users: []\n---\nusers: []\n", []string{"more than one YAML document"}},
		{"syntax error", "users:\n  - {id: \"1\", username: [oops\n", []string{"yaml:"}},
		{"unknown top-level key", "users: []\nadmins: []\n", []string{"field admins not found at the top level"}},
		{"unknown user key", user(good + ", password: plain"), []string{"line 2: field password not found in a user entry"}},
		{"type error", user(good + ", profiles: {a: b}"), []string{"cannot unmarshal !!map into []string"}},
		{"users not a list", "users: alice\n", []string{"cannot unmarshal"}},
		{"id missing", user(`username: alice, password_hash: "` + bc + `"`), []string{`users[0] (line 2): id is required`}},
		{"id blank", user(`id: " ", username: alice, password_hash: "` + bc + `"`), []string{`users[0] (id " ", line 2): id is required`}},
		{"id twice", "users:\n  - {" + good + "}\n  - {id: \"1\", username: bob, password_hash: \"" + bc + "\"}\n",
			[]string{`users[1] (id "1", line 3): id "1" is also the id of users[0]`}},
		{"no login", user(`id: "1", password_hash: "` + bc + `"`), []string{"username or email is required"}},
		{"blank login", user(`id: "1", username: " ", email: "", password_hash: "` + bc + `"`), []string{"username or email is required"}},
		{"username twice, any case", "users:\n  - {" + good + "}\n  - {id: \"2\", username: ALICE, password_hash: \"" + bc + "\"}\n",
			[]string{`users[1] (id "2", line 3): username "alice" is also a username or email of users[0]`}},
		{"email is another's username", "users:\n  - {" + good + "}\n  - {id: \"2\", email: Alice, password_hash: \"" + bc + "\"}\n",
			[]string{`users[1] (id "2", line 3): email "alice" is also a username or email of users[0]`}},
		{"password_hash missing", user(`id: "1", username: alice`), []string{"password_hash is required"}},
		{"password_hash plain text", user(`id: "1", username: alice, password_hash: hunter2`), []string{"password_hash: malformed password hash: neither a bcrypt hash nor an argon2id PHC string"}},
		{"bcrypt cost 31", user(`id: "1", username: alice, password_hash: "$2a$31$` + bc[7:] + `"`), []string{"cost 31 out of range"}},
		{"argon2id absurd memory", user(`id: "1", username: alice, password_hash: "$argon2id$v=19$m=1073741824,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"`),
			[]string{"m=1073741824 out of range"}},
		{"profile empty", user(good + `, profiles: ["p", ""]`), []string{"profiles[1] is empty"}},
		{"profile twice", user(good + `, profiles: ["p", "q", "p"]`), []string{`profiles[2] "p" repeats profiles[0]`}},
		{"claim name empty", user(good + `, claims: {"": x}`), []string{"a claim name is empty"}},
		{"claim timestamp", user(good + `, claims: {since: 2024-01-02}`), []string{"claims.since: an unquoted timestamp"}},
		{"claim NaN", user(good + `, claims: {n: {x: [.nan]}}`), []string{"claims.n.x[0]: NaN and infinities"}},
		{"claim map with a number key", user(good + `, claims: {m: {1: a}}`), []string{"claims.m: map keys must be strings"}},
	}
	for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "typ", "type", "scope", "client_id", "sid", "profile"} {
		tests = append(tests, struct {
			name, file string
			want       []string
		}{"reserved claim " + name, user(good + `, claims: {ok: 1, ` + name + `: x}`), []string{fmt.Sprintf("claims: %q is reserved", name)}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseFile([]byte(tt.file))
			if err == nil {
				t.Fatalf("accepted: %d users", len(s.byID))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), bc[7:]) {
				t.Errorf("the error quotes a password hash:\n%v", err)
			}
		})
	}
}

// Every problem of a file is reported at once, each naming its user.
func TestParseFileReportsEveryProblem(t *testing.T) {
	bc := bcryptHash(t, "x")
	_, err := parseFile([]byte(`users:
  - {id: "0", username: alice, password_hash: "` + bc + `"}
  - {id: "1", password_hash: "` + bc + `"}
  - {username: nobody, password_hash: "` + bc + `"}
  - {id: "2", username: b, password_hash: "$argon2id$v=19$m=2000000,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA"}
  - {id: "3", username: c, password_hash: "` + bc + `", profiles: ["p", "p"], claims: {sub: "admin", agentId: x}}
  - {id: "4", username: ALICE, email: alice@x, password_hash: "` + bc + `"}
  - {id: "4", username: d, pasword_hash: "` + bc + `"}
`))
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		`line 8: field pasword_hash not found in a user entry`,
		`users[1] (id "1", line 3): username or email is required`,
		`users[2] (line 4): id is required`,
		`users[3] (id "2", line 5): password_hash: malformed password hash: argon2id: m=2000000 out of range [8, 262144]`,
		`users[4] (id "3", line 6): profiles[1] "p" repeats profiles[0]`,
		`users[4] (id "3", line 6): claims: "sub" is reserved for the issuer`,
		`users[5] (id "4", line 7): username "alice" is also a username or email of users[0] (logins ignore case)`,
		`users[6] (id "4", line 8): id "4" is also the id of users[5]`,
		`users[6] (id "4", line 8): password_hash is required`,
	}
	got := strings.Split(err.Error(), "\n")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(err.Error(), bc) {
		t.Error("the error holds a password hash")
	}
}

// yaml.v3 quotes the start of a value it cannot decode; that value could be
// a password hash put under the wrong key.
func TestParseFileRedactsYAMLExcerpts(t *testing.T) {
	bc := bcryptHash(t, "x")
	_, err := parseFile([]byte(`users:
  - id: "1"
    username: alice
    password_hash: "` + bc + `"
    profiles: "` + bc + `"
    claims: "` + bc + `"
`))
	if err == nil {
		t.Fatal("accepted")
	}
	if strings.Contains(err.Error(), "$2a$") || !strings.Contains(err.Error(), "(value redacted)") {
		t.Errorf("the excerpt is not redacted:\n%v", err)
	}
	for in, want := range map[string]string{
		"line 3: cannot unmarshal !!str `$2a$04$...` into []string": "line 3: cannot unmarshal !!str (value redacted) into []string",
		"line 3: cannot unmarshal !!str `a`b...` into int":          "line 3: cannot unmarshal !!str (value redacted) into int",
		"line 3: cannot unmarshal !!str `$2a$04$... into int":       "line 3: cannot unmarshal !!str (value redacted)",
		"line 3: field x not found in type identity.fileUser":       "line 3: field x not found in a user entry",
	} {
		if got := cleanYAMLError(in); got != want {
			t.Errorf("cleanYAMLError(%q) = %q, want %q", in, got, want)
		}
	}
}
