package runevents

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// The headers of a delivery.
const (
	HeaderEvent     = "X-Msaudit-Event"     // the event's type
	HeaderDelivery  = "X-Msaudit-Delivery"  // the event's ID, the same on every redelivery
	HeaderSignature = "X-Msaudit-Signature" // sha256=<hex HMAC-SHA256 of the body>, with a secret
)

// Webhook posts event bodies to one URL.
type Webhook struct {
	url    string
	secret []byte
	client *http.Client
}

// NewWebhook returns a webhook to rawURL, an http or https URL; with a
// secret, each body is signed with it. A request that takes longer than
// timeout fails.
func NewWebhook(rawURL string, secret []byte, timeout time.Duration) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	// The URL is not quoted back: an incoming-webhook URL is a secret.
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("the webhook URL is not an http or https URL")
	}
	// A redirect is an answer like any other, not followed: it would turn
	// the POST into a GET.
	c := &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Webhook{url: rawURL, secret: secret, client: c}, nil
}

// Sign is the X-Msaudit-Signature of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Post delivers one body: any 2xx answer takes it. An error says what went
// wrong without the URL, which may hold a token.
func (w *Webhook) Post(ctx context.Context, id, eventType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("webhook: cannot build the request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "msaudit-worker")
	req.Header.Set(HeaderEvent, eventType)
	req.Header.Set(HeaderDelivery, id)
	if len(w.secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(w.secret, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("webhook: %w", err)
	}
	// Read a little of the body so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: HTTP %d", resp.StatusCode)
	}
	return nil
}
