package respond

import "github.com/warden-sec/warden/internal/detect"

// Storage is the encrypted view the services work on (core.Core), and
// Auditor makes the records of the changes the server makes on its own:
// the same as detection's.
type (
	Storage = detect.Storage
	Auditor = detect.Auditor
)
