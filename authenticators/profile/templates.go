package profile

import (
	"embed"
	"io/fs"

	"latchkey/flows"
)

//go:embed templates
var templateFiles embed.FS

// Templates are the step's pages, overridable by file name
// from the realm's theme folder.
func (Action) Templates() fs.FS { return flows.TemplateDir(templateFiles) }
