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
//   - A user whose hash is made with other parameters than most MUST be
//     rehashed in memory with the majority's parameters at their first
//     successful login (the file is never written), so that from then on
//     a wrong password for them costs what an unknown login costs; a
//     reload that changes their hash, or the majority's parameters, drops
//     the rehash. Until that login their timing differs: such users MUST
//     be reported (Users.HashWarnings, and the log at every load) by
//     count and a few ids, never by hash.
//   - A password longer than 72 bytes MUST NOT match a bcrypt hash, which
//     would check only its first 72 bytes; the refusal MUST cost one
//     comparison, like any other.
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
//   - An id put into the legacy LookupURL MUST stay one path segment or one
//     query value: it is escaped for where {id} stands ("/", "?", "#", "%"
//     and, in a query, "&" and "=" included), and "", "." and ".." are
//     ErrUnknownUser without a request, since an id can come from an
//     external token's claim. {id} MUST NOT stand in the host.
//   - An external token MUST have been issued to an app tollgate accepts:
//     an introspection reply's client_id MUST be one of AllowedClients or
//     its aud MUST name one of AllowedAudiences, else ErrInactiveToken; an
//     introspection service with neither list MUST be refused at start.
//     For userinfo the lists are optional and checked on the fields the
//     reply has. Errors MUST NOT quote the token.
package identity
