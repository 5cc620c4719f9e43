package jsonpath_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/tollgate/tollgate/jsonpath"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLookupAndText(t *testing.T) {
	doc := decode(t, `{"data":{"id":9001,"login":"stb","big":12345678901234567890,"on":true,"empty":"",
		"users":[{"id":"a"},{"id":"b"}],"roles":["AGENT",7,{"x":1},"VIEWER"],"one":"solo"}}`)
	for _, tc := range []struct {
		path, want string
		ok         bool
	}{
		{"data.id", "9001", true},
		{"data.big", "12345678901234567890", true}, // exact, not a float
		{"data.on", "true", true},
		{"data.login", "stb", true},
		{"data.users.1.id", "b", true},
		{"data.users.2.id", "", false},
		{"data.users.-1.id", "", false},
		{"data.users.x", "", false},
		{"data.empty", "", false},
		{"data", "", false}, // an object is no text
		{"data.missing", "", false},
		{"data.login.deeper", "", false},
	} {
		p, err := jsonpath.Parse(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := p.Text(doc); got != tc.want || ok != tc.ok {
			t.Errorf("%s: %q %v, want %q %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
	if got := (jsonpath.Path{"data", "roles"}).Texts(doc); !slices.Equal(got, []string{"AGENT", "7", "VIEWER"}) {
		t.Errorf("texts %v", got)
	}
	if got := (jsonpath.Path{"data", "one"}).Texts(doc); !slices.Equal(got, []string{"solo"}) {
		t.Errorf("a scalar as texts: %v", got)
	}
	if v, ok := jsonpath.Get(doc, ""); !ok || v == nil {
		t.Error("the root path finds nothing")
	}
	for _, bad := range []string{".a", "a.", "a..b", "."} {
		if _, err := jsonpath.Parse(bad); !errors.Is(err, jsonpath.ErrSyntax) {
			t.Errorf("%q: %v", bad, err)
		}
		if _, ok := jsonpath.Get(doc, bad); ok {
			t.Errorf("%q found something", bad)
		}
	}
	for _, v := range []any{3, int64(4), uint64(5), 1.5} {
		if _, ok := jsonpath.Text(v); !ok {
			t.Errorf("%T is no text", v)
		}
	}
}
