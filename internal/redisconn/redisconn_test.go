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
		{name: "CA without TLS", o: Options{URL: "redis://h:6379/0", CAFile: notPEM}, wantErr: "need a rediss://"},
		{name: "CA file without a certificate", o: Options{URL: "rediss://h:6380/0", CAFile: notPEM}, wantErr: "no PEM certificate"},
		{name: "client certificate without key", o: Options{URL: "rediss://h:6380/0", CertFile: notPEM}, wantErr: "give both or neither"},
		{name: "unreadable client certificate", o: Options{URL: "rediss://h:6380/0", CertFile: notPEM, KeyFile: notPEM}, wantErr: "redis client certificate"},
		{name: "another scheme", o: Options{URL: "http://:url-s3cret@h/"}, wantErr: "want redis://, rediss://"},
		{name: "not a URL", o: Options{URL: "not a url"}, wantErr: "want redis://, rediss://"},
		{name: "bad database", o: Options{URL: "redis://:url-s3cret@h:6379/zero"}, wantErr: "redis url redis://:xxxxx@h:6379/zero"},
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

func TestFailoverOptions(t *testing.T) {
	t.Parallel()
	pwFile := write(t, "pw", "file-s3cret\n")
	ca := write(t, "ca.pem", "not a certificate")
	cases := []struct {
		name      string
		o         Options
		wantErr   string
		wantAddrs string // comma-separated
		wantName  string
		wantDB    int
		wantUser  string
		wantPw    string
		wantTLS   bool
	}{
		{name: "two sentinels, primary, db", o: Options{URL: "redis-sentinel://s1:26379,s2:26380/mymaster/2"},
			wantAddrs: "s1:26379,s2:26380", wantName: "mymaster", wantDB: 2},
		{name: "default port, db 0", o: Options{URL: "redis-sentinel://s1,10.0.0.2/prim"},
			wantAddrs: "s1:26379,10.0.0.2:26379", wantName: "prim"},
		{name: "ACL user and escaped password", o: Options{URL: "redis-sentinel://auditor:url%40s3cret@s1:26379/m/0"},
			wantAddrs: "s1:26379", wantName: "m", wantUser: "auditor", wantPw: "url@s3cret"},
		{name: "password file", o: Options{URL: "redis-sentinel://s1:1/m", PasswordFile: pwFile},
			wantAddrs: "s1:1", wantName: "m", wantPw: "file-s3cret"},
		{name: "TLS", o: Options{URL: "rediss-sentinel://s1:1/m"}, wantAddrs: "s1:1", wantName: "m", wantTLS: true},
		{name: "no primary name", o: Options{URL: "redis-sentinel://s1:1/"}, wantErr: "want /PRIMARY"},
		{name: "no path", o: Options{URL: "redis-sentinel://s1:1"}, wantErr: "want /PRIMARY"},
		{name: "too long a path", o: Options{URL: "redis-sentinel://s1:1/m/0/x"}, wantErr: "want /PRIMARY"},
		{name: "bad db", o: Options{URL: "redis-sentinel://:url-s3cret@s1:1/m/zero"}, wantErr: `database "zero"`},
		{name: "empty address", o: Options{URL: "redis-sentinel://s1:1,,s2:2/m"}, wantErr: "empty Sentinel address"},
		{name: "query refused", o: Options{URL: "redis-sentinel://s1:1/m?password=url-s3cret"}, wantErr: "no query"},
		{name: "password twice", o: Options{URL: "redis-sentinel://:url-s3cret@s1:1/m", PasswordFile: pwFile}, wantErr: "given twice"},
		{name: "CA without TLS", o: Options{URL: "redis-sentinel://s1:1/m", CAFile: ca}, wantErr: "need a rediss://"},
		{name: "unparseable", o: Options{URL: "redis-sentinel://:url-s3cret@s1:1,[::1:2/m"}, wantErr: "redis url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.o.Sentinel() {
				t.Fatalf("%s is not taken for a Sentinel URL", c.o.URL)
			}
			opts, err := c.o.FailoverOptions()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(opts.SentinelAddrs, ","); got != c.wantAddrs || opts.MasterName != c.wantName || opts.DB != c.wantDB ||
				opts.Username != c.wantUser || opts.Password != c.wantPw || (opts.TLSConfig != nil) != c.wantTLS {
				t.Errorf("options %q %q db %d user %q password %q TLS %v", got, opts.MasterName, opts.DB, opts.Username, opts.Password, opts.TLSConfig != nil)
			}
			if opts.SentinelPassword != "" {
				t.Error("the servers' password is sent to the Sentinels")
			}
		})
	}
	if (Options{URL: "redis://h:1/0"}).Sentinel() {
		t.Error("redis:// taken for a Sentinel URL")
	}
	if _, err := (Options{URL: "redis-sentinel://s:1/m"}).ClientOptions(); err == nil {
		t.Error("ClientOptions accepted a Sentinel URL")
	}
}

func TestRedactSentinelURL(t *testing.T) {
	t.Parallel()
	got := Redact("redis-sentinel://auditor:url-s3cret@s1:26379,s2:26380/mymaster/0")
	if got != "redis-sentinel://auditor:xxxxx@s1:26379,s2:26380/mymaster/0" {
		t.Errorf("Redact = %q", got)
	}
}
