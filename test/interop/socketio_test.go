package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The official socket.io-client (npm socket.io-client 4.8) against the
// interop app of the conformance server (CONTRACT.md §4.2), through its
// real entry point: the test builds internal/cmd/conformance, starts it on
// free ports, and runs sio-scenarios.mjs once per transport setting.

// conformanceServer is a running internal/cmd/conformance.
type conformanceServer struct {
	proto, app int
	cmd        *exec.Cmd
	stderr     *lockedBuffer
}

// startConformance builds and starts the conformance server; it is
// stopped with SIGTERM when the test ends, and must exit 0.
func startConformance(t *testing.T) *conformanceServer {
	t.Helper()
	bctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not in PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "conformance")
	if out, err := exec.CommandContext(bctx, goBin, "build", "-o", bin, "github.com/duplexrt/duplex/internal/cmd/conformance").CombinedOutput(); err != nil {
		t.Fatalf("go build ./internal/cmd/conformance: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PROTO_PORT=0", "APP_PORT=0")
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
		if err != nil {
			ready <- fmt.Errorf("no READY line: %v", err)
			return
		}
		var pid int
		if _, err := fmt.Sscanf(line, "READY proto=%d app=%d pid=%d", &s.proto, &s.app, &pid); err != nil {
			ready <- fmt.Errorf("READY line %q: %v", line, err)
			return
		}
		ready <- nil
	}()
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("conformance server: %v\n%s", err, s.stderr)
		}
	case <-time.After(opTimeout):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("conformance server not ready within %v\n%s", opTimeout, s.stderr)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("conformance server exited with %v after SIGTERM\n%s", err, s.stderr)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("conformance server did not exit within 10 s of SIGTERM\n%s", s.stderr)
		}
	})
	return s
}

func requireSocketIOClient(t *testing.T) string {
	t.Helper()
	node := requireNode(t)
	if _, err := os.Stat("node_modules/socket.io-client/package.json"); err != nil {
		msg := "node_modules/socket.io-client is missing: run npm ci in test/interop"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}

// TestSocketIOClientNode runs every scenario of sio-scenarios.mjs with
// the client on long-polling then WebSocket (the default), WebSocket only,
// and long-polling only.
func TestSocketIOClientNode(t *testing.T) {
	node := requireSocketIOClient(t)
	srv := startConformance(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", srv.app)
	for _, mode := range []string{"upgrade", "websocket", "polling"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, node, "sio-scenarios.mjs", base, mode).Output()
			var ran int
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
			if err != nil && !t.Failed() {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Errorf("sio-scenarios.mjs: %v\n%s", err, stderr)
			}
			if ran < 13 {
				t.Errorf("%d scenarios reported, want 13", ran)
			}
			if t.Failed() {
				t.Logf("server log:\n%s", srv.stderr)
			}
		})
	}
}
