package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/tenantsim"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	valid := func() *options {
		return &options{listen: "127.0.0.1:0", users: 10, clientID: defaultClientID, envSecret: "x",
			realmThrottle: "code2", realmScope: "per-source", logLevel: "info",
			realmSchedule: "2m:15,4m:40", realmLatency: "100ms-400ms", realmLatencyTail: "0.02:1s-2s"}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	cases := map[string]func(o *options){
		"no secret":         func(o *options) { o.envSecret = "" },
		"negative users":    func(o *options) { o.users = -1 },
		"empty client id":   func(o *options) { o.clientID = " " },
		"page size":         func(o *options) { o.pageSize = 1000 },
		"throttle mode":     func(o *options) { o.realmThrottle = "503" },
		"log level":         func(o *options) { o.logLevel = "loud" },
		"probability":       func(o *options) { o.faultCode4 = 1.5 },
		"probability sum":   func(o *options) { o.faultCode4, o.fault5xx = 0.6, 0.6 },
		"negative rate":     func(o *options) { o.realmRate = -1 },
		"negative throttle": func(o *options) { o.graphThrottleEvery = -2 },
	}
	for name, edit := range cases {
		o := valid()
		edit(o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// A malformed realm flag is refused with a message naming it.
func TestValidateNamesRealmFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		flag string
		edit func(o *options)
	}{
		{"--realm-scope", func(o *options) { o.realmScope = "per-ip" }},
		{"--realm-schedule", func(o *options) { o.realmSchedule = "2m" }},
		{"--realm-schedule", func(o *options) { o.realmSchedule = "4m:40,2m:15" }},
		{"--realm-latency", func(o *options) { o.realmLatency = "400ms-100ms" }},
		{"--realm-latency", func(o *options) { o.realmLatency = "fast" }},
		{"--realm-latency-tail", func(o *options) { o.realmLatencyTail = "2%:1s-2s" }},
		{"--realm-latency-tail", func(o *options) { o.realmLatencyTail = "0.02" }},
		{"--realm-model", func(o *options) { o.realmRate, o.realmModel = 5, "token-bucket-1" }},
		{"--realm-model", func(o *options) { o.realmModel = "queue-3" }},
		{"--realm-model", func(o *options) { o.realmRate, o.realmModel, o.realmPenalty = 5, "queue-3", time.Second }},
	} {
		o := &options{listen: "127.0.0.1:0", clientID: defaultClientID, envSecret: "x", realmThrottle: "code2",
			realmScope: "per-source", logLevel: "info"}
		tc.edit(o)
		err := o.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.flag+" ") && !strings.HasPrefix(err.Error(), tc.flag+":") {
			t.Errorf("%s: error %v, want one starting with the flag", tc.flag, err)
		}
	}
	o := &options{realmScope: "per-tenant", realmSchedule: "2m:15,4m:40", realmLatency: "100ms-400ms", realmLatencyTail: "0.02:1s-2s",
		realmRate: 40, realmModel: "soft-limit-ra-4"}
	cfg, err := o.realm(nil)
	want := tenantsim.RealmConfig{Scope: "per-tenant", Rate: 40, Model: "soft-limit-ra-4",
		Schedule: []tenantsim.RateStep{{After: 2 * time.Minute, Rate: 15}, {After: 4 * time.Minute, Rate: 40}},
		Latency:  tenantsim.Latency{Min: 100 * time.Millisecond, Max: 400 * time.Millisecond, TailShare: 0.02, TailMin: time.Second, TailMax: 2 * time.Second}}
	if err != nil || !reflect.DeepEqual(cfg, want) {
		t.Fatalf("realm config %+v, %v; want %+v", cfg, err, want)
	}
}

// syncBuffer collects stderr written by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCommandServesAndPrintsReadyLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := "file-secret-value"
	secretFile := filepath.Join(dir, "secret")
	failFile := filepath.Join(dir, "fail.txt")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(failFile, []byte("# comment\n\nKim#Lee@contoso.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	stderr := &syncBuffer{}
	cmd := newRootCommand(pw, stderr, func(string) string { return "" })
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--users", "60", "--seed", "3",
		"--client-secret-file", secretFile, "--ca-out", filepath.Join(dir, "ca.pem"),
		"--ground-truth-out", filepath.Join(dir, "truth.json"), "--fail-addresses-file", failFile,
		"--roles", "Directory.Read.All", "--realm-throttle", "http429", "--log-level", "debug"})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); _ = pw.Close() }()

	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no ready line: %v (stderr %s)", err, stderr.String())
	}
	var ready readyLine
	if err := json.Unmarshal([]byte(line), &ready); err != nil {
		t.Fatalf("ready line %q: %v", line, err)
	}
	if ready.Users != 60 || ready.Addresses == 0 || ready.ClientID != defaultClientID || ready.TenantID == "" ||
		ready.GraphURL != ready.URL+"/v1.0" || ready.AuthorityHost != ready.URL+"/" ||
		ready.RealmURL != ready.URL+"/common/userrealm" || ready.CAFile != filepath.Join(dir, "ca.pem") {
		t.Fatalf("ready line %+v", ready)
	}

	pem, err := os.ReadFile(ready.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	var truth tenantsim.GroundTruth
	b, _ := os.ReadFile(filepath.Join(dir, "truth.json"))
	if err := json.Unmarshal(b, &truth); err != nil || truth.TenantID != ready.TenantID || len(truth.Addresses) != ready.Addresses {
		t.Fatalf("ground truth file: %v", err)
	}
	if want := tenantsim.Generate(3, 60).GroundTruth(); !reflect.DeepEqual(truth, want) {
		t.Fatal("ground truth file differs from GroundTruth()")
	}

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(ready.RealmURL + "?user=kim%23lee%40contoso.com&api-version=2.1&checkForMicrosoftAccount=true")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("fail address answered %d", resp.StatusCode)
	}
	client.CloseIdleConnections()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("command: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("command did not stop on cancel")
	}
	if strings.Contains(line+stderr.String(), secret) {
		t.Fatal("client secret printed")
	}
	if !strings.Contains(stderr.String(), `"msg":"shutting down"`) {
		t.Fatalf("stderr lacks shutdown log: %s", stderr.String())
	}
}

func TestCommandErrors(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"no secret":      {"--listen", "127.0.0.1:0"},
		"missing file":   {"--client-secret-file", "/nonexistent/secret", "--listen", "127.0.0.1:0"},
		"bad flag":       {"--users", "many"},
		"extra argument": {"serve"},
	} {
		var out bytes.Buffer
		cmd := newRootCommand(&out, &out, func(string) string { return "" })
		cmd.SetArgs(args)
		if err := cmd.ExecuteContext(t.Context()); err == nil {
			t.Errorf("%s: no error", name)
		}
		if out.Len() != 0 && name != "bad flag" {
			t.Errorf("%s: printed %q", name, out.String())
		}
	}
}
