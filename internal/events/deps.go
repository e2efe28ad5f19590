// deps.go pins the event plane's dependencies until their users land (removed at merge).
package events

import (
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "gopkg.in/yaml.v3"
)
