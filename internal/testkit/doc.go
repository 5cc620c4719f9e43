// Package testkit holds the helpers tollgate's tests share: signing keys
// that mint tokens, a settable clock, and an echo upstream. Tests only: no
// product package imports it.
package testkit
