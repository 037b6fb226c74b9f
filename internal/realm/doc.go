// Package realm asks Microsoft's public sign-in realm service whether an
// address has a consumer (personal Microsoft) account, and classifies the
// answer strictly: only MicrosoftAccount 0 (present) and 1 (absent) with
// IsMicrosoftAccountSet true are answers. Everything else — throttling (code 2,
// HTTP 429), service failures (code 4, 5xx), unknown codes, a missing flag,
// bad, truncated or ambiguous JSON (a field twice, or in another case), a
// body over 64 KiB, timeouts, TLS and connection failures — is an error,
// never "absent", because a false negative is the one mistake the audit must
// not make. Errors name the fault, for the dead letters, but never the
// address.
//
// It holds no state and knows nothing of queues, rate limits or retries.
package realm
