// Package jsonpath reads a value out of decoded JSON by a dotted path:
// "data.user.id", "realm_access.roles", "data.users.0.id". The proxy uses
// it for claim→header mappings, identity for backend replies, with the
// same rules.
package jsonpath

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// Path is a parsed dotted path: object keys, and array indexes written as
// decimal numbers.
type Path []string

// ErrSyntax is returned by Parse for an empty path or an empty segment.
var ErrSyntax = errors.New("jsonpath: want dot-separated non-empty keys")

// Parse splits a dotted path. "" is the root (an empty Path).
func Parse(s string) (Path, error) {
	if s == "" {
		return Path{}, nil
	}
	p := Path(strings.Split(s, "."))
	for _, seg := range p {
		if seg == "" {
			return nil, ErrSyntax
		}
	}
	return p, nil
}

// Lookup returns the value at p in v (as decoded by encoding/json or
// YAML: maps with string keys, slices of any).
func (p Path) Lookup(v any) (any, bool) {
	for _, key := range p {
		switch node := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = node[key]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(node) {
				return nil, false
			}
			v = node[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// Text returns the text of the scalar at p: a non-empty string, a number
// (json.Number keeps its exact text) or a boolean.
func (p Path) Text(v any) (string, bool) {
	x, ok := p.Lookup(v)
	if !ok {
		return "", false
	}
	return Text(x)
}

// Texts returns the texts of the scalars of the array at p, skipping
// anything else; a single scalar counts as an array of one.
func (p Path) Texts(v any) []string {
	x, ok := p.Lookup(v)
	if !ok {
		return nil
	}
	arr, isArray := x.([]any)
	if !isArray {
		arr = []any{x}
	}
	var out []string
	for _, e := range arr {
		if s, ok := Text(e); ok {
			out = append(out, s)
		}
	}
	return out
}

// Text renders a scalar: a non-empty string, a number or a boolean.
func Text(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, v != ""
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	}
	return "", false
}

// Get parses path and looks it up; a malformed path finds nothing.
func Get(v any, path string) (any, bool) {
	p, err := Parse(path)
	if err != nil {
		return nil, false
	}
	return p.Lookup(v)
}

// GetText parses path and returns the text of the scalar there.
func GetText(v any, path string) (string, bool) {
	p, err := Parse(path)
	if err != nil {
		return "", false
	}
	return p.Text(v)
}

// GetTexts parses path and returns the texts of the array there.
func GetTexts(v any, path string) []string {
	p, err := Parse(path)
	if err != nil {
		return nil
	}
	return p.Texts(v)
}
