package edge_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/tollgate/tollgate/edge"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"203.0.113.7:5000", nil, "203.0.113.7"},
		{"203.0.113.7:5000", []string{"1.2.3.4"}, "203.0.113.7"},                     // an untrusted peer cannot claim another address
		{"10.1.2.3:80", []string{"198.51.100.9"}, "198.51.100.9"},                    // behind the load balancer
		{"10.1.2.3:80", []string{"1.2.3.4, 198.51.100.9, 10.9.9.9"}, "198.51.100.9"}, // the client forged 1.2.3.4
		{"10.1.2.3:80", []string{"1.2.3.4", "198.51.100.9"}, "198.51.100.9"},
		{"10.1.2.3:80", []string{"garbage, 198.51.100.9"}, "198.51.100.9"},
		{"10.1.2.3:80", []string{"198.51.100.9, garbage"}, "10.1.2.3"},
		{"10.1.2.3:80", nil, "10.1.2.3"},
		{"[::1]:80", []string{"2001:db8::5"}, "2001:db8::5"},
		{"[::ffff:203.0.113.7]:80", nil, "203.0.113.7"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := edge.ClientIP(r, trusted); got.String() != tc.want {
			t.Errorf("%s %v: %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "not an address"
	if edge.ClientIP(r, trusted).IsValid() {
		t.Error("an unreadable peer gave an address")
	}
}
