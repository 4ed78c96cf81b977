// Package audit keeps the audit log: one record per mutating request, hash-chained so that an
// edited or deleted record is detected by Verify (and `readiness audit verify`).
//
// # Anchors
//
// The chain alone cannot show that its newest records were deleted: what is left is a shorter
// chain that is intact. So the head (the newest record's seq and hash) is also kept outside the
// audit table, and Verify checks the table against it. A deletion shows as a table that ends
// before the anchored record; a deletion followed by forged records shows as an anchored record
// whose hash differs. The service keeps two anchors, both written by Anchorer every minute
// (DefaultAnchorInterval) and at shutdown:
//
//   - The file audit-anchor.json in the backup repository's root. The repository is the one
//     store the service writes that is not its database, and the one an operator already keeps
//     apart and copies off site, so whoever can delete rows from audit_log cannot move the
//     anchor back with the same grant. `audit verify` finds it by itself (--repo, else
//     BACKUP_STORAGE_PATH, else readiness dev's repository). The anchorer only moves it
//     forward, and refuses to move it when the table no longer extends it, logging an error
//     instead: the evidence stays for verify.
//   - The log line "audit anchor" with the fields seq and hash, written when the head has
//     moved. Logs are shipped off the host, out of reach of both the database and the
//     repository; `audit verify --anchor SEQ:HASH` checks the table against such a line.
//
// A head in each backup's manifest was the other candidate. It was not chosen: it anchors only
// as often as backups run (a day apart for many tenants), it would tie every backup engine to the
// audit package, and the repository file already lives in the same place at a finer interval.
//
// What it costs: one indexed read of the newest record and of the anchored record per minute,
// and one small file rename when the head has moved. Records younger than the last anchor (at
// most about a minute, or since the last shutdown) can still be deleted without a trace.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/gen/db"
)

// Record is one audited request.
type Record struct {
	OccurredAt time.Time
	Tenant     string
	Subject    string
	Operation  string
	Method     string
	Path       string
	ResourceID string
	Outcome    int
	RequestID  string
	Body       string // the request body as JSON with secrets masked, or ""
}

// genesis is the prev_hash of the first record.
var genesis = make([]byte, sha256.Size)

// hash is record_hash = SHA-256(prev_hash || seq || length-prefixed fields). Times are hashed as
// UTC microseconds, the precision PostgreSQL stores.
func hash(prev []byte, seq int64, r Record) []byte {
	h := sha256.New()
	h.Write(prev)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(seq))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(r.OccurredAt.UnixMicro()))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(int64(r.Outcome)))
	h.Write(n[:])
	for _, f := range []string{r.Tenant, r.Subject, r.Operation, r.Method, r.Path, r.ResourceID, r.RequestID, r.Body} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Append adds a record at the end of the chain. Writers are serialised by an advisory lock
// held until the transaction commits, so the chain never forks.
func Append(ctx context.Context, conn interface {
	Begin(context.Context) (pgx.Tx, error)
}, r Record) error {
	r.OccurredAt = r.OccurredAt.UTC().Truncate(time.Microsecond)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit this is a no-op
	q := db.New(tx)
	if err := q.AuditChainLock(ctx); err != nil {
		return err
	}
	seq, prev := int64(1), genesis
	last, err := q.AuditLast(ctx)
	switch {
	case err == nil:
		seq, prev = last.Seq+1, last.RecordHash
	case !errors.Is(err, pgx.ErrNoRows):
		return err
	}
	err = q.AuditInsert(ctx, db.AuditInsertParams{
		Seq: seq, OccurredAt: r.OccurredAt, TenantBk: optional(r.Tenant), Subject: optional(r.Subject),
		Operation: r.Operation, Method: r.Method, Path: r.Path, ResourceID: optional(r.ResourceID),
		Outcome: int32(r.Outcome), RequestID: r.RequestID, Body: optional(r.Body),
		PrevHash: prev, RecordHash: hash(prev, seq, r),
	})
	if err != nil {
		return fmt.Errorf("append audit record: %w", err)
	}
	return tx.Commit(ctx)
}

// Report is the outcome of Verify.
type Report struct {
	Records int64  // records checked
	BadSeq  int64  // the first record that breaks the chain, 0 when intact
	Problem string // what is wrong with it
	Head    Anchor // the newest record of an intact chain (zero when the chain is empty)
	Anchors int    // the anchors the table was checked against
}

// OK reports whether the chain is intact.
func (r Report) OK() bool { return r.BadSeq == 0 }

