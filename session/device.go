package session

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// DeviceCodePrefix begins every device code NewDeviceCode makes, so that
// a leaked one is recognisable.
const DeviceCodePrefix = "tgd_"

// UserCodeAlphabet holds the characters of a user code: twenty
// consonants, so that no code spells a word and none reads as another
// (no vowels, so no 0/O or 1/I either).
const UserCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// userCodeLen is how many characters a user code has: 20^8 ≈ 2.56e10
// codes.
const userCodeLen = 8

// DefaultDeviceInterval is the polling interval of a request created
// without one: RFC 8628's default.
const DefaultDeviceInterval = 5 * time.Second

// slowDownStep is how much each slow_down lengthens the polling
// interval (RFC 8628 §3.5).
const slowDownStep = 5 * time.Second

// deviceLinger is how long a request is kept after it expires, so that a
// device polling just after hears expired_token rather than
// invalid_grant. Its user code is free again at once.
const deviceLinger = time.Minute

// NewDeviceCode returns a new device code: 32 random bytes, base64url,
// after DeviceCodePrefix.
func NewDeviceCode() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails: it crashes the program instead
	return DeviceCodePrefix + base64.RawURLEncoding.EncodeToString(b)
}

// NewUserCode returns a new user code: 8 characters of UserCodeAlphabet
// drawn uniformly, shown as two groups of four ("BDFH-KMNP").
func NewUserCode() string {
	var code [userCodeLen]byte
	var buf [2 * userCodeLen]byte
	for n := 0; n < userCodeLen; {
		rand.Read(buf[:])
		for _, b := range buf {
			// 240 is the largest multiple of 20 a byte holds: rejecting
			// the rest keeps every character equally likely.
			if b < 240 && n < userCodeLen {
				code[n] = UserCodeAlphabet[b%20]
				n++
			}
		}
	}
	return string(code[:4]) + "-" + string(code[4:])
}

// NormalizeUserCode reads a user code as a user typed it: letters in
// either case, spaces and dashes anywhere. It returns the code as
// NewUserCode makes it, or false when s is no user code (another length,
// a character outside UserCodeAlphabet).
func NormalizeUserCode(s string) (string, bool) {
	var code [userCodeLen]byte
	n := 0
	for i := range len(s) {
		c := s[i]
		if c == ' ' || c == '-' {
			continue
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if n == userCodeLen || strings.IndexByte(UserCodeAlphabet, c) < 0 {
			return "", false
		}
		code[n] = c
		n++
	}
	if n != userCodeLen {
		return "", false
	}
	return string(code[:4]) + "-" + string(code[4:]), true
}

// checkCreateDevice validates CreateDevice's arguments and returns the
// request as stores keep it: the user code normalised, pending, times to
// the millisecond, Created defaulting to now and Interval to
// DefaultDeviceInterval.
func checkCreateDevice(deviceCode string, d DeviceCode, now int64) (DeviceCode, error) {
	var problems []string
	if deviceCode == "" {
		problems = append(problems, "the device code is empty")
	}
	uc, ok := NormalizeUserCode(d.UserCode)
	if !ok {
		problems = append(problems, "the user code is not one")
	}
	if d.ClientID == "" {
		problems = append(problems, "the client id is empty")
	}
	if d.Expires.UnixMilli() <= now {
		problems = append(problems, "the request expires before now")
	}
	if d.Interval < 0 {
		problems = append(problems, "the interval is negative")
	}
	if (d.Status != "" && d.Status != DevicePending) || d.UserID != "" || d.Profile != "" {
		problems = append(problems, "a new request is pending, without a user")
	}
	if len(problems) > 0 {
		return d, fmt.Errorf("%w: create device: %s", ErrInvalidArgument, strings.Join(problems, "; "))
	}
	d.UserCode, d.Status = uc, DevicePending
	if d.Created.IsZero() {
		d.Created = time.UnixMilli(now)
	}
	d.Created = time.UnixMilli(d.Created.UnixMilli())
	d.Expires = time.UnixMilli(d.Expires.UnixMilli())
	if d.Interval == 0 {
		d.Interval = DefaultDeviceInterval
	}
	d.Interval = max(d.Interval.Truncate(time.Millisecond), time.Millisecond)
	return d, nil
}

// checkDecide validates DecideDevice's arguments.
func checkDecide(approve bool, userID string) error {
	if approve && userID == "" {
		return fmt.Errorf("%w: decide device: an approval without a user", ErrInvalidArgument)
	}
	return nil
}
