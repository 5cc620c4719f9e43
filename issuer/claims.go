package issuer

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"
)

// claimSet is a JWT claims set (RFC 7519 §4) written as it is built: JSON
// members appended in order. Minting is on the refresh grant's path, which
// a renewing fleet runs all day: written by hand, a token's claims take
// one buffer, where a map encoded by reflection took a map, a sort of its
// keys and an allocation per value.
type claimSet struct {
	b     []byte
	names []string // written so far
}

func newClaimSet() *claimSet {
	c := &claimSet{b: make([]byte, 0, 512), names: make([]string, 0, 20)}
	c.b = append(c.b, '{')
	return c
}

func (c *claimSet) name(n string) {
	if len(c.b) > 1 {
		c.b = append(c.b, ',')
	}
	c.names = append(c.names, n)
	c.b = appendJSONString(c.b, n)
	c.b = append(c.b, ':')
}

// str adds a string claim.
func (c *claimSet) str(name, v string) {
	c.name(name)
	c.b = appendJSONString(c.b, v)
}

// strIf adds a string claim unless v is empty.
func (c *claimSet) strIf(name, v string) {
	if v != "" {
		c.str(name, v)
	}
}

// num adds a number claim, such as a NumericDate.
func (c *claimSet) num(name string, v int64) {
	c.name(name)
	c.b = strconv.AppendInt(c.b, v, 10)
}

// extra adds the claims of m not written yet, in name order, each value
// as encoding/json writes it; a value it cannot write is an error.
func (c *claimSet) extra(m map[string]any) error {
	if len(m) == 0 {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if slices.Contains(c.names, k) {
			continue
		}
		v, err := json.Marshal(m[k])
		if err != nil {
			return err
		}
		c.name(k)
		c.b = append(c.b, v...)
	}
	return nil
}

// json closes the set and returns its JSON.
func (c *claimSet) json() []byte { return append(c.b, '}') }

// appendJSONString appends s as a JSON string: as encoding/json writes it
// for plain text, escaping quotes, backslashes and control characters, and
// invalid UTF-8 replaced by U+FFFD. (encoding/json also escapes <, > and &
// for HTML; a token is no HTML, and RFC 8259 does not ask for it.)
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' { // as encoding/json: JSONP-safe
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// jwtHeader returns a JWS header's encoded form: alg, kid and typ.
func jwtHeader(alg, kid, typ string) []byte {
	h := make([]byte, 0, 96)
	h = append(h, `{"alg":`...)
	h = appendJSONString(h, alg)
	h = append(h, `,"kid":`...)
	h = appendJSONString(h, kid)
	h = append(h, `,"typ":`...)
	h = appendJSONString(h, typ)
	return append(h, '}')
}

// signingInput returns the JWS signing input of a compact JWT, BASE64URL
// of the header "." BASE64URL of the payload (RFC 7515 §5.1), with room
// for the signature after it.
func signingInput(header, payload []byte) []byte {
	enc := base64.RawURLEncoding
	n := enc.EncodedLen(len(header)) + 1 + enc.EncodedLen(len(payload))
	out := make([]byte, n, n+1+enc.EncodedLen(512)) // room for an RSA-4096 signature
	enc.Encode(out, header)
	out[enc.EncodedLen(len(header))] = '.'
	enc.Encode(out[enc.EncodedLen(len(header))+1:], payload)
	return out
}
