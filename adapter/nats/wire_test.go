package nats

import (
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestCountElements(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int
	}{
		{`[]`, 0},
		{` [ ] `, 0},
		{`[""]`, 1},
		{`["AA==", "AQ=="]`, 2},
		{`["a,b"]`, 1},
		{`["\",", ","]`, 2},
		{`["\\", ","]`, 2},
		{`[null,null,null]`, 3},
		{`[[1,2],{"a":1,"b":[3,4]}]`, 2},
		{"[\n\"\"\t,\r\"\"\n]", 2},
		{`[` + strings.Repeat(`"",`, 5000) + `""]`, 3}, // stops past limit 2
	} {
		n, err := countElements([]byte(tc.in), 2)
		if err != nil || n != tc.want {
			t.Errorf("countElements(%.40q, 2) = %d, %v; want %d", tc.in, n, err, tc.want)
		}
	}
	for _, in := range []string{`""`, `{}`, `1`, `[`} {
		if _, err := countElements([]byte(in), 2); err == nil {
			t.Errorf("countElements(%q) accepted a value that is not an array", in)
		}
	}
}

func TestAttachmentsDecode(t *testing.T) {
	t.Parallel()
	var e envelope
	if err := json.Unmarshal([]byte(`{"uid":"x","att":["AAE=",""],"type":10}`), &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Att) != 2 || string(e.Att[0]) != "\x00\x01" || len(e.Att[1]) != 0 || e.Type != typeBroadcast {
		t.Fatalf("decoded %+v", e)
	}
	if err := json.Unmarshal([]byte(`{"att":null}`), &e); err != nil || len(e.Att) != 2 {
		t.Fatalf("null: %v, %d attachments kept", err, len(e.Att))
	}
	max := `{"att":[` + strings.Repeat(`"",`, maxAttachments-1) + `""]}`
	if err := json.Unmarshal([]byte(max), &envelope{}); err != nil {
		t.Errorf("%d attachments: %v", maxAttachments, err)
	}
	over := `{"att":[` + strings.Repeat(`"",`, maxAttachments) + `""]}`
	if err := json.Unmarshal([]byte(over), &envelope{}); err == nil {
		t.Errorf("%d attachments accepted", maxAttachments+1)
	}
	for _, bad := range []string{`{"att":"x"}`, `{"att":{}}`, `{"att":[1]}`} {
		if err := json.Unmarshal([]byte(bad), &envelope{}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestAttachmentFloodAllocates: a rogue message of 1 MiB announcing
// 350,000 empty attachments is refused for its count before anything is
// allocated for them. Decoded first and counted after, it cost 40 MiB
// (a growing slice of 24-byte headers) per server, per message.
func TestAttachmentFloodAllocates(t *testing.T) {
	// Not parallel: it measures the bytes the process allocates.
	msg := []byte(`{"uid":"x","type":10,"data":["ev"],"att":[` + strings.Repeat(`"",`, 350_000) + `""]}`)
	var err error
	allocated := minAllocated(5, func() {
		var e envelope
		err = json.Unmarshal(msg, &e)
		if err == nil && len(e.Att) > maxAttachments {
			err = errors.New("too many attachments, counted after decoding")
		}
	})
	if err == nil {
		t.Error("350,001 attachments accepted")
	}
	t.Logf("%d bytes allocated decoding a %d KiB attachment flood: %v", allocated, len(msg)>>10, err)
	if allocated > 64<<10 {
		t.Errorf("%d KiB allocated decoding a %d KiB attachment flood, want at most 64 KiB", allocated>>10, len(msg)>>10)
	}
}

// minAllocated returns the fewest bytes the process allocated during one
// of runs calls of f: the other goroutines of the test binary add to some
// runs, not to all.
func minAllocated(runs int, f func()) uint64 {
	least := ^uint64(0)
	var before, after runtime.MemStats
	for range runs {
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}
