// Package openapi holds the hand-written contract of the service. gen/ is generated from it;
// the server serves it at /openapi.yaml and /openapi.json.
package openapi

import _ "embed"

// YAML is openapi.yaml as written.
//
//go:embed openapi.yaml
var YAML []byte
