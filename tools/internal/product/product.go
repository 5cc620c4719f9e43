// Package product is what the tools module's tests share to run tollgate
// as it ships: the binary built from the repository root, and the files
// it is configured with. It MUST NOT import the product's packages: the
// tests check the binary, not its code.
package product

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// Root is the repository root, relative to the directory of a package
// under tools/ (where go test runs its tests).
const Root = "../.."

// Build builds the tollgate command from the repository root into dir and
// returns its path.
func Build(ctx context.Context, t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tollgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tollgate")
	cmd.Dir = Root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return bin
}

// WriteFile writes content to name, readable by its owner only.
func WriteFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Users is a users file with one user (id "2", profile p1) who logs in
// with username and password, hashed with bcrypt's least cost.
func Users(t testing.TB, username, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return `users:
  - id: "2"
    username: ` + username + `
    password_hash: "` + string(h) + `"
    profiles: [p1]
`
}
