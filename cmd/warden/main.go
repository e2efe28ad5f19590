// Command warden is the Warden server and its command-line client; all of it
// lives in internal/cli.
package main

import (
	"os"

	"github.com/warden-sec/warden/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
