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

// TestSocketIORedisCluster runs socketio-redis.mjs against a Node server
// and two Duplex conformance servers on one Redis, with each Redis
// adapter: the classic pub/sub one, the sharded one in its three
// subscription modes, and the Streams one with connection state recovery
// (clients that reconnect to another server than the one they lost, Node
// and Duplex both ways).
func TestSocketIORedisCluster(t *testing.T) {
	node := requireSocketIOClient(t)
	for _, pkg := range []string{"@socket.io/redis-adapter", "@socket.io/redis-streams-adapter"} {
		if _, err := os.Stat("node_modules/" + pkg + "/package.json"); err != nil {
			msg := "node_modules/" + pkg + " is missing: run npm ci in test/interop"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	requireRedis(t)
	bin := buildConformance(t)
	for _, v := range []struct {
		variant string
		env     []string // the conformance servers' settings
		want    int      // scenarios
	}{
		{"classic", nil, 10},
		{"sharded-dynamic", []string{"REDIS_SHARDED=1", "REDIS_SUBSCRIPTION_MODE=dynamic"}, 9},
		{"sharded-static", []string{"REDIS_SHARDED=1", "REDIS_SUBSCRIPTION_MODE=static"}, 9},
		{"sharded-dynamic-private", []string{"REDIS_SHARDED=1", "REDIS_SUBSCRIPTION_MODE=dynamic-private"}, 9},
		{"streams", []string{"REDIS_STREAMS=1"}, 10},
	} {
		t.Run(v.variant, func(t *testing.T) {
			key := fmt.Sprintf("duplex-interop-%s-%d", v.variant, time.Now().UnixNano())
			t.Cleanup(func() {
				// A stream and sessions stay in Redis (they would expire).
				_ = exec.Command("sh", "-c", `redis-cli -u "$0" --scan --pattern "$1*" | xargs -r redis-cli -u "$0" DEL`, redisURL, key).Run()
			})
			var urls []string
			var servers []*conformanceServer
			for i := 1; i <= 2; i++ {
				env := append([]string{"REDIS_URL=" + redisURL, "REDIS_KEY=" + key, fmt.Sprintf("SERVER_NAME=duplex-%d", i)}, v.env...)
				s := runConformance(t, bin, env...)
				servers = append(servers, s)
				urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", s.app))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "socketio-redis.mjs", v.variant, redisURL, key, urls[0], urls[1])
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
				t.Errorf("socketio-redis.mjs %s: %v\n%s", v.variant, err, stderr.String())
			}
			if ran < v.want {
				t.Errorf("%d scenarios reported, want %d", ran, v.want)
			}
			if t.Failed() {
				for i, s := range servers {
					t.Logf("duplex-%d log:\n%s", i+1, s.stderr)
				}
			}
		})
	}
}
