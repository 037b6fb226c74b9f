package directory

import (
	"strings"
	"testing"
)

func TestCloudByName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		want      Cloud
		wantError bool
	}{
		{"Global", Cloud{"Global", "https://graph.microsoft.com/v1.0", "https://login.microsoftonline.com/", "https://graph.microsoft.com/.default"}, false},
		{"global", cloudGlobal, false},
		{"USGov", Cloud{"USGov", "https://graph.microsoft.us/v1.0", "https://login.microsoftonline.us/", "https://graph.microsoft.us/.default"}, false},
		{"usgov", cloudUSGov, false},
		{"USGovDoD", Cloud{"USGovDoD", "https://dod-graph.microsoft.us/v1.0", "https://login.microsoftonline.us/", "https://dod-graph.microsoft.us/.default"}, false},
		{" USGOVDOD ", cloudUSGovDoD, false},
		{"China", Cloud{"China", "https://microsoftgraph.chinacloudapi.cn/v1.0", "https://login.chinacloudapi.cn/", "https://microsoftgraph.chinacloudapi.cn/.default"}, false},
		{"CHINA", cloudChina, false},
		{"", Cloud{}, true},
		{"Germany", Cloud{}, true},
		{"AzureUSGovernment", Cloud{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := CloudByName(tt.name)
			if tt.wantError {
				if err == nil {
					t.Fatalf("CloudByName(%q) = %+v, want error", tt.name, got)
				}
				for _, valid := range []string{"Global", "USGov", "USGovDoD", "China"} {
					if !strings.Contains(err.Error(), valid) {
						t.Errorf("error %q does not list %s", err, valid)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("CloudByName(%q): %v", tt.name, err)
			}
			if got != tt.want {
				t.Errorf("CloudByName(%q) = %+v, want %+v", tt.name, got, tt.want)
			}
		})
	}
}

// The scope must name the same host as the Graph URL: a token for one
// cloud's Graph is rejected by another's.
func TestCloudScopeMatchesGraphHost(t *testing.T) {
	t.Parallel()
	for _, c := range clouds {
		host := strings.TrimSuffix(c.GraphURL, "/v1.0")
		if c.Scope != host+"/.default" {
			t.Errorf("%s: scope %q does not match Graph host %q", c.Name, c.Scope, host)
		}
		if !strings.HasSuffix(c.AuthorityHost, "/") {
			t.Errorf("%s: authority host %q lacks the trailing slash", c.Name, c.AuthorityHost)
		}
	}
}
