// The cluster DNS of the test node: CoreDNS with only the plugins its Corefile uses, so that the build skips the
// cloud providers' SDKs that a full CoreDNS links in. Built by tests/k8s/addons.py, never shipped.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
