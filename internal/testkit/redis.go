package testkit

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// redisStartWait bounds how long a redis-server may take to answer PING,
// and how long it may take to exit once told to.
const redisStartWait = 20 * time.Second

// RedisServer is a redis-server of the test's own: no TCP port, a unix
// socket in a temporary directory, no persistence (a restart starts
// empty). It stops when the test ends.
type RedisServer struct {
	t    testing.TB
	dir  string
	sock string

	mu     sync.Mutex
	cmd    *exec.Cmd     // guarded by mu; nil while stopped
	exited chan struct{} // guarded by mu; closed when cmd has exited
}

// Redis starts a redis-server for the test and returns its URL,
// unix:///…/redis.sock. It fails the test (never skips it) when
// redis-server is not installed.
func Redis(t testing.TB) string {
	t.Helper()
	return StartRedis(t).URL()
}

// StartRedis starts a redis-server for the test, which Stop and Start can
// take down and bring back on the same socket.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("testkit: redis-server is not installed (apt-get install -y redis-server; test.sh does it): " + err.Error())
	}
	dir := t.TempDir()
	// A unix socket path is limited to 108 bytes; a long test name can
	// make TempDir's longer.
	if len(dir) > 80 {
		var err error
		if dir, err = os.MkdirTemp("/tmp", "redis"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	s := &RedisServer{t: t, dir: dir, sock: filepath.Join(dir, "redis.sock")}
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// URL returns the server's URL.
func (s *RedisServer) URL() string { return "unix://" + s.sock }

// Socket returns the path of the server's unix socket.
func (s *RedisServer) Socket() string { return s.sock }

// Start starts the server (again) and waits until it answers PING. It
// does nothing while the server runs.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	logPath := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command("redis-server",
		"--port", "0",
		"--unixsocket", s.sock,
		"--unixsocketperm", "700",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", logPath,
		"--daemonize", "no",
	)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("testkit: start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(redisStartWait)
	for {
		if err := ping(s.sock); err == nil {
			return
		} else if time.Now().After(deadline) {
			s.kill()
			s.t.Fatalf("testkit: redis-server did not answer PING within %v: %v\n%s", redisStartWait, err, tail(logPath))
		}
		select {
		case <-exited:
			s.cmd = nil
			s.t.Fatalf("testkit: redis-server exited at start\n%s", tail(logPath))
		case <-time.After(10 * time.Millisecond): // the next poll
		}
	}
}

// Stop stops the server (SIGTERM to its PID) and waits until it has
// exited; clients see their connections closed and the socket gone. It
// does nothing while the server is stopped.
func (s *RedisServer) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(redisStartWait):
		s.kill()
		s.t.Errorf("testkit: redis-server (pid %d) did not stop on SIGTERM within %v; killed", s.cmd.Process.Pid, redisStartWait)
	}
	s.cmd = nil
	// Redis removes its socket on a clean shutdown; a killed one leaves it.
	os.Remove(s.sock)
}

// kill ends the process with SIGKILL and waits for it. s.mu must be held.
func (s *RedisServer) kill() {
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// ping sends PING on a new connection to the socket and expects +PONG.
func ping(sock string) error {
	line, err := command("unix", sock, "PING")
	if err == nil && line != "+PONG" {
		err = fmt.Errorf("PING answered %q", line)
	}
	return err
}

// tail returns the end of the server's log, for a failure message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// RedisCluster starts a one-node Redis Cluster (every slot on one
// redis-server, on a free TCP port of 127.0.0.1) for the test, waits
// until the cluster is ok and returns the node's address, host:port. It
// stops when the test ends.
func RedisCluster(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("testkit: redis-server is not installed (apt-get install -y redis-server; test.sh does it): " + err.Error())
	}
	dir := t.TempDir()
	port, bus := freePort(t), freePort(t)
	logPath := filepath.Join(dir, "redis.log")
	cmd := exec.Command("redis-server",
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--cluster-enabled", "yes",
		"--cluster-port", strconv.Itoa(bus),
		"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", logPath,
		"--daemonize", "no",
	)
	if err := cmd.Start(); err != nil {
		t.Fatalf("testkit: start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(redisStartWait):
			cmd.Process.Kill()
			<-exited
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(redisStartWait)
	assigned := false
	for {
		var err error
		if !assigned {
			var got string
			if got, err = command("tcp", addr, "CLUSTER ADDSLOTSRANGE 0 16383"); err == nil && got != "+OK" {
				err = fmt.Errorf("CLUSTER ADDSLOTSRANGE answered %q", got)
			}
			assigned = err == nil
		}
		if assigned {
			var info string
			if info, err = clusterState(addr); err == nil && info == "ok" {
				return addr
			} else if err == nil {
				err = fmt.Errorf("cluster_state:%s", info)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testkit: the Redis Cluster was not ok within %v: %v\n%s", redisStartWait, err, tail(logPath))
		}
		select {
		case <-exited:
			t.Fatalf("testkit: redis-server exited at start\n%s", tail(logPath))
		case <-time.After(20 * time.Millisecond): // the next poll
		}
	}
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// command sends one inline command on a new connection and returns the
// first line of the answer.
func command(network, addr, cmd string) (string, error) {
	c, err := net.DialTimeout(network, addr, time.Second)
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

// clusterState returns the cluster_state line of CLUSTER INFO.
func clusterState(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("CLUSTER INFO\r\n")); err != nil {
		return "", err
	}
	rd := bufio.NewReader(c)
	if _, err := rd.ReadString('\n'); err != nil { // the bulk string's length
		return "", err
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	state, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster_state:")
	if !ok {
		return "", fmt.Errorf("CLUSTER INFO begins %q", line)
	}
	return state, nil
}
