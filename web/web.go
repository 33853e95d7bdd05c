// Package web embeds the browser client (cometbox.js, its ES module entry
// cometbox.mjs and its TypeScript declarations cometbox.d.ts) and the demo
// page, so that a node serves them from its own binary.
package web

import "embed"

// Files holds cometbox.js, cometbox.mjs, cometbox.d.ts and demo/.
//
//go:embed cometbox.js cometbox.mjs cometbox.d.ts demo
var Files embed.FS
