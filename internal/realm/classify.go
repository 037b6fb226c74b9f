package realm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Status is the answer for one address.
type Status string

const (
	// Present means a consumer account uses the address.
	Present Status = "present"
	// Absent means no consumer account uses the address.
	Absent Status = "absent"
)

// ErrThrottled marks a throttled request (MicrosoftAccount 2 or HTTP 429).
// Callers slow down and retry later; it says nothing about the address.
var ErrThrottled = errors.New("throttled by the realm service")

// ErrNoAnswer marks any other response that is not an answer.
var ErrNoAnswer = errors.New("no answer from the realm service")

// ThrottleError is a throttled response, with the service's Retry-After when
// it sent one.
type ThrottleError struct {
	Reason     string
	RetryAfter time.Duration
}

func (e *ThrottleError) Error() string { return "throttled: " + e.Reason }

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottleError) Is(target error) bool { return target == ErrThrottled }

// response is the part of the realm JSON the audit relies on. Pointers tell a
// missing field from a zero value.
type response struct {
	NameSpaceType         string `json:"NameSpaceType"`
	IsMicrosoftAccountSet *bool  `json:"IsMicrosoftAccountSet"`
	MicrosoftAccount      *int   `json:"MicrosoftAccount"`
}

// Classify turns an HTTP status, the Retry-After header value and a body into
// an answer or an error. It is pure so that every rule is table-testable.
func Classify(statusCode int, retryAfter string, body []byte) (Status, error) {
	switch {
	case statusCode == http.StatusTooManyRequests:
		return "", &ThrottleError{Reason: "HTTP 429", RetryAfter: parseRetryAfter(retryAfter)}
	case statusCode != http.StatusOK:
		return "", fmt.Errorf("%w: HTTP %d", ErrNoAnswer, statusCode)
	}
	var r response
	if err := json.Unmarshal(body, &r); err != nil {
		return "", fmt.Errorf("%w: invalid JSON: %v", ErrNoAnswer, err)
	}
	if r.MicrosoftAccount == nil {
		return "", fmt.Errorf("%w: MicrosoftAccount missing", ErrNoAnswer)
	}
	code := *r.MicrosoftAccount
	if code == 2 {
		return "", &ThrottleError{Reason: "MicrosoftAccount 2"}
	}
	if r.IsMicrosoftAccountSet == nil || !*r.IsMicrosoftAccountSet {
		return "", fmt.Errorf("%w: IsMicrosoftAccountSet missing or false", ErrNoAnswer)
	}
	switch code {
	case 0:
		return Present, nil
	case 1:
		return Absent, nil
	case 4:
		return "", fmt.Errorf("%w: service failure (MicrosoftAccount 4)", ErrNoAnswer)
	default:
		return "", fmt.Errorf("%w: unknown MicrosoftAccount %d", ErrNoAnswer, code)
	}
}

// parseRetryAfter reads the delta-seconds form; the HTTP-date form is not
// used by the realm service and yields 0 (the caller's backoff applies).
func parseRetryAfter(v string) time.Duration {
	s, err := strconv.Atoi(v)
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}
