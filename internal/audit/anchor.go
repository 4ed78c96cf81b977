package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/storage"
)

// AnchorFile is the name of the anchor file in the backup repository's root.
const AnchorFile = "audit-anchor.json"

// anchorLock is the file that replicas flock to write AnchorFile one at a time.
const anchorLock = ".audit-anchor.lock"

// DefaultAnchorInterval is how often the service anchors the chain's head: deleting records
// younger than one interval is detected only once the next anchor would have covered them.
const DefaultAnchorInterval = time.Minute

// ErrBehindAnchor is returned by Anchorer.AnchorOnce when the table no longer holds the anchored
// record as it was: records were deleted or rewritten since the last anchor. The anchor file is
// then left as it is, so that `readiness audit verify` still finds the evidence.
var ErrBehindAnchor = errors.New("audit chain does not extend its anchor")

// Anchor is the head of the chain (its newest record's seq and hash) kept outside the table.
type Anchor struct {
	Seq  int64     `json:"seq"`
	Hash string    `json:"hash"` // record_hash in lower-case hex
	At   time.Time `json:"anchoredAt,omitzero"`
	// Source says where the anchor was read, for messages; it is not stored.
	Source string `json:"-"`
}

// String is the form of the log line's fields and of `audit verify --anchor`: SEQ:HASH.
func (a Anchor) String() string { return fmt.Sprintf("%d:%s", a.Seq, a.Hash) }

// ParseAnchor reads SEQ:HASH, as printed by Anchor.String and found in the "audit anchor" log line.
func ParseAnchor(s string) (Anchor, error) {
	seqText, hashText, ok := strings.Cut(strings.TrimSpace(s), ":")
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if !ok || err != nil || seq < 1 {
		return Anchor{}, fmt.Errorf("anchor %q: want SEQ:HASH with SEQ a record number from 1", s)
	}
	if b, err := hex.DecodeString(hashText); err != nil || len(b) != len(genesis) {
		return Anchor{}, fmt.Errorf("anchor %q: HASH must be the record's SHA-256 in hex (64 digits)", s)
	}
	return Anchor{Seq: seq, Hash: strings.ToLower(hashText), Source: "--anchor " + s}, nil
}

// Head returns the chain's newest record as an anchor; ok is false for an empty chain.
func Head(ctx context.Context, q *db.Queries) (a Anchor, ok bool, err error) {
	last, err := q.AuditLast(ctx)
	if errors.Is(err, pgx.ErrNoRows) {
		return Anchor{}, false, nil
	}
	if err != nil {
		return Anchor{}, false, err
	}
	return Anchor{Seq: last.Seq, Hash: hex.EncodeToString(last.RecordHash)}, true, nil
}

// ReadAnchorFile reads the anchor kept in the backup repository at root; ok is false when there
// is none yet.
func ReadAnchorFile(root string) (a Anchor, ok bool, err error) {
	path := filepath.Join(root, AnchorFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Anchor{}, false, nil
	}
	if err != nil {
		return Anchor{}, false, fmt.Errorf("audit anchor: %w", err)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return Anchor{}, false, fmt.Errorf("audit anchor %s: %w", path, err)
	}
	if _, err := ParseAnchor(a.String()); err != nil {
		return Anchor{}, false, fmt.Errorf("audit anchor %s: %w", path, err)
	}
	a.Source = path
	return a, true, nil
}

