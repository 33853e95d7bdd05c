package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// asset is one embedded file served with an ETag.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// loadAssets reads the client files (cometbox.js, .mjs, .d.ts) at the
// root of fsys; missing ones are simply not served.
func loadAssets(fsys fs.FS) map[string]asset {
	out := map[string]asset{}
	if fsys == nil {
		return out
	}
	for name, ctype := range map[string]string{
		"cometbox.js":   "text/javascript; charset=utf-8",
		"cometbox.mjs":  "text/javascript; charset=utf-8",
		"cometbox.d.ts": "text/plain; charset=utf-8",
	} {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(body)
		out["/"+name] = asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	return out
}

// serveAsset serves a client file: revalidated with its ETag, readable by
// pages of any origin (it is public code; ES modules need CORS).
func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.URL.Path]
	if !ok {
		h.writeError(w, r, jsonFormat, errNotFound)
		return
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", a.etag)
	hdr.Set("Access-Control-Allow-Origin", "*")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", a.ctype)
	_, _ = w.Write(a.body)
}

// demoFiles serves web/demo/ under /demo/.
func demoFiles(fsys fs.FS) http.Handler {
	sub, err := fs.Sub(fsys, "demo")
	if err != nil {
		return http.NotFoundHandler()
	}
	files := http.StripPrefix("/demo", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		if path.Ext(r.URL.Path) == ".html" || strings.HasSuffix(r.URL.Path, "/") {
			w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
		}
		files.ServeHTTP(w, r)
	})
}
