package directory

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// tokenError is a refusal from the token endpoint, reduced to the AADSTS text
// an operator can act on instead of azidentity's multi-line response dump.
type tokenError struct {
	status      int
	code        string // OAuth error, e.g. invalid_client
	description string // starts with the AADSTS code
}

func (e *tokenError) Error() string {
	msg := fmt.Sprintf("token endpoint %d", e.status)
	if e.code != "" {
		msg += " " + e.code
	}
	if e.description != "" {
		msg += ": " + e.description
	}
	return msg
}

// Is makes every 4xx refusal an ErrUnauthorized: a wrong secret, an unknown
// client ID and an unknown tenant all mean "these credentials do not work".
func (e *tokenError) Is(target error) bool {
	return target == ErrUnauthorized && e.status >= 400 && e.status < 500
}

// explainTokenError turns an azidentity failure into a one-line error that
// never contains secret.
func explainTokenError(err error, secret string) error {
	var authErr *azidentity.AuthenticationFailedError
	if !errors.As(err, &authErr) || authErr.RawResponse == nil {
		return redact(err, secret)
	}
	te := &tokenError{status: authErr.RawResponse.StatusCode}
	// Payload buffers the body, so azidentity's own Error() still works.
	if body, perr := runtime.Payload(authErr.RawResponse); perr == nil {
		var oauth struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &oauth) == nil {
			te.code = oauth.Error
			// AAD descriptions span lines (trace and correlation IDs).
			te.description = strings.Join(strings.Fields(oauth.Description), " ")
		}
	}
	if te.code == "" && te.description == "" {
		te.description = http.StatusText(te.status)
	}
	if secret != "" {
		te.code = strings.ReplaceAll(te.code, secret, "[redacted]")
		te.description = strings.ReplaceAll(te.description, secret, "[redacted]")
	}
	return te
}

// redact returns err unchanged unless its text contains secret. No known code
// path puts the secret into an error; this is defence in depth.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "[redacted]"))
}
