package directory

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// Sentinels callers branch on with errors.Is. The errors that carry them also
// carry the service's own code and message, which is what an operator needs to
// fix the problem (a missing admin consent, a wrong secret, a typo in a UPN).
var (
	// ErrNotFound: the user or resource does not exist in the tenant (404).
	ErrNotFound = errors.New("not found")
	// ErrForbidden: the credential is valid but lacks a permission (403).
	ErrForbidden = errors.New("forbidden")
	// ErrUnauthorized: the credential was rejected, by the token endpoint or
	// by Graph (401).
	ErrUnauthorized = errors.New("unauthorized")
)

// graphError is a failed Graph call reduced to what a person can act on.
// It matches its sentinel with errors.Is and still unwraps to the SDK's error
// for callers that want the raw response headers.
type graphError struct {
	status    int
	code      string
	message   string
	requestID string
	sentinel  error
	cause     error
}

func (e *graphError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph %d", e.status)
	if e.code != "" {
		b.WriteString(" " + e.code)
	}
	if e.message != "" {
		b.WriteString(": " + e.message)
	}
	if e.requestID != "" {
		// Microsoft support asks for it first.
		b.WriteString(" (request-id " + e.requestID + ")")
	}
	return b.String()
}

func (e *graphError) Is(target error) bool { return e.sentinel != nil && target == e.sentinel }

func (e *graphError) Unwrap() error { return e.cause }

func sentinelForStatus(status int) error {
	switch status {
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return ErrNotFound
	}
	return nil
}

// wrapGraph gives err the context op ("list users") and, when it is a Graph
// error response, Graph's status, code and message.
func wrapGraph(op string, err error) error {
	if err == nil {
		return nil
	}
	var odataErr *odataerrors.ODataError
	if errors.As(err, &odataErr) {
		ge := &graphError{status: odataErr.ResponseStatusCode}
		if body := odataErr.GetErrorEscaped(); body != nil {
			// ODataError.Error dereferences the message without a nil
			// check; only expose it through Unwrap when that is safe.
			if body.GetMessage() != nil {
				ge.cause = err
			}
			ge.code = deref(body.GetCode())
			ge.message = deref(body.GetMessage())
			if inner := body.GetInnerError(); inner != nil {
				ge.requestID = deref(inner.GetRequestId())
			}
		}
		if ge.requestID == "" && odataErr.ResponseHeaders != nil {
			if v := odataErr.ResponseHeaders.Get("request-id"); len(v) > 0 {
				ge.requestID = v[0]
			}
		}
		ge.sentinel = sentinelForStatus(ge.status)
		return fmt.Errorf("%s: %w", op, ge)
	}
	// A status the error mapping could not parse (no body, or not JSON)
	// still deserves its sentinel.
	var apiErr *abstractions.ApiError
	if errors.As(err, &apiErr) && apiErr.ResponseStatusCode != 0 {
		return fmt.Errorf("%s: %w", op, &graphError{
			status:   apiErr.ResponseStatusCode,
			message:  apiErr.Message,
			sentinel: sentinelForStatus(apiErr.ResponseStatusCode),
			cause:    err,
		})
	}
	return fmt.Errorf("%s: %w", op, err)
}

// errEmptyResponse reports a 2xx answer the SDK parsed as nothing. The SDK
// returns (nil, nil) when the response lacks a JSON content type, so without
// this check a misbehaving proxy would look like an empty tenant.
func errEmptyResponse(op string) error {
	return fmt.Errorf("%s: graph returned an empty or non-JSON response", op)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
