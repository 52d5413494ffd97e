package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A mixed cluster on the Redis of the machine (127.0.0.1:6379): a Node
// socket.io 4.8 server with @socket.io/redis-adapter 8.x (started by
// socketio-redis.mjs) and two Duplex conformance servers with REDIS_URL,
// on one key of the test's own; official socket.io-clients on all three.
// Every scenario starts from each of the three servers in turn.

const redisURL = "redis://127.0.0.1:6379/0"

// requireRedis skips the test, or fails it when CI=true, if no Redis
// listens on 127.0.0.1:6379.
func requireRedis(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:6379", time.Second)
	if err != nil {
		msg := fmt.Sprintf("no Redis at 127.0.0.1:6379 (%v); start one with: redis-server --port 6379 --save '' --appendonly no", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_ = c.Close()
}

// buildConformance builds internal/cmd/conformance once for the test.
func buildConformance(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "conformance")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/duplexrt/duplex/internal/cmd/conformance").CombinedOutput(); err != nil {
		t.Fatalf("go build ./internal/cmd/conformance: %v\n%s", err, out)
	}
	return bin
}

// runConformance starts bin with the extra environment env, as
// startConformance does, and stops it with SIGTERM when the test ends.
func runConformance(t *testing.T, bin string, env ...string) *conformanceServer {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), "HOST=127.0.0.1", "PROTO_PORT=0", "APP_PORT=0"), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &conformanceServer{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil {
			var pid int
			_, err = fmt.Sscanf(line, "READY proto=%d app=%d pid=%d", &s.proto, &s.app, &pid)
		}
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-time.After(opTimeout):
		err = fmt.Errorf("not ready within %v", opTimeout)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("conformance server %v: %v\n%s", env, err, s.stderr)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("conformance server %v exited with %v after SIGTERM\n%s", env, err, s.stderr)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("conformance server %v did not exit within 10 s of SIGTERM\n%s", env, s.stderr)
		}
	})
	return s
}

func TestSocketIORedisCluster(t *testing.T) {
	node := requireSocketIOClient(t)
	if _, err := os.Stat("node_modules/@socket.io/redis-adapter/package.json"); err != nil {
		msg := "node_modules/@socket.io/redis-adapter is missing: run npm ci in test/interop"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	requireRedis(t)
	key := fmt.Sprintf("duplex-interop-%d", time.Now().UnixNano())
	bin := buildConformance(t)
	var urls []string
	var servers []*conformanceServer
	for i := 1; i <= 2; i++ {
		s := runConformance(t, bin, "REDIS_URL="+redisURL, "REDIS_KEY="+key, fmt.Sprintf("SERVER_NAME=duplex-%d", i))
		servers = append(servers, s)
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", s.app))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "socketio-redis.mjs", redisURL, key, urls[0], urls[1])
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	ran := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			Name  string `json:"name"`
			OK    bool   `json:"ok"`
			Error string `json:"error"`
			MS    int    `json:"ms"`
		}
		if json.Unmarshal([]byte(line), &r) != nil {
			t.Errorf("unexpected output: %q", line)
			continue
		}
		ran++
		if !r.OK {
			t.Errorf("%s: %s", r.Name, r.Error)
		} else {
			t.Logf("%s: ok in %d ms", r.Name, r.MS)
		}
	}
	if err != nil {
		t.Errorf("socketio-redis.mjs: %v\n%s", err, stderr.String())
	}
	if ran < 10 {
		t.Errorf("%d scenarios reported, want 10", ran)
	}
	if t.Failed() {
		for i, s := range servers {
			t.Logf("duplex-%d log:\n%s", i+1, s.stderr)
		}
	}
}
