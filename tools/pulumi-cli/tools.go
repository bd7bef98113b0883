//go:build tools

// The Pulumi CLI, built from its Go module at the version go.mod pins (scripts/toolchain builds it).
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
