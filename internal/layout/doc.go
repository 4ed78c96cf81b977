// Package layout holds no code: its test checks the import rules of ARCHITECTURE.md, so that
// a layer that reaches past its neighbours fails `make test` rather than a review.
package layout
