// Package identity says who a user is: it reads the users file (YAML),
// keeps it current while tollgate runs, and checks passwords.
//
// Security rules:
//   - An unknown login and a wrong password MUST take the same path: one
//     password-hash comparison each (against a dummy hash of the same kind
//     for an unknown login) and the same error, so neither timing nor
//     wording tells which logins exist.
//   - Password hashes MUST NOT leave the package: User has no field for
//     them, and they are never logged.
//   - A broken users file MUST NOT replace a good one: the last good
//     version keeps serving and the problem is logged.
//   - Hash parameters read from the file are bounded, so a hostile or
//     mistaken file cannot make a login allocate gigabytes.
package identity
