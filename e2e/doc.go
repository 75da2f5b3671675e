// Package e2e holds end-to-end tests of deploys on a real Docker engine: the
// sample app of examples/app in containers, the proxy in front of them,
// continuous load through it. It has no code of its own.
//
// The tests need a running engine. Without one they skip, saying so, unless
// CI=true, in which case the whole package fails: a skipped Docker suite in CI
// is a failure.
package e2e
