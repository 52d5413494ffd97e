// Package brokertest runs brokers of a test's own — redis-server and
// nats-server on a free loopback port — that the test may kill and start
// again on the same port, for the tests of what happens when the broker
// goes away. A missing binary skips the test, or fails it under CI=true,
// where the machine has both.
package brokertest

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Server is a broker process of the test's own.
type Server struct {
	t      testing.TB
	scheme string // redis or nats
	bin    string
	port   string
	args   []string

	mu  sync.Mutex
	cmd *exec.Cmd // nil while killed
}

// Redis starts a redis-server without persistence, killed when the test
// ends.
func Redis(t testing.TB) *Server {
	t.Helper()
	s := newServer(t, "redis")
	s.args = []string{"--port", s.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}
	s.Start()
	return s
}

// NATS starts a nats-server with extra arguments (such as "-js", "-sd",
// dir for JetStream with a store kept across restarts), killed when the
// test ends.
func NATS(t testing.TB, extra ...string) *Server {
	t.Helper()
	s := newServer(t, "nats")
	s.args = append([]string{"-a", "127.0.0.1", "-p", s.port}, extra...)
	s.Start()
	return s
}

func newServer(t testing.TB, scheme string) *Server {
	t.Helper()
	name := scheme + "-server"
	bin, err := exec.LookPath(name)
	if err != nil {
		bin = "/usr/sbin/" + name // Debian's nats-server
		if _, serr := os.Stat(bin); serr != nil {
			msg := name + " is not in PATH nor /usr/sbin: this test starts its own (apt-get install " + name + ")"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	_ = ln.Close()
	s := &Server{t: t, scheme: scheme, bin: bin, port: port}
	t.Cleanup(s.Kill)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + s.port }

// URL is the server's redis:// or nats:// URL.
func (s *Server) URL() string { return s.scheme + "://" + s.Addr() }

// Start runs the server (again, on the same port) and waits, 10 seconds
// at most, until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	s.cmd = exec.Command(s.bin, s.args...)
	err := s.cmd.Start()
	s.mu.Unlock()
	if err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s-server not accepting connections on %s after 10 s: %v", s.scheme, s.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill kills the server (SIGKILL: no goodbye to its clients) and waits for
// it to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}
