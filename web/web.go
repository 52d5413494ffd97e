// Package web holds the static pages that duplex serve embeds: the chat
// page at "/" (index.html), a plain HTML/CSS/JavaScript client of the
// /ws/chat protocol described in cmd/duplex, with no third-party script.
package web

import "embed"

// FS holds index.html, the chat page.
//
//go:embed index.html
var FS embed.FS
