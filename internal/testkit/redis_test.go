package testkit_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testkit"
)

// roundTrip sends one inline command to the socket and returns the first
// line of the answer.
func roundTrip(sock, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestRedisStopsAndStartsOnTheSameSocketEmpty(t *testing.T) {
	srv := testkit.StartRedis(t)
	if !strings.HasPrefix(srv.URL(), "unix:///") || !strings.HasSuffix(srv.URL(), "/redis.sock") {
		t.Fatalf("URL %q", srv.URL())
	}
	if got, err := roundTrip(srv.Socket(), "SET k v"); err != nil || got != "+OK" {
		t.Fatalf("SET: %q %v", got, err)
	}
	srv.Stop()
	if got, err := roundTrip(srv.Socket(), "PING"); err == nil {
		t.Fatalf("a stopped server answered %q", got)
	}
	srv.Start()
	if got, err := roundTrip(srv.Socket(), "EXISTS k"); err != nil || got != ":0" {
		t.Fatalf("after a restart EXISTS k answered %q %v; want :0 (no persistence)", got, err)
	}
	if got, err := roundTrip(srv.Socket(), "CONFIG GET save"); err != nil || got != "*2" {
		t.Fatalf("CONFIG GET save: %q %v", got, err)
	}
}

func TestRedisClusterIsOK(t *testing.T) {
	addr := testkit.RedisCluster(t)
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	// A key of any slot is served here.
	c.Write([]byte("SET {a}x 1\r\nSET {b}y 2\r\n"))
	rd := bufio.NewReader(c)
	for range 2 {
		if line, err := rd.ReadString('\n'); err != nil || strings.TrimSpace(line) != "+OK" {
			t.Fatalf("SET answered %q %v", line, err)
		}
	}
}
