package middleware

import "github.com/warden-sec/warden/pkg/client"

// KeyPair serves a certificate and key from PEM files that the agent
// replaces at renewal; it is pkg/client's (see [client.KeyPair]).
type KeyPair = client.KeyPair
