//go:build tools

// The Python language host. Since v3.80 it is a Go module of its own
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3), which the module proxy
// does not serve; v3.68.0 is the newest release of sdk/v3 that still carries it.
package tools

import _ "github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python"
