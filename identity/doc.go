// Package identity says who a user is for tollgate's token endpoints.
// It holds:
//   - the users file (YAML; Users): kept current while tollgate runs
//     (package watch), passwords checked with bcrypt or argon2id, users
//     looked up by id on refresh and by username or email for exchanges;
//   - the legacy login backend (Legacy): the password grant and user
//     lookups against the operator's existing login endpoint instead of a
//     users file;
//   - external OAuth servers (External): an external access token mapped
//     to a local user by RFC 7662 introspection or OIDC userinfo, for
//     login_with_token (docs/CLIENTS.md §1.3);
//   - legacy cookie sessions (CookieSessions): whose session of the legacy
//     system a cookie is, for the cookie exchange (docs/CLIENTS.md §1.5).
//
// Every backend call is bounded (timeout, 1 MiB reply, no redirects) and
// its URL never appears in an error a client could see.
//
// The users file is replaced while tollgate runs, usually by a Kubernetes
// ConfigMap update (an atomic swap of the ..data symlink) or by an editor.
// Writers should replace the file atomically (write elsewhere, rename): a
// half-written file that happens to be valid would be served until the
// write completes.
//
// Security rules:
//   - An unknown login and a wrong password MUST take the same path: one
//     Hasher.Compare call each, the unknown login against a dummy hash made
//     at load time with the algorithm and cost of most users' hashes, and
//     the same error, ErrInvalidCredentials, so neither timing nor wording
//     tells which logins exist. An empty login or password MUST also cost
//     one comparison.
//   - Password hashes MUST NOT leave the package: User has no field for
//     them, and they MUST NOT appear in logs or errors (YAML error excerpts
//     are redacted; validation messages name users by index, id and line).
//   - A broken users file MUST NOT replace a good one: the last good version
//     keeps serving and the problem is logged. A file that fails validation
//     MUST NOT be partly applied: every problem is reported, none is served.
//   - Hash parameters read from the file MUST be bounded (bcrypt cost,
//     argon2id memory, passes, lanes, salt and key lengths), so a hostile
//     or mistaken file cannot make one login allocate gigabytes or run for
//     minutes.
//   - Users handed to callers MUST NOT share memory with the loaded
//     version: every returned *User is a deep copy.
//   - Extra claims MUST NOT override the claims the issuer owns (iss, sub,
//     aud, exp, …); such a file is rejected.
package identity