// Verify walks the chain in order and recomputes every hash. An edited record no longer matches
// its hash; a deleted one leaves a gap in seq and a prev_hash that matches nothing. Deleting the
// newest records leaves a shorter chain that is intact in itself: that is visible only against
// an anchor, a head kept outside the table, so an intact chain is then checked against every
// anchor given (see the package doc for where they come from).
func Verify(ctx context.Context, q *db.Queries, anchors ...Anchor) (Report, error) {
	rep, err := walk(ctx, q)
	if err != nil || !rep.OK() {
		return rep, err
	}
	for _, a := range anchors {
		bad, problem, err := checkAnchor(ctx, q, rep.Head, rep.Records > 0, a)
		if err != nil {
			return rep, err
		}
		if problem != "" {
			rep.BadSeq, rep.Problem = bad, problem
			return rep, nil
		}
		rep.Anchors++
	}
	return rep, nil
}

// walk checks the chain's links from the genesis to the newest record.
func walk(ctx context.Context, q *db.Queries) (Report, error) {
	var rep Report
	prev, want := genesis, int64(1)
	for {
		rows, err := q.AuditList(ctx, db.AuditListParams{AfterSeq: want - 1, PageSize: 1000})
		if err != nil {
			return rep, err
		}
		if len(rows) == 0 {
			if rep.Records > 0 {
				rep.Head = Anchor{Seq: rep.Records, Hash: hex.EncodeToString(prev)}
			}
			return rep, nil
		}
		for _, row := range rows {
			r := Record{OccurredAt: row.OccurredAt, Tenant: deref(row.TenantBk), Subject: deref(row.Subject),
				Operation: row.Operation, Method: row.Method, Path: row.Path, ResourceID: deref(row.ResourceID),
				Outcome: int(row.Outcome), RequestID: row.RequestID, Body: deref(row.Body)}
			switch {
			case row.Seq != want:
				rep.BadSeq, rep.Problem = want, fmt.Sprintf("record %d is missing (next present is %d)", want, row.Seq)
			case !bytes.Equal(row.PrevHash, prev):
				rep.BadSeq, rep.Problem = row.Seq, "prev_hash does not match the previous record"
			case !bytes.Equal(row.RecordHash, hash(prev, row.Seq, r)):
				rep.BadSeq, rep.Problem = row.Seq, "record content does not match its hash (edited)"
			}
			if rep.BadSeq != 0 {
				return rep, nil
			}
			rep.Records++
			prev, want = row.RecordHash, want+1
		}
	}
}

// secretWords are the parts of a JSON key that mark its value as a secret to mask.
var secretWords = []string{"password", "passwd", "secret", "token", "apikey", "routingkey", "webhook",
	"integrationkey", "authorization", "privatekey", "credential", "signingkey", "accesskey", "encryptionkey"}

func isSecretKey(k string) bool {
	k = strings.NewReplacer("_", "", "-", "", ".", "").Replace(strings.ToLower(k))
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// Mask returns body as compact JSON with the value of every secret-looking key, at any depth,
// replaced by "***". A body that is not JSON is not recorded at all: it is replaced by a note.
func Mask(body []byte) string {
	if len(bytes.TrimSpace(body)) == 0 {
		return ""
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return `{"unrecorded":"body is not JSON"}`
	}
	out, _ := json.Marshal(mask(v))
	return string(out)
}

func mask(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if isSecretKey(k) {
				t[k] = "***"
			} else {
				t[k] = mask(val)
			}
		}
	case []any:
		for i := range t {
			t[i] = mask(t[i])
		}
	}
	return v
}

type draftKey struct{}

// Draft collects what the audit record of a request needs from the layers that learn it: the
// authenticator fills Subject and Tenant, the handler the ResourceID.
type Draft struct {
	Subject    string
	Tenant     string
	ResourceID string
}

// WithDraft returns ctx carrying a new empty Draft.
func WithDraft(ctx context.Context) (context.Context, *Draft) {
	d := &Draft{}
	return context.WithValue(ctx, draftKey{}, d), d
}

// DraftFrom returns the request's Draft, or a throwaway one outside an audited request.
func DraftFrom(ctx context.Context) *Draft {
	if d, ok := ctx.Value(draftKey{}).(*Draft); ok {
		return d
	}
	return &Draft{}
}

// SetResourceID records which resource the request created or changed.
func SetResourceID(ctx context.Context, id string) { DraftFrom(ctx).ResourceID = id }
