package ws

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// extension is one element of a Sec-WebSocket-Extensions header
// (RFC 6455 §9.1): a name and its parameters in order.
type extension struct {
	name   string
	params []extensionParam
}

type extensionParam struct {
	name     string
	value    string
	hasValue bool
}

// parseExtensions parses every Sec-WebSocket-Extensions line of h. A
// malformed element is an error: the grammar is strict so that a client
// can fail a handshake whose answer it cannot read.
func parseExtensions(h http.Header) ([]extension, error) {
	var exts []extension
	for _, line := range h[hdrExtensions] {
		elems, err := splitOutsideQuotes(line, ',')
		if err != nil {
			return nil, err
		}
		for _, elem := range elems {
			elem = strings.TrimSpace(elem)
			if elem == "" {
				continue // empty list elements are allowed (RFC 9110 §5.6.1)
			}
			parts, err := splitOutsideQuotes(elem, ';')
			if err != nil {
				return nil, err
			}
			name := strings.TrimSpace(parts[0])
			if !isToken(name) {
				return nil, fmt.Errorf("extension name %q is not a token", name)
			}
			ext := extension{name: strings.ToLower(name)}
			for _, p := range parts[1:] {
				p = strings.TrimSpace(p)
				k, v, hasValue := strings.Cut(p, "=")
				k, v = strings.TrimSpace(k), strings.TrimSpace(v)
				if !isToken(k) {
					return nil, fmt.Errorf("extension %s: parameter name %q is not a token", name, k)
				}
				if hasValue {
					if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
						v = strings.ReplaceAll(v[1:len(v)-1], `\`, "")
					}
					if !isToken(v) {
						return nil, fmt.Errorf("extension %s: parameter %s has value %q, not a token", name, k, v)
					}
				}
				ext.params = append(ext.params, extensionParam{name: strings.ToLower(k), value: v, hasValue: hasValue})
			}
			exts = append(exts, ext)
		}
	}
	return exts, nil
}

// splitOutsideQuotes splits s at sep, except inside double quotes.
func splitOutsideQuotes(s string, sep byte) ([]string, error) {
	var parts []string
	quoted, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quoted string in %q", s)
	}
	return append(parts, s[start:]), nil
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// deflateParams are the negotiated parameters of permessage-deflate
// (RFC 7692 §7.1), from the point of view of the wire: server_* constrain
// what the server sends, client_* what the client sends.
type deflateParams struct {
	serverNoContextTakeover bool
	clientNoContextTakeover bool
	serverMaxWindowBits     int // 8–15; 0 when absent
	clientMaxWindowBits     int // 8–15; 0 when absent; -1 for "present without a value" in an offer
}

// parseDeflate reads permessage-deflate's parameters. It fails on an
// unknown parameter, a repeated one, or a value out of range, which makes a
// server decline the offer and a client fail the handshake (RFC 7692 §5,
// §7.1).
func parseDeflate(ext extension, isOffer bool) (deflateParams, error) {
	var p deflateParams
	seen := map[string]bool{}
	for _, prm := range ext.params {
		if seen[prm.name] {
			return p, fmt.Errorf("permessage-deflate: parameter %s given twice", prm.name)
		}
		seen[prm.name] = true
		switch prm.name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if prm.hasValue {
				return p, fmt.Errorf("permessage-deflate: %s takes no value", prm.name)
			}
			if prm.name == "server_no_context_takeover" {
				p.serverNoContextTakeover = true
			} else {
				p.clientNoContextTakeover = true
			}
		case "server_max_window_bits", "client_max_window_bits":
			bits := -1
			if prm.hasValue {
				n, err := strconv.Atoi(prm.value)
				if err != nil || n < 8 || n > 15 || prm.value[0] == '0' || prm.value[0] == '+' {
					return p, fmt.Errorf("permessage-deflate: %s=%s: the value must be 8 to 15", prm.name, prm.value)
				}
				bits = n
			} else if prm.name == "server_max_window_bits" || !isOffer {
				// Only an offer's client_max_window_bits may go without a
				// value (RFC 7692 §7.1.2).
				return p, fmt.Errorf("permessage-deflate: %s needs a value", prm.name)
			}
			if prm.name == "server_max_window_bits" {
				p.serverMaxWindowBits = bits
			} else {
				p.clientMaxWindowBits = bits
			}
		default:
			return p, fmt.Errorf("permessage-deflate: unknown parameter %s", prm.name)
		}
	}
	return p, nil
}

// String formats the parameters as an extension element.
func (p deflateParams) String() string {
	var b strings.Builder
	b.WriteString("permessage-deflate")
	if p.serverNoContextTakeover {
		b.WriteString("; server_no_context_takeover")
	}
	if p.clientNoContextTakeover {
		b.WriteString("; client_no_context_takeover")
	}
	if p.serverMaxWindowBits > 0 {
		fmt.Fprintf(&b, "; server_max_window_bits=%d", p.serverMaxWindowBits)
	}
	switch {
	case p.clientMaxWindowBits > 0:
		fmt.Fprintf(&b, "; client_max_window_bits=%d", p.clientMaxWindowBits)
	case p.clientMaxWindowBits < 0:
		b.WriteString("; client_max_window_bits")
	}
	return b.String()
}

// Compression configures permessage-deflate (RFC 7692). A nil *Compression
// in the options means compression is neither offered nor accepted. The
// zero value offers (client) or accepts (server) compression with the
// defaults below.
//
// Memory: a connection that takes over context keeps the last 2^WindowBits
// bytes it sent and received (32 KiB each at the default 15 bits); one
// without context takeover keeps nothing between messages. Compressors and
// decompressors are borrowed from pools for the length of one message.
type Compression struct {
	// Level is the deflate level from 1 (fastest) to 9 (smallest). Zero
	// means 1: on messages of a few KiB the higher levels cost much more
	// time for little gain. Windows below 15 bits use a dedicated encoder
	// that ignores Level.
	Level int

	// Threshold is the size in bytes below which messages are sent
	// uncompressed. Zero means 128; negative means compress everything.
	Threshold int

	// NoContextTakeover makes this side compress every message on its own
	// (server_no_context_takeover for a server, client_no_context_takeover
	// for a client), so that nothing is kept between messages and a
	// message compressed once can be sent to many connections.
	NoContextTakeover bool

	// RequestPeerNoContextTakeover asks the peer to compress every message
	// on its own, so that this side keeps no history to decompress.
	RequestPeerNoContextTakeover bool

	// WindowBits bounds this side's compression window (the peer then
	// needs 2^WindowBits bytes of history): 8 to 15; zero means 15. A
	// smaller window asked for by the peer always wins.
	WindowBits int

	// PeerWindowBits asks the peer to bound its window, which bounds the
	// history this side keeps to decompress: 8 to 15; zero means no
	// request (15).
	PeerWindowBits int
}

func (c *Compression) check() error {
	if c == nil {
		return nil
	}
	if c.Level < 0 || c.Level > 9 {
		return fmt.Errorf("ws: compression level %d: use 1 to 9, or 0 for the default", c.Level)
	}
	for _, b := range []int{c.WindowBits, c.PeerWindowBits} {
		if b != 0 && (b < 8 || b > 15) {
			return fmt.Errorf("ws: compression window of %d bits: use 8 to 15, or 0 for the default", b)
		}
	}
	return nil
}

// acceptDeflate chooses the response to a client's offers: the first offer
// that parses and that our options can honour. It returns ok false when
// compression is off or no offer is acceptable; the connection then runs
// uncompressed.
func acceptDeflate(h http.Header, opts *Compression) (deflateParams, bool) {
	if opts == nil {
		return deflateParams{}, false
	}
	exts, err := parseExtensions(h)
	if err != nil {
		return deflateParams{}, false // a malformed header declines every offer
	}
	for _, ext := range exts {
		if ext.name != "permessage-deflate" {
			continue
		}
		offer, err := parseDeflate(ext, true)
		if err != nil {
			continue // decline this offer, try the next (RFC 7692 §5)
		}
		resp := deflateParams{
			serverNoContextTakeover: offer.serverNoContextTakeover || opts.NoContextTakeover,
			clientNoContextTakeover: offer.clientNoContextTakeover || opts.RequestPeerNoContextTakeover,
		}
		// Our window: the smaller of what the client allows and what we
		// want; said in the response whenever it is below 15 or asked for.
		bits := 15
		if opts.WindowBits != 0 {
			bits = opts.WindowBits
		}
		if offer.serverMaxWindowBits > 0 {
			bits = min(bits, offer.serverMaxWindowBits)
		}
		if bits < 15 || offer.serverMaxWindowBits > 0 {
			resp.serverMaxWindowBits = bits
		}
		// The client's window: we may bound it only if it said it can be
		// bound (client_max_window_bits in the offer).
		switch {
		case offer.clientMaxWindowBits == 0:
		case opts.PeerWindowBits != 0 && (offer.clientMaxWindowBits < 0 || opts.PeerWindowBits < offer.clientMaxWindowBits):
			resp.clientMaxWindowBits = opts.PeerWindowBits
		case offer.clientMaxWindowBits > 0:
			resp.clientMaxWindowBits = offer.clientMaxWindowBits
		}
		return resp, true
	}
	return deflateParams{}, false
}

// offerDeflate builds a client's offer from its options.
func offerDeflate(opts *Compression) deflateParams {
	p := deflateParams{
		clientNoContextTakeover: opts.NoContextTakeover,
		serverNoContextTakeover: opts.RequestPeerNoContextTakeover,
		clientMaxWindowBits:     -1, // we can bound our window: say so
	}
	if opts.WindowBits != 0 {
		p.clientMaxWindowBits = opts.WindowBits
	}
	if opts.PeerWindowBits != 0 {
		p.serverMaxWindowBits = opts.PeerWindowBits
	}
	return p
}

// checkDeflateResponse validates the server's answer to our offer
// (RFC 7692 §5, §7.1): one permessage-deflate element at most, no
// parameter we cannot honour, windows no larger than we asked for.
func checkDeflateResponse(h http.Header, offer deflateParams) (deflateParams, bool, error) {
	exts, err := parseExtensions(h)
	if err != nil {
		return deflateParams{}, false, fmt.Errorf("Sec-WebSocket-Extensions: %v", err)
	}
	if len(exts) == 0 {
		return deflateParams{}, false, nil
	}
	if len(exts) > 1 {
		return deflateParams{}, false, fmt.Errorf("server chose %d extensions; only permessage-deflate was offered", len(exts))
	}
	if exts[0].name != "permessage-deflate" {
		return deflateParams{}, false, fmt.Errorf("server chose extension %q, which was not offered", exts[0].name)
	}
	p, err := parseDeflate(exts[0], false)
	if err != nil {
		return deflateParams{}, false, err
	}
	if offer.serverNoContextTakeover && !p.serverNoContextTakeover {
		return p, false, fmt.Errorf("permessage-deflate: server dropped server_no_context_takeover, which was asked for")
	}
	if offer.serverMaxWindowBits > 0 && (p.serverMaxWindowBits == 0 || p.serverMaxWindowBits > offer.serverMaxWindowBits) {
		return p, false, fmt.Errorf("permessage-deflate: server_max_window_bits=%d was asked for, the server answered %d", offer.serverMaxWindowBits, p.serverMaxWindowBits)
	}
	if p.clientMaxWindowBits > 0 && offer.clientMaxWindowBits > 0 && p.clientMaxWindowBits > offer.clientMaxWindowBits {
		return p, false, fmt.Errorf("permessage-deflate: client_max_window_bits=%d is above the %d offered", p.clientMaxWindowBits, offer.clientMaxWindowBits)
	}
	if offer.clientNoContextTakeover {
		p.clientNoContextTakeover = true // ours to keep, whatever the answer
	}
	if p.clientMaxWindowBits == 0 && offer.clientMaxWindowBits > 0 {
		p.clientMaxWindowBits = offer.clientMaxWindowBits
	}
	return p, true, nil
}
