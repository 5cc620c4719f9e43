// Package verifier checks JWT access tokens: it finds the key a token was
// signed with (static PEM/JWK files, remote JWKS endpoints, or keys supplied
// in-process), verifies the signature, and checks the claims.
//
// Security rules:
//   - The token's alg header MUST NOT choose the key type: every key carries its
//     own allow-list of algorithms, derived from the key material and the
//     issuer's configured algorithms; "none" is never accepted.
//   - exp, iss and aud MUST be checked on every token; nbf and iat when
//     present. A refresh token MUST NOT be accepted as an access token.
//   - Cheap claim checks run before any signature work or key fetch, so a
//     flood of expired or foreign tokens costs no crypto and no network.
//   - The package MUST NOT log or return a token in an error.
package verifier
