// Package jwk holds, once, what tollgate knows about key material: which
// JWS algorithms a key can do, its RFC 7638 thumbprint (tollgate's kid),
// its public half, and how a PEM private key is read. The verifier (which
// checks tokens) and the issuer (which signs them) both use it, so a key
// the issuer signs with is always one the verifier accepts for that
// algorithm.
//
// Security rules:
//   - The algorithms of a key MUST follow from its material alone: an RSA
//     key is never an HMAC secret, a P-256 key never verifies ES384.
//   - Secrets and private keys MUST NOT appear in errors.
package jwk
