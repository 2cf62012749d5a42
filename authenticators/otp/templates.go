package otp

import (
	"embed"
	"io/fs"

	"latchkey/flows"
)

//go:embed templates
var templateFiles embed.FS

// Templates are the code page and CONFIGURE_TOTP's set-up page,
// overridable by file name from the realm's theme folder.
func (Factory) Templates() fs.FS { return flows.TemplateDir(templateFiles) }
