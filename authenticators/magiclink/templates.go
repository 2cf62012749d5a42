package magiclink

import (
	"embed"
	"io/fs"

	"latchkey/flows"
)

//go:embed templates
var templateFiles embed.FS

// Templates are the step's pages and mails (VERIFY_EMAIL's included), overridable by file name
// from the realm's theme folder.
func (Factory) Templates() fs.FS { return flows.TemplateDir(templateFiles) }