// writeAnchorFile replaces the anchor file atomically: a crash leaves the old anchor or the new
// one, never a torn file that would fail every later verification.
func writeAnchorFile(root string, a Anchor) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(root, ".audit-anchor-*.tmp")
	if err != nil {
		return fmt.Errorf("audit anchor: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // after the rename there is nothing to remove
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(root, AnchorFile))
	}
	if err == nil {
		err = syncDir(root)
	}
	if err != nil {
		return fmt.Errorf("audit anchor: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// checkAnchor reports how the table differs from anchor, and the first record that is not as the
// anchor says: problem is "" when the table still holds the anchored record with its hash.
func checkAnchor(ctx context.Context, q *db.Queries, head Anchor, haveHead bool, anchor Anchor) (badSeq int64, problem string, err error) {
	if !haveHead || head.Seq < anchor.Seq {
		ends := "the table is empty"
		if haveHead {
			ends = fmt.Sprintf("the table ends at record %d", head.Seq)
		}
		return head.Seq + 1, fmt.Sprintf("%s but the anchor in %s holds record %d: the newest %d records were deleted",
			ends, anchor.Source, anchor.Seq, anchor.Seq-head.Seq), nil
	}
	rows, err := q.AuditList(ctx, db.AuditListParams{AfterSeq: anchor.Seq - 1, PageSize: 1})
	if err != nil {
		return 0, "", err
	}
	if len(rows) == 0 || rows[0].Seq != anchor.Seq {
		return anchor.Seq, fmt.Sprintf("record %d, which the anchor in %s holds, is missing", anchor.Seq, anchor.Source), nil
	}
	if got := hex.EncodeToString(rows[0].RecordHash); got != anchor.Hash {
		return anchor.Seq, fmt.Sprintf("record %d's hash %s differs from the anchor in %s (%s): the chain was rewritten from there",
			anchor.Seq, got, anchor.Source, anchor.Hash), nil
	}
	return 0, "", nil
}

// Anchorer writes the chain's head to the backup repository's anchor file and to the log at
// intervals. Every replica may run one: they take turns through a file lock, and the anchor
// only moves forward.
type Anchorer struct {
	Queries  *db.Queries
	RepoRoot string // the backup repository's root directory
	Logger   *slog.Logger
	Interval time.Duration // DefaultAnchorInterval when 0

	logged Anchor // the head last logged, so that an idle chain does not repeat its line
}

// Run anchors the head at once, then every Interval until ctx ends, and once more on the way
// out so that a clean shutdown leaves its newest records anchored.
func (an *Anchorer) Run(ctx context.Context) {
	interval := an.Interval
	if interval <= 0 {
		interval = DefaultAnchorInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		an.anchorAndLog(ctx)
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			an.anchorAndLog(sctx)
			cancel()
			return
		case <-t.C:
		}
	}
}

func (an *Anchorer) anchorAndLog(ctx context.Context) {
	if _, err := an.AnchorOnce(ctx); err != nil {
		if errors.Is(err, ErrBehindAnchor) {
			an.Logger.Error("audit chain does not extend its anchor", "error", err.Error())
		} else if ctx.Err() == nil {
			an.Logger.Warn("audit anchor not written", "error", err.Error())
		}
	}
}

// AnchorOnce checks that the table still extends the repository's anchor, then moves the anchor
// to the table's head and logs the line "audit anchor" with its seq and hash when the head has
// changed. It returns the head it anchored (zero for an empty chain) or an error wrapping
// ErrBehindAnchor, in which case the anchor file is not touched.
func (an *Anchorer) AnchorOnce(ctx context.Context) (Anchor, error) {
	lock, err := os.OpenFile(filepath.Join(an.RepoRoot, anchorLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return Anchor{}, fmt.Errorf("audit anchor: %w", err)
	}
	defer lock.Close()
	if ok, err := storage.LockDir(lock); err != nil || !ok {
		// Another replica is writing the anchor right now; the next interval is soon enough.
		return Anchor{}, err
	}
	head, haveHead, err := Head(ctx, an.Queries)
	if err != nil {
		return Anchor{}, err
	}
	prev, havePrev, err := ReadAnchorFile(an.RepoRoot)
	if err != nil {
		return Anchor{}, err
	}
	if havePrev {
		_, problem, err := checkAnchor(ctx, an.Queries, head, haveHead, prev)
		if err != nil {
			return Anchor{}, err
		}
		if problem != "" {
			return Anchor{}, fmt.Errorf("%w: %s", ErrBehindAnchor, problem)
		}
	}
	if !haveHead {
		return Anchor{}, nil
	}
	if !havePrev || head.Seq > prev.Seq {
		head.At = time.Now().UTC()
		if err := writeAnchorFile(an.RepoRoot, head); err != nil {
			return Anchor{}, err
		}
	}
	if head.Seq != an.logged.Seq || head.Hash != an.logged.Hash {
		an.Logger.Info("audit anchor", "seq", head.Seq, "hash", head.Hash)
		an.logged = head
	}
	return head, nil
}
