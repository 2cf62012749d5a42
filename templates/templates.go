// Package templates embeds the hosted pages and mail templates. A theme
// folder named in realm.yaml (branding.themeDir) overrides them by file name.
package templates

import "embed"

// FS holds the built-in templates.
//
//go:embed *.html *.json
var FS embed.FS
