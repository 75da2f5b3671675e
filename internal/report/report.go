// Package report is deploytest's report printer under its former names.
package report

import (
	"io"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/deploytest"
)

// Summary is deploytest.Summary.
type Summary = deploytest.Summary

// Print is deploytest.PrintReport.
func Print(w io.Writer, res *deploy.Result, machines int, lr deploytest.LoadResult, after map[string]int64, derr error, asJSON bool) {
	deploytest.PrintReport(w, res, machines, lr, after, derr, asJSON)
}

// PrintNodes is deploytest.PrintNodesReport.
func PrintNodes(w io.Writer, res *deploy.Result, machines, nodes int, lr deploytest.LoadResult, after map[string]int64, derr error, asJSON bool) {
	deploytest.PrintNodesReport(w, res, machines, nodes, lr, after, derr, asJSON)
}
