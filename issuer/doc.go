// Package issuer mints tollgate's own tokens and serves the endpoints that
// hand them out: the OAuth 2.0 token endpoint (and the Keycloak-style paths
// fielded clients call), the JSON:API access_tokens dialect, the
// exchanges (external token, legacy cookie, profile), userinfo,
// introspection, OpenID discovery and the JWKS; and the signing keys
// (Keys: a watched directory, published as the JWKS).
//
// Every grant ends in one of two places: startSession (a user
// authenticated anew) or continueSession (refresh, profile switch), the
// seams where a session store keeps its state. Refusals are *Error values
// — wire code, status, client-facing description, internal cause — written
// by one writer per dialect; the cause goes to the log with the request
// ID, never to the client.
//
// Security rules:
//   - Client secrets MUST be compared in constant time; passwords are
//     checked by the user store, which gives unknown users and wrong
//     passwords the same cost and error.
//   - A refresh token MUST NOT be accepted as an access token, nor an access
//     token as a refresh token; refresh tokens carry this issuer as their
//     audience, so no API accepts them.
//   - Token responses MUST carry Cache-Control: no-store. Tokens,
//     passwords and secrets MUST NOT appear in logs or error bodies; error
//     bodies MUST NOT carry a backend's address or error text.
//   - A Bearer token MUST be read with edge.BearerToken, the parser the
//     proxy uses, and refused in the proxy's words (edge.Challenges).
//   - Request bodies are bounded; HMAC keys are never published.
package issuer
