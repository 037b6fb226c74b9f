package directory

import (
	"fmt"
	"strings"
)

// Cloud names the endpoints of one Microsoft national cloud. Each cloud has its
// own Graph host, login host and token scope; a token for one is useless on
// another.
type Cloud struct {
	// Name is the canonical environment name accepted by CloudByName.
	Name string
	// GraphURL is the Graph base URL including the API version, e.g.
	// https://graph.microsoft.com/v1.0.
	GraphURL string
	// AuthorityHost is the login host, e.g. https://login.microsoftonline.com/.
	AuthorityHost string
	// Scope is the scope requested for Graph tokens, e.g.
	// https://graph.microsoft.com/.default.
	Scope string
}

// The four national clouds, with their Graph and login hosts
// (docs/dependencies.md). USGov and USGovDoD share a login host but not a Graph host.
var (
	cloudGlobal = Cloud{
		Name:          "Global",
		GraphURL:      "https://graph.microsoft.com/v1.0",
		AuthorityHost: "https://login.microsoftonline.com/",
		Scope:         "https://graph.microsoft.com/.default",
	}
	cloudUSGov = Cloud{
		Name:          "USGov",
		GraphURL:      "https://graph.microsoft.us/v1.0",
		AuthorityHost: "https://login.microsoftonline.us/",
		Scope:         "https://graph.microsoft.us/.default",
	}
	cloudUSGovDoD = Cloud{
		Name:          "USGovDoD",
		GraphURL:      "https://dod-graph.microsoft.us/v1.0",
		AuthorityHost: "https://login.microsoftonline.us/",
		Scope:         "https://dod-graph.microsoft.us/.default",
	}
	cloudChina = Cloud{
		Name:          "China",
		GraphURL:      "https://microsoftgraph.chinacloudapi.cn/v1.0",
		AuthorityHost: "https://login.chinacloudapi.cn/",
		Scope:         "https://microsoftgraph.chinacloudapi.cn/.default",
	}
)

var clouds = []Cloud{cloudGlobal, cloudUSGov, cloudUSGovDoD, cloudChina}

// CloudByName returns the cloud called name, compared case-insensitively, so
// that --environment usgov works as well as USGov.
func CloudByName(name string) (Cloud, error) {
	want := strings.TrimSpace(name)
	for _, c := range clouds {
		if strings.EqualFold(c.Name, want) {
			return c, nil
		}
	}
	names := make([]string, len(clouds))
	for i, c := range clouds {
		names[i] = c.Name
	}
	return Cloud{}, fmt.Errorf("unknown environment %q: valid names are %s", name, strings.Join(names, ", "))
}
