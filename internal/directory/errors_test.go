package directory

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

func odataError(status int, code, message string) *odataerrors.ODataError {
	e := odataerrors.NewODataError()
	e.ResponseStatusCode = status
	body := odataerrors.NewMainError()
	body.SetCode(&code)
	if message != "" {
		body.SetMessage(&message)
	}
	e.SetErrorEscaped(body)
	return e
}

func TestWrapGraph(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		err      error
		sentinel error
		want     string
	}{
		{"forbidden", odataError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
			ErrForbidden, "list users: graph 403 Authorization_RequestDenied: Insufficient privileges to complete the operation."},
		{"not found", odataError(404, "Request_ResourceNotFound", "Resource 'x' does not exist."),
			ErrNotFound, "list users: graph 404 Request_ResourceNotFound: Resource 'x' does not exist."},
		{"unauthorized", odataError(401, "InvalidAuthenticationToken", "Access token is empty."),
			ErrUnauthorized, "list users: graph 401 InvalidAuthenticationToken: Access token is empty."},
		{"throttled", odataError(429, "TooManyRequests", "Too many requests."),
			nil, "list users: graph 429 TooManyRequests: Too many requests."},
		// ODataError.Error would panic on the nil message.
		{"no message", odataError(400, "BadRequest", ""), nil, "list users: graph 400 BadRequest"},
		{"bodyless", &abstractions.ApiError{ResponseStatusCode: 404, Message: "no body"}, ErrNotFound, "list users: graph 404: no body"},
		{"transport", io.ErrUnexpectedEOF, nil, "list users: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := wrapGraph("list users", tt.err)
			if got.Error() != tt.want {
				t.Errorf("message %q, want %q", got, tt.want)
			}
			for _, s := range []error{ErrForbidden, ErrNotFound, ErrUnauthorized} {
				if errors.Is(got, s) != (s == tt.sentinel) {
					t.Errorf("errors.Is(%v) = %v", s, errors.Is(got, s))
				}
			}
		})
	}
	var odataErr *odataerrors.ODataError
	if !errors.As(wrapGraph("x", odataError(403, "c", "m")), &odataErr) {
		t.Error("the SDK's error is not reachable with errors.As")
	}
}

func TestExplainTokenError(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value"
	body := `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nCorrelation ID: 2","error_codes":[7000215]}`
	req, _ := http.NewRequest(http.MethodPost, "https://login.example/t/oauth2/v2.0/token", nil)
	resp := &http.Response{StatusCode: 401, Status: "401 Unauthorized", Request: req,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewBufferString(body))}
	err := explainTokenError(&azidentity.AuthenticationFailedError{RawResponse: resp}, secret)
	want := "token endpoint 401 invalid_client: AADSTS7000215: Invalid client secret provided. Trace ID: 1 Correlation ID: 2"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if !errors.Is(err, ErrUnauthorized) {
		t.Error("a rejected client secret must match ErrUnauthorized")
	}

	leaky := errors.New("something echoed " + secret)
	if got := explainTokenError(leaky, secret); strings.Contains(got.Error(), secret) {
		t.Errorf("secret leaked: %q", got)
	}
}
