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

// This file drives the chat page of duplex serve in headless Chromium
// (chat-browser.mjs): two pages exchange lines, the server is restarted
// (SIGTERM, then started again on the same port), both pages reconnect by
// themselves and chat again; then a phone-sized page joins, sends a line and
// must fit the screen. It runs on one server, and on two servers of one
// cluster through Redis, and through NATS (a page on each).
//
// With DUPLEX_SCREENSHOT=path set, the screenshot of the page is written
// there (docs/chat.png in the repository is made so); otherwise to the
// test's temp dir.

// chatServe is a duplex serve on a fixed address, so that it can be
// restarted where the pages expect it.
type chatServe struct {
	t    *testing.T
	bin  string
	addr string
	args []string
	cmd  *exec.Cmd
	log  *serveLog
	done chan struct{}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (s *chatServe) start() {
	s.t.Helper()
	args := append([]string{"serve", "--addr", s.addr, "--log-format", "json", "--drain", "3s"}, s.args...)
	s.cmd = exec.Command(s.bin, args...)
	s.log = &serveLog{ready: make(chan string, 1)}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting duplex serve: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	select {
	case <-s.log.ready:
	case <-s.done:
		s.t.Fatalf("duplex serve %s exited before serving:\n%s", s.addr, s.log.String())
	case <-time.After(10 * time.Second):
		s.t.Fatalf("duplex serve %s: not serving after 10 s:\n%s", s.addr, s.log.String())
	}
}

// stop sends SIGTERM and wants exit status 0 within the drain and a
// margin.
func (s *chatServe) stop() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if !s.cmd.ProcessState.Success() {
			s.t.Errorf("duplex serve %s exited %v after SIGTERM, want 0:\n%s", s.addr, s.cmd.ProcessState, s.log.String())
		}
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("duplex serve %s still running 10 s after SIGTERM", s.addr)
	}
	s.cmd = nil
}

func TestChatBrowser(t *testing.T) {
	node, chromium := requireBrowser(t)
	bctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	bin := buildDuplex(bctx, t)
	cancel()

	for _, tc := range []struct {
		name    string
		cluster bool
		broker  string // the flag: --redis or --nats
		addr    string
	}{
		{name: "one server"},
		{name: "two servers on redis", cluster: true, broker: "--redis", addr: "127.0.0.1:6379"},
		{name: "two servers on nats", cluster: true, broker: "--nats", addr: "127.0.0.1:4222"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra []string
			if tc.cluster {
				if c, err := net.DialTimeout("tcp", tc.addr, time.Second); err != nil {
					msg := fmt.Sprintf("%s: nothing listens at %s (%v)", tc.broker, tc.addr, err)
					if os.Getenv("CI") == "true" {
						t.Fatal(msg)
					}
					t.Skip(msg)
				} else {
					_ = c.Close()
				}
				scheme := strings.TrimPrefix(tc.broker, "--")
				extra = []string{tc.broker, scheme + "://" + tc.addr}
			}
			a := &chatServe{t: t, bin: bin, addr: freeAddr(t), args: extra}
			servers := []*chatServe{a}
			b := a
			if tc.cluster {
				b = &chatServe{t: t, bin: bin, addr: freeAddr(t), args: extra}
				servers = append(servers, b)
			}
			for _, s := range servers {
				s.start()
				t.Cleanup(s.stop)
			}
			shot := os.Getenv("DUPLEX_SCREENSHOT")
			if shot == "" || tc.cluster {
				shot = filepath.Join(t.TempDir(), "chat.png")
			}
			cfg, _ := json.Marshal(map[string]any{
				"chromium": chromium, "chromiumArgs": chromiumArgs,
				"urlA": "http://" + a.addr + "/", "urlB": "http://" + b.addr + "/",
				// A room of its own: other tests may chat on the same Redis.
				"room":       fmt.Sprintf("t%d", time.Now().UnixNano()%1e9),
				"screenshot": shot,
				// DUPLEX_PHONE_SCREENSHOT=file.png keeps the phone's page.
				"phoneScreenshot": os.Getenv("DUPLEX_PHONE_SCREENSHOT"),
				"opTimeoutMs":     10_000, "totalTimeoutMs": 90_000,
			})
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "chat-browser.mjs", string(cfg))
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			stderr := &lockedBuffer{}
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var events []string
			done, phone := false, false
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var ev struct {
					Ev      string `json:"ev"`
					Message string `json:"message"`
					Phase   string `json:"phase"`
				}
				if json.Unmarshal(sc.Bytes(), &ev) != nil {
					continue
				}
				events = append(events, sc.Text())
				switch ev.Ev {
				case "restart":
					for _, s := range servers {
						s.stop()
					}
					for _, s := range servers {
						s.start()
					}
					_, _ = fmt.Fprintln(stdin, "restarted")
				case "fatal":
					t.Errorf("chat-browser.mjs: %s", ev.Message)
				case "phone":
					phone = true
				case "done":
					done = true
				}
			}
			err := cmd.Wait()
			if !done || err != nil {
				t.Fatalf("chat-browser.mjs: %v, done=%v; events:\n%v\nstderr:\n%s", err, done, events, stderr.String())
			}
			if !phone {
				t.Errorf("no phone check; events:\n%v", events)
			}
			if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
				t.Errorf("no screenshot at %s: %v", shot, err)
			}
		})
	}
}
