package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/msaudit/msaudit/internal/tenantsim"
)

// writeFile writes b to path and returns the absolute path, which the ready
// line reports so that scripts can run from any directory.
func writeFile(path string, b []byte) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(abs, b, 0o644); err != nil {
		return "", err
	}
	return abs, nil
}

// writeTruth streams the ground truth as JSON, one address a line, because
// marshalling half a million addresses at once would triple peak memory.
func writeTruth(path string, truth tenantsim.GroundTruth) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	w := bufio.NewWriterSize(f, 1<<16)
	head, err := json.Marshal(struct {
		TenantID string   `json:"tenant_id"`
		Domains  []string `json:"domains"`
	}{truth.TenantID, truth.Domains})
	if err != nil {
		return err
	}
	// bufio keeps the first write error and Flush reports it.
	w.Write(head[:len(head)-1])
	w.WriteString(`,"addresses":[`)
	for i, a := range truth.Addresses {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteByte('\n')
		w.Write(b)
	}
	w.WriteString("\n]}\n")
	return w.Flush()
}

// readLines returns the non-blank lines of a file, skipping lines that start
// with '#' ('#' inside an address is legal, so only a leading one is a
// comment).
func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}
