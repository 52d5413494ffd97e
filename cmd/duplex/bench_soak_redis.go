package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// soakRedis is the soak's private redis-server: on 127.0.0.1, on a port
// of its own, without persistence, in a temporary directory; killed and
// started again on the same port to make an outage.
type soakRedis struct {
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

// errNoRedisServer is returned by startSoakRedis when redis-server is
// not in PATH.
var errNoRedisServer = errors.New("redis-server is not in PATH")

// startSoakRedis starts a redis-server on a free port.
func startSoakRedis() (*soakRedis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errNoRedisServer
	}
	dir, err := os.MkdirTemp("", "duplex-soak-redis-")
	if err != nil {
		return nil, err
	}
	r := &soakRedis{bin: bin, dir: dir}
	// The port is chosen below the ephemeral range: while Redis is down,
	// the clients' and go-redis's own reconnections take ephemeral ports,
	// and one of them could take Redis's port and keep it from starting
	// again.
	lo, _ := ephemeralPorts()
	for range 20 {
		r.port = 10000 + rand.IntN(max(lo-10000, 1000))
		if !portFree(r.port) {
			continue
		}
		if err = r.start(); err == nil {
			return r, nil
		}
	}
	_ = os.RemoveAll(dir)
	return nil, fmt.Errorf("starting redis-server: %w", err)
}

// url is the Redis URL of the server.
func (r *soakRedis) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) }

// start starts the process, and waits until it accepts connections.
func (r *soakRedis) start() error {
	logPath := filepath.Join(r.dir, "redis.log")
	cmd := exec.Command(r.bin,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir,
		"--logfile", logPath, "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		return err
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(r.port), 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) || processExited(cmd) {
			r.kill()
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("redis-server on port %d did not start: %v; its log ends: %s", r.port, err, lastLines(string(b), 3))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill kills the process at once (SIGKILL: a crash, no goodbye to the
// clients) and waits for it.
func (r *soakRedis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// stop kills the process and removes its directory.
func (r *soakRedis) stop() {
	r.kill()
	_ = os.RemoveAll(r.dir)
}

// processExited reports whether cmd's process has exited, without
// reaping it (Wait does that).
func processExited(cmd *exec.Cmd) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return false // no /proc: rely on the deadline
	}
	// The state follows the command name, in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// portFree reports whether nothing listens on 127.0.0.1:port.
func portFree(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// ephemeralPorts returns the range of ports the kernel picks for
// outgoing connections (Linux), or Linux's default.
func ephemeralPorts() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		a, err1 := strconv.Atoi(f[0])
		b, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil && a > 10000 {
			return a, b
		}
	}
	return lo, hi
}

// lastLines returns the last n lines of s, on one line.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
