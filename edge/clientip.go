package edge

import (
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address of the client that sent r: the
// connection's peer, or, when the peer is one of the trusted proxies, the
// nearest address in X-Forwarded-For that is not a trusted proxy (read
// from the right: only the entries trusted proxies appended can be
// believed). It is invalid when no address can be read.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := peer.Addr().Unmap()
	if !isTrusted(addr, trusted) {
		return addr
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		list := strings.Split(hops[i], ",")
		for j := len(list) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(list[j]))
			if err != nil {
				return addr // a garbled entry: trust stops at the last proxy
			}
			addr = hop.Unmap()
			if !isTrusted(addr, trusted) {
				return addr
			}
		}
	}
	return addr
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
