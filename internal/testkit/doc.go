// Package testkit holds the helpers tollgate's tests share: signing keys
// that mint tokens, a settable clock, an echo upstream, and a real
// redis-server of a test's own (on a unix socket, stopped and restarted
// on demand). Tests only: no product package imports it.
package testkit
