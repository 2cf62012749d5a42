// Package static embeds the hosted pages' CSS and images.
package static

import "embed"

// FS holds the built-in assets.
//
//go:embed *.css *.svg *.js
var FS embed.FS
