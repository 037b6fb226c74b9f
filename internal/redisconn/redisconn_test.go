package redisconn

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientOptions(t *testing.T) {
	t.Parallel()
	pwFile := write(t, "pw", "file-s3cret\n")
	empty := write(t, "empty", "\n")
	notPEM := write(t, "ca.pem", "not a certificate")
	cases := []struct {
		name    string
		o       Options
		wantErr string // "" means no error
		wantPw  string
	}{
		{name: "plain URL", o: Options{URL: "redis://127.0.0.1:6379/0"}},
		{name: "ACL user and password in the URL", o: Options{URL: "redis://auditor:url-s3cret@h:6379/2"}, wantPw: "url-s3cret"},
		{name: "password from a file, line break dropped", o: Options{URL: "rediss://h:6380/0", PasswordFile: pwFile}, wantPw: "file-s3cret"},
		{name: "password twice", o: Options{URL: "redis://:url-s3cret@h:6379/0", PasswordFile: pwFile}, wantErr: "given twice"},
		{name: "empty password file", o: Options{URL: "redis://h:6379/0", PasswordFile: empty}, wantErr: "is empty"},
		{name: "missing password file", o: Options{URL: "redis://h:6379/0", PasswordFile: "/nonexistent/pw"}, wantErr: "redis password file"},
		{name: "CA without TLS", o: Options{URL: "redis://h:6379/0", CAFile: notPEM}, wantErr: "need a rediss:// URL"},
		{name: "CA file without a certificate", o: Options{URL: "rediss://h:6380/0", CAFile: notPEM}, wantErr: "no PEM certificate"},
		{name: "client certificate without key", o: Options{URL: "rediss://h:6380/0", CertFile: notPEM}, wantErr: "give both or neither"},
		{name: "unreadable client certificate", o: Options{URL: "rediss://h:6380/0", CertFile: notPEM, KeyFile: notPEM}, wantErr: "redis client certificate"},
		{name: "not a URL", o: Options{URL: "http://:url-s3cret@h/"}, wantErr: "redis url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts, err := c.o.ClientOptions()
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if opts.Password != c.wantPw {
					t.Errorf("password %q, want %q", opts.Password, c.wantPw)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestOpenUnreachableNamesNoPassword(t *testing.T) {
	t.Parallel()
	_, err := Open(context.Background(), Options{URL: "redis://:url-s3cret@127.0.0.1:1/0"}, 0)
	if err == nil || strings.Contains(err.Error(), "url-s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("error %v: want one naming the address and not the password", err)
	}
}
