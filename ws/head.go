package ws

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
)

// requestHead is an HTTP/1.1 GET request head read by a Listener: what
// the fast path of a handshake needs, and what an http.Request made from
// it carries.
type requestHead struct {
	target string      // the request-target, in origin form
	path   string      // target before any '?'
	host   string      // the one Host header
	header http.Header // every header, canonical keys
	len    int         // bytes of the head, its blank line included
}

// headStatus says what parseHead found.
type headStatus int

const (
	headMore  headStatus = iota // a beginning that may still become a fast-path head: wait for more input
	headOK                      // a complete head for a path of routes
	headOther                   // anything else: net/http's to read and answer
)

// Limits of a head the fast path takes; a longer one goes to net/http,
// whose own limits apply.
const (
	maxHeadBytes = 4096
	maxHeadLines = 64
)

// parseHead reads the HTTP/1.1 request head at the start of b (more input
// may follow it), for a Listener whose routes are paths. It takes only
// the plainest form of a WebSocket handshake: "GET target HTTP/1.1" for a
// path in routes, a Host, no body, no obsolete line folding, nothing
// net/http would read differently (FuzzParseHead checks that against
// http.ReadRequest). Everything else is headOther, so that net/http reads
// it and answers as always; a head that is still arriving is headMore.
//
// The head is copied into one string, and every key and value is a part of
// it, or a constant for a key that was not canonical.
func parseHead(b []byte, routes func(path []byte) bool) (requestHead, headStatus) {
	var h requestHead
	eol := bytes.Index(b, crlf)
	if eol < 0 {
		// The request line so far must still be able to become ours.
		if len(b) >= maxHeadBytes || !hasPrefixOrIsPrefix(b, "GET /") {
			return h, headOther
		}
		return h, headMore
	}
	line, ok := bytes.CutPrefix(b[:eol], []byte("GET "))
	if !ok {
		return h, headOther
	}
	target, proto, ok := bytes.Cut(line, []byte(" "))
	if !ok || string(proto) != "HTTP/1.1" || len(target) == 0 || target[0] != '/' || !validTarget(target) {
		return h, headOther
	}
	path := target
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		path = target[:i]
	}
	if !routes(path) {
		return h, headOther
	}
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		if len(b) >= maxHeadBytes {
			return h, headOther
		}
		return h, headMore
	}
	if end+4 > maxHeadBytes {
		return h, headOther
	}
	s := string(b[:end+2]) // the request line and the header lines, each ending in CRLF
	h.len = end + 4
	h.target = s[4 : 4+len(target)]
	h.path = h.target[:len(path)]
	lines := strings.Count(s, "\r\n") - 1
	if lines > maxHeadLines {
		return h, headOther
	}
	h.header = make(http.Header, lines)
	values := make([]string, lines) // one array for every line's value, as textproto does
	rest := s[eol+2:]
	for rest != "" {
		i := strings.Index(rest, "\r\n")
		line := rest[:i]
		rest = rest[i+2:]
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return h, headOther
		}
		key, ok := canonicalName(name)
		if !ok {
			return h, headOther // an empty or bad name, or a folded line (it begins with a space)
		}
		value = strings.Trim(value, " \t")
		if !validHeaderValue(value) {
			return h, headOther
		}
		switch key {
		case "Host":
			if h.host != "" || value == "" || !validHost(value) {
				return h, headOther
			}
			h.host = value
			continue // net/http moves Host out of the header map
		case "Content-Length", "Transfer-Encoding":
			return h, headOther // a handshake has no body
		}
		if vv := h.header[key]; vv != nil {
			h.header[key] = append(vv, value) // a repeated header: an array of its own
			continue
		}
		values[0] = value
		h.header[key] = values[:1:1]
		values = values[1:]
	}
	if h.host == "" {
		return h, headOther // HTTP/1.1 requires one; net/http answers 400
	}
	return h, headOK
}

// request returns the http.Request net/http would make of h, without
// RemoteAddr and with no context of its own (the caller's to set).
func (h *requestHead) request() (*http.Request, error) {
	u, err := url.ParseRequestURI(h.target)
	if err != nil {
		return nil, err
	}
	return &http.Request{
		Method:     http.MethodGet,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h.header,
		Body:       http.NoBody,
		Host:       h.host,
		RequestURI: h.target,
	}, nil
}

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
)

// hasPrefixOrIsPrefix reports whether b begins with p, or is the start of
// p.
func hasPrefixOrIsPrefix(b []byte, p string) bool {
	if len(b) < len(p) {
		return strings.HasPrefix(p, string(b))
	}
	return string(b[:len(p)]) == p
}

// validTarget accepts the bytes net/http takes in an origin-form target
// without reading them differently: visible ASCII without '#'.
func validTarget(t []byte) bool {
	for _, c := range t {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// canonicalName returns the canonical form of a header name
// (http.CanonicalHeaderKey), and false if it is not a token. A name already
// canonical is returned as it is, without an allocation.
func canonicalName(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	canonical, upper := true, true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !tokenChars[c] {
			return "", false
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
		}
		upper = c == '-'
	}
	if canonical {
		return name, true
	}
	return http.CanonicalHeaderKey(name), true
}

// tokenChars are the characters of an RFC 9110 token.
var tokenChars = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = !strings.ContainsRune(`()<>@,;:\"/[]?={}`, c)
	}
	return t
}()

// validHeaderValue rejects control characters other than tab, as net/http
// does.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts a conservative subset of what net/http takes in Host:
// letters, digits and the punctuation of names, addresses and ports.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._:[]", c) >= 0:
		default:
			return false
		}
	}
	return true
}
