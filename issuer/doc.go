// Package issuer mints tollgate's own tokens and serves the endpoints that
// hand them out: the OAuth 2.0 token endpoint (and the Keycloak-style paths
// fielded clients call), the JSON:API access_tokens dialect, userinfo,
// OpenID discovery and the JWKS.
//
// Security rules:
//   - Client secrets MUST be compared in constant time; passwords are
//     checked by the user store, which gives unknown users and wrong
//     passwords the same cost and error.
//   - A refresh token MUST NOT be accepted as an access token, nor an access
//     token as a refresh token; refresh tokens carry this issuer as their
//     audience, so no API accepts them.
//   - Token responses MUST carry Cache-Control: no-store. Tokens,
//     passwords and secrets MUST NOT appear in logs or error bodies.
//   - Request bodies are bounded; HMAC keys are never published.
package issuer
