package session

import (
	"fmt"
	"strings"
	"time"
)

// checkCreate validates Create's arguments and returns the session as
// stores keep it: times to the millisecond, Created defaulting to now and
// Refreshed to Created.
func checkCreate(s Session, handle string, now int64) (Session, error) {
	var problems []string
	if s.ID == "" {
		problems = append(problems, "the session id is empty")
	}
	if s.UserID == "" {
		problems = append(problems, "the user id is empty")
	}
	if handle == "" {
		problems = append(problems, "the refresh handle is empty")
	}
	if s.Expires.UnixMilli() <= now {
		problems = append(problems, "the session expires before now")
	}
	if len(problems) > 0 {
		return s, fmt.Errorf("%w: create: %s", ErrInvalidArgument, strings.Join(problems, "; "))
	}
	if s.Created.IsZero() {
		s.Created = time.UnixMilli(now)
	}
	if s.Refreshed.IsZero() {
		s.Refreshed = s.Created
	}
	s.Created = time.UnixMilli(s.Created.UnixMilli())
	s.Refreshed = time.UnixMilli(s.Refreshed.UnixMilli())
	s.Expires = time.UnixMilli(s.Expires.UnixMilli())
	return s, nil
}

// checkRotate validates Rotate's arguments.
func checkRotate(presented, next string, expires time.Time, now int64) error {
	var problems []string
	if presented == "" || next == "" {
		problems = append(problems, "a refresh handle is empty")
	}
	if presented == next {
		problems = append(problems, "the next handle is the presented one")
	}
	if expires.UnixMilli() <= now {
		problems = append(problems, "the session would expire before now")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: rotate: %s", ErrInvalidArgument, strings.Join(problems, "; "))
	}
	return nil
}
