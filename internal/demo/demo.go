// Package demo is deploytest.App under its former name, for the library's own tests.
package demo

import (
	"net/http"

	"github.com/cutover/deploy/deploytest"
)

// Handler is deploytest.App.
func Handler(version string) http.Handler { return deploytest.App(version) }
