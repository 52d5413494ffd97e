package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The mixed cluster of socketio_redis_test.go on the Redis Streams
// adapter, with connection state recovery: a Node socket.io 4.8 server
// with @socket.io/redis-streams-adapter 0.3 (socketio-redis-streams.mjs)
// and two Duplex conformance servers with REDIS_STREAMS=1; official
// socket.io-clients on all three, and clients that reconnect to another
// server than the one they lost, Node and Duplex both ways.
func TestSocketIORedisStreamsCluster(t *testing.T) {
	node := requireSocketIOClient(t)
	if _, err := os.Stat("node_modules/@socket.io/redis-streams-adapter/package.json"); err != nil {
		msg := "node_modules/@socket.io/redis-streams-adapter is missing: run npm ci in test/interop"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	requireRedis(t)
	bin := buildConformance(t)
	key := fmt.Sprintf("duplex-interop-streams-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		// The stream and the sessions (which would expire anyway).
		_ = exec.Command("sh", "-c", `redis-cli -u "$0" --scan --pattern "$1*" | xargs -r redis-cli -u "$0" DEL`, redisURL, key).Run()
	})
	var urls []string
	var servers []*conformanceServer
	for i := 1; i <= 2; i++ {
		s := runConformance(t, bin, "REDIS_URL="+redisURL, "REDIS_KEY="+key, "REDIS_STREAMS=1", fmt.Sprintf("SERVER_NAME=duplex-%d", i))
		servers = append(servers, s)
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", s.app))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "socketio-redis-streams.mjs", redisURL, key, urls[0], urls[1])
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
		t.Errorf("socketio-redis-streams.mjs: %v\n%s", err, stderr.String())
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
