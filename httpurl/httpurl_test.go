package httpurl_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/httpurl"
)

func TestParse(t *testing.T) {
	for _, ok := range []string{"http://a", "https://a.example:8443/base", "http://127.0.0.1:9/jwks?tenant=x", "http://[::1]:80/"} {
		if _, err := httpurl.Parse(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "ftp://a", "a.example", "/path", "http://", "https://a#x", "http://user:s3cret@a/", "http://a b", "%"} {
		_, err := httpurl.Parse(bad)
		if !errors.Is(err, httpurl.ErrInvalid) {
			t.Errorf("%q accepted: %v", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error holds the password: %v", err)
		}
	}
}
