package realm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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

// The two fields the audit relies on, spelled exactly as the service does.
const (
	fieldCode = "MicrosoftAccount"
	fieldSet  = "IsMicrosoftAccountSet"
)

// response is the part of the realm JSON the audit relies on. Pointers tell a
// missing field from a zero value.
type response struct {
	IsMicrosoftAccountSet *bool
	MicrosoftAccount      *int
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
	r, err := decode(body)
	if err != nil {
		return "", fmt.Errorf("%w: invalid JSON: %v", ErrNoAnswer, err)
	}
	if r.MicrosoftAccount == nil {
		return "", fmt.Errorf("%w: %s missing", ErrNoAnswer, fieldCode)
	}
	code := *r.MicrosoftAccount
	if code == 2 {
		return "", &ThrottleError{Reason: "MicrosoftAccount 2"}
	}
	if r.IsMicrosoftAccountSet == nil || !*r.IsMicrosoftAccountSet {
		return "", fmt.Errorf("%w: %s missing or false", ErrNoAnswer, fieldSet)
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

// decode reads the answer's two fields from one JSON object, more strictly
// than encoding/json would: a field given twice, or spelled in another case
// (which encoding/json would take for it), makes the answer ambiguous, and
// anything after the object means the body is not what it seems.
func decode(body []byte) (response, error) {
	var r response
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil {
		return r, err
	} else if tok != json.Delim('{') {
		return r, fmt.Errorf("want an object, got %v", tok)
	}
	seen := make(map[string]bool, 2)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return r, err
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return r, err
		}
		var dst any
		switch {
		case key == fieldCode:
			dst = &r.MicrosoftAccount
		case key == fieldSet:
			dst = &r.IsMicrosoftAccountSet
		case strings.EqualFold(key, fieldCode) || strings.EqualFold(key, fieldSet):
			return r, fmt.Errorf("field %q is not spelled as the service does", key)
		default:
			continue
		}
		if seen[key] {
			return r, fmt.Errorf("field %s given twice", key)
		}
		seen[key] = true
		if err := json.Unmarshal(raw, dst); err != nil {
			return r, fmt.Errorf("field %s: %v", key, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return r, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return r, errors.New("data after the object")
	}
	return r, nil
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
