package realm

import (
	"errors"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		retryAfter string
		body       string
		want       Status
		wantErr    error
		wantRetry  time.Duration
	}{
		{"present", 200, "", `{"NameSpaceType":"Managed","IsMicrosoftAccountSet":true,"MicrosoftAccount":0}`, Present, nil, 0},
		{"absent", 200, "", `{"NameSpaceType":"Managed","IsMicrosoftAccountSet":true,"MicrosoftAccount":1}`, Absent, nil, 0},
		{"absent unknown namespace", 200, "", `{"NameSpaceType":"Unknown","IsMicrosoftAccountSet":true,"MicrosoftAccount":1}`, Absent, nil, 0},
		{"throttled code 2", 200, "", `{"IsMicrosoftAccountSet":true,"MicrosoftAccount":2}`, "", ErrThrottled, 0},
		{"throttled code 2 without flag", 200, "", `{"MicrosoftAccount":2}`, "", ErrThrottled, 0},
		{"http 429 with retry-after", 429, "7", ``, "", ErrThrottled, 7 * time.Second},
		{"http 429 bad retry-after", 429, "soon", ``, "", ErrThrottled, 0},
		{"service failure code 4", 200, "", `{"IsMicrosoftAccountSet":true,"MicrosoftAccount":4}`, "", ErrNoAnswer, 0},
		{"unknown code 3", 200, "", `{"IsMicrosoftAccountSet":true,"MicrosoftAccount":3}`, "", ErrNoAnswer, 0},
		{"negative code", 200, "", `{"IsMicrosoftAccountSet":true,"MicrosoftAccount":-1}`, "", ErrNoAnswer, 0},
		{"flag missing is not absent", 200, "", `{"NameSpaceType":"Managed","MicrosoftAccount":1}`, "", ErrNoAnswer, 0},
		{"flag false is not absent", 200, "", `{"IsMicrosoftAccountSet":false,"MicrosoftAccount":1}`, "", ErrNoAnswer, 0},
		{"code missing", 200, "", `{"IsMicrosoftAccountSet":true}`, "", ErrNoAnswer, 0},
		{"code not a number", 200, "", `{"IsMicrosoftAccountSet":true,"MicrosoftAccount":"0"}`, "", ErrNoAnswer, 0},
		{"invalid json", 200, "", `{"IsMicrosoftAccountSet":tru`, "", ErrNoAnswer, 0},
		{"empty body", 200, "", ``, "", ErrNoAnswer, 0},
		{"html error page", 200, "", `<html>oops</html>`, "", ErrNoAnswer, 0},
		{"http 500", 500, "", `{"IsMicrosoftAccountSet":true,"MicrosoftAccount":1}`, "", ErrNoAnswer, 0},
		{"http 503", 503, "", ``, "", ErrNoAnswer, 0},
		{"http 400", 400, "", ``, "", ErrNoAnswer, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Classify(tt.status, tt.retryAfter, []byte(tt.body))
			if got != tt.want {
				t.Errorf("status = %q, want %q", got, tt.want)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == ErrThrottled {
				if errors.Is(err, ErrNoAnswer) {
					t.Errorf("throttle also matches ErrNoAnswer")
				}
				var te *ThrottleError
				if !errors.As(err, &te) || te.RetryAfter != tt.wantRetry {
					t.Errorf("retry-after = %v, want %v", te, tt.wantRetry)
				}
			}
		})
	}
}
