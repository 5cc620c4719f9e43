// Package session keeps tollgate's sessions when a session store is
// configured: one-time refresh handles with reuse detection, revocation
// and the revoked-session set every replica holds, per-user session
// limits, and the login limiters shared across replicas. It has two
// stores: Memory (one replica; state is lost on restart) and Redis (any
// number of replicas, through github.com/redis/go-redis/v9's universal
// client: single node, Sentinel or Cluster).
//
// It sits at the bottom of the import graph, beside identity and
// verifier: the issuer starts, continues and ends sessions through Store;
// the proxy sees only "is this session revoked", answered from a Revoked
// set in memory, never with a store round trip per request.
//
// Refresh handles are made by the caller with NewHandle (32 random bytes,
// base64url, after "tgr_"). A rotation replaces the presented handle with
// the next one; presented again within the reuse interval it gives back
// the same successor (a client's retry, two threads refreshing at once),
// later — or any older handle — it revokes the session (CauseReuse),
// whichever client presents it. A live handle presented through another
// client than its session's changes nothing (ErrWrongClient). A
// session remembers the handle before its current one and 16 older ones;
// handles older still are unknown.
//
// Both stores also keep device authorization requests (RFC 8628,
// DeviceCodes): the device polls with a device code made by
// NewDeviceCode (32 random bytes, base64url, after "tgd_") while its user
// signs in elsewhere and enters the user code made by NewUserCode (8 of
// 20 consonants, "BDFH-KMNP"). PollDevice is RFC 8628's state machine in
// one step. Limiting how many user codes a client may try is the
// issuer's job, with a limit.Limiter ((*Redis).Limiter across replicas).
//
// A Redis store runs each operation as one Lua script, with every key
// under one hash tag (KeyPrefix + "{sessions}:") so that the scripts work
// on a Cluster too; every key expires with what it holds. Its Run
// subscribes to the revocation channel, reloads the revoked set on every
// (re)connect and every ResyncInterval, and pings Redis; (*Redis).Limiter
// gives login limiters counted in Redis by every replica.
//
// Security rules:
//   - A refresh handle MUST NOT be stored: only its SHA-256. The successor
//     handle kept for a retry within the reuse interval MUST be stored
//     encrypted under the handle it replaces (AES-256-GCM, key SHA-256 of
//     "tollgate successor\x00" and that handle), so a dump of the store
//     yields no usable token.
//   - A rotation MUST be one atomic store operation: two replicas racing on
//     one handle cannot both win, and a handle used after the reuse
//     interval revokes the whole session.
//   - When the store cannot answer, sessions MUST NOT be created, rotated or
//     ended as if it had: callers fail closed (ErrUnavailable).
//   - A device code MUST NOT be stored: only its SHA-256. A user code is
//     stored as is: it is no bearer credential, and a hash of its 35 bits
//     would hide nothing.
//   - An approved device code MUST yield tokens once: the poll that finds
//     it approved marks it used in the same atomic operation.
//   - A handle, a device code, a limiter key (a login name) or a Redis
//     password MUST NOT be logged or put in an error.
package session
