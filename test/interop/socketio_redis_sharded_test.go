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

// The mixed cluster of socketio_redis_test.go on Redis sharded pub/sub:
// a Node socket.io 4.8 server with createShardedAdapter of
// @socket.io/redis-adapter 8.x (socketio-redis-sharded.mjs) and two
// Duplex conformance servers with REDIS_SHARDED=1, in each subscription
// mode; official socket.io-clients on all three.
func TestSocketIORedisShardedCluster(t *testing.T) {
	node := requireSocketIOClient(t)
	if _, err := os.Stat("node_modules/@socket.io/redis-adapter/package.json"); err != nil {
		msg := "node_modules/@socket.io/redis-adapter is missing: run npm ci in test/interop"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	requireRedis(t)
	bin := buildConformance(t)
	for _, mode := range []string{"dynamic", "static", "dynamic-private"} {
		t.Run(mode, func(t *testing.T) {
			key := fmt.Sprintf("duplex-interop-sharded-%s-%d", mode, time.Now().UnixNano())
			var urls []string
			var servers []*conformanceServer
			for i := 1; i <= 2; i++ {
				s := runConformance(t, bin, "REDIS_URL="+redisURL, "REDIS_KEY="+key, "REDIS_SHARDED=1",
					"REDIS_SUBSCRIPTION_MODE="+mode, fmt.Sprintf("SERVER_NAME=duplex-%d", i))
				servers = append(servers, s)
				urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", s.app))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "socketio-redis-sharded.mjs", redisURL, key, mode, urls[0], urls[1])
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
				t.Errorf("socketio-redis-sharded.mjs: %v\n%s", err, stderr.String())
			}
			if ran < 9 {
				t.Errorf("%d scenarios reported, want 9", ran)
			}
			if t.Failed() {
				for i, s := range servers {
					t.Logf("duplex-%d log:\n%s", i+1, s.stderr)
				}
			}
		})
	}
}
