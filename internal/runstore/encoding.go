package runstore

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// An address's value in its state bucket is
//
//	<state byte><attempts in decimal>:<detail>
//
// or the state byte alone while no attempt was recorded ("p"). The detail
// is what encodeDetail makes of the last attempt's check time and request
// ID: a Lua script moves an address by rewriting the state and attempts
// and copies the detail it is given, never reading it. The last error is
// not in it: errors are long enough to push the value past the listpack
// limit of 64 bytes, which would turn its whole bucket into a hash table
// for good; they live in the errors hash while they are the last word.

// Tags of the request ID in an encoded detail.
const (
	reqGUID = 'g' // 16 bytes: a lowercase GUID, as x-ms-request-id is
	reqText = 't' // the rest of the value: any other request ID
)

// encodeDetail is a detail without its error: the check time as a uvarint
// of unix ms (0: unknown), then the request ID, if any, tagged.
func encodeDetail(d Detail) string {
	b := make([]byte, 0, 24)
	var ms uint64
	if !d.CheckedAt.IsZero() && d.CheckedAt.UnixMilli() > 0 {
		ms = uint64(d.CheckedAt.UnixMilli())
	}
	b = binary.AppendUvarint(b, ms)
	switch g, ok := packGUID(d.RequestID); {
	case ok:
		b = append(append(b, reqGUID), g...)
	case d.RequestID != "":
		b = append(append(b, reqText), d.RequestID...)
	}
	return string(b)
}

// decodeDetail is the inverse of encodeDetail; the error is not in it.
func decodeDetail(s string) Detail {
	var d Detail
	ms, n := binary.Uvarint([]byte(s))
	if n <= 0 {
		return d
	}
	if ms > 0 {
		d.CheckedAt = time.UnixMilli(int64(ms)).UTC()
	}
	rest := s[n:]
	switch {
	case len(rest) == 17 && rest[0] == reqGUID:
		d.RequestID = unpackGUID(rest[1:])
	case len(rest) > 0 && rest[0] == reqText:
		d.RequestID = rest[1:]
	}
	return d
}

// encodeState is the value of an address after an attempt.
func encodeState(stored string, attempts int, d Detail) string {
	return stored + strconv.Itoa(attempts) + ":" + encodeDetail(d)
}

// decodeState reads an address's value: its state, attempts and the
// detail of its last attempt (without the error). An empty value is an
// address the run does not hold.
func decodeState(v string) (AddressStatus, int, Detail) {
	if v == "" {
		return StateUnknown, 0, Detail{}
	}
	st := statusOf(v[:1])
	digits, detail, _ := strings.Cut(v[1:], ":")
	n, _ := strconv.Atoi(digits)
	return st, n, decodeDetail(detail)
}

// packGUID returns the 16 bytes of a GUID in its lowercase canonical form
// (8-4-4-4-12 hex digits), and whether s is one; any other spelling is
// kept as text, so that decoding gives back exactly what was stored.
func packGUID(s string) (string, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return "", false
	}
	h := s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if strings.ToLower(h) != h {
		return "", false
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return "", false
	}
	return string(b), true
}

func unpackGUID(b string) string {
	h := hex.EncodeToString([]byte(b))
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// A user reference is a user ID as the owners and users buckets hold it:
// refGUID and the 16 bytes of a lowercase GUID (what Entra ID user IDs
// are), or one byte of length and the ID as text. An address's owners value
// is its references concatenated; the empty ID (an address from a list,
// owned by no one) is the single byte 0.
const (
	refGUID    = 0x80
	maxTextRef = refGUID - 1
)

// encodeRef is the reference of a user ID.
func encodeRef(userID string) (string, error) {
	if g, ok := packGUID(userID); ok {
		return string([]byte{refGUID}) + g, nil
	}
	if len(userID) > maxTextRef {
		return "", fmt.Errorf("user ID longer than %d bytes: %.40q…", maxTextRef, userID)
	}
	return string([]byte{byte(len(userID))}) + userID, nil
}

// refLen is the length of the reference that starts with byte b;
// refLenLua is the same in Lua.
func refLen(b byte) int {
	if b == refGUID {
		return 17
	}
	return 1 + int(b)
}

// splitRefs returns the references of an owners value.
func splitRefs(v string) []string {
	var out []string
	for len(v) > 0 {
		n := refLen(v[0])
		if n > len(v) {
			break
		}
		out = append(out, v[:n])
		v = v[n:]
	}
	return out
}

// decodeRef is the user ID of a reference.
func decodeRef(ref string) string {
	if len(ref) == 17 && ref[0] == refGUID {
		return unpackGUID(ref[1:])
	}
	if len(ref) == 0 {
		return ""
	}
	return ref[1:]
}

// pairSep separates UPN, display name and mail in a user's value. UPNs
// cannot contain it; display names and mail are stripped of it.
const pairSep = "\x1f"

// splitUser splits an element of a users bucket into the user's reference
// and value.
func splitUser(e string) (ref, value string) {
	if e == "" {
		return "", ""
	}
	n := min(refLen(e[0]), len(e))
	return e[:n], e[n:]
}

// userValue is a user's value in the users buckets: the UPN alone when
// nothing else is known (address pairs of tests and simple sources), the
// UPN and display name when the mail is the UPN, else all three.
func userValue(p Pair) string {
	clean := func(s string) string { return strings.ReplaceAll(s, pairSep, " ") }
	switch {
	case p.DisplayName == "" && p.Mail == "":
		return p.UPN
	case p.Mail == p.UPN:
		return p.UPN + pairSep + clean(p.DisplayName)
	}
	return p.UPN + pairSep + clean(p.DisplayName) + pairSep + clean(p.Mail)
}

// parseUser fills p's UPN, display name and mail from a user's value.
func parseUser(p *Pair, v string) {
	parts := strings.SplitN(v, pairSep, 3)
	p.UPN = parts[0]
	switch len(parts) {
	case 2:
		p.DisplayName, p.Mail = parts[1], p.UPN
	case 3:
		p.DisplayName, p.Mail = parts[1], parts[2]
	}
}
