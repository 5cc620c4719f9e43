package identity

import (
	"context"
	"fmt"
	"strings"
)

// Find returns the user whose field ("id", "username" or "email"; email
// and username in any case) is value, or ErrUnknownUser.
func (u *Users) Find(ctx context.Context, field, value string) (*User, error) {
	if field == "" || field == "id" {
		return u.Lookup(ctx, value)
	}
	e := u.snap.Load().byLogin[loginKey(value)]
	if e != nil {
		switch field {
		case "username":
			if strings.EqualFold(e.user.Username, strings.TrimSpace(value)) {
				return e.user.clone(), nil
			}
		case "email":
			if strings.EqualFold(e.user.Email, strings.TrimSpace(value)) {
				return e.user.clone(), nil
			}
		}
	}
	return nil, fmt.Errorf("%w: no user with that %s", ErrUnknownUser, field)
}
