// Package layering holds no code. Its test enforces the import rules of
// docs/design.md ("Packages and their layers"): every package of the module
// sits in a layer of the table there and imports only packages of lower
// layers; test-support packages are imported by tests only; only the Graph
// intake links the Graph SDK and azidentity, and the worker links neither.
package layering
